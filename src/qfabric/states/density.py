"""Two-qubit pair states as 4x4 density matrices (qubit order A, B), for what Bell-diagonal weights cannot hold.

Used for non-Pauli noise (amplitude damping), arbitrary states and as the ground truth that
the Bell-diagonal formalism is tested against: swapping and purification here are simulated
gate by gate on four qubits.

>>> rho = DensityMatrix.from_bell_diagonal(BellDiagonal.werner(0.8))
>>> round(rho.fidelity(), 3)
0.85
>>> round(rho.amplitude_damp(0.3, qubit=1).fidelity(), 4)
0.7247
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qfabric.errors import ParameterError
from qfabric.states.bell import BellDiagonal, check_probability

_S = 1 / math.sqrt(2)
#: Bell vectors in the order of :data:`qfabric.states.bell.BELL_LABELS` (Phi+, Psi+, Phi-, Psi-).
BELL_VECTORS = np.array(
    [[_S, 0, 0, _S], [0, _S, _S, 0], [_S, 0, 0, -_S], [0, _S, -_S, 0]], dtype=complex
)
I2 = np.eye(2, dtype=complex)
X = np.array([[0, 1], [1, 0]], dtype=complex)
Z = np.array([[1, 0], [0, -1]], dtype=complex)
Y = np.array([[0, -1j], [1j, 0]], dtype=complex)
#: Paulis in the order (I, X, Z, Y): index k = x + 2 z is X^x Z^z up to phase.
PAULIS = (I2, X, Z, Y)
_CNOT = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]], dtype=complex)


def _rx(theta: float) -> np.ndarray:
    c, s = math.cos(theta / 2), math.sin(theta / 2)
    return np.array([[c, -1j * s], [-1j * s, c]], dtype=complex)


def _on_qubit(op: np.ndarray, qubit: int, n: int) -> np.ndarray:
    mats = [I2] * n
    mats[qubit] = op
    out = mats[0]
    for m in mats[1:]:
        out = np.kron(out, m)
    return out


def _two_qubit_gate(gate: np.ndarray, control: int, target: int, n: int) -> np.ndarray:
    """Embed a 4x4 gate acting on (control, target) into n qubits."""
    dim = 2**n
    full = np.zeros((dim, dim), dtype=complex)
    for col in range(dim):
        bits = [(col >> (n - 1 - q)) & 1 for q in range(n)]
        sub_in = 2 * bits[control] + bits[target]
        for sub_out in range(4):
            amp = gate[sub_out, sub_in]
            if amp == 0:
                continue
            out_bits = list(bits)
            out_bits[control], out_bits[target] = sub_out >> 1, sub_out & 1
            row = sum(b << (n - 1 - q) for q, b in enumerate(out_bits))
            full[row, col] += amp
    return full


def _permute_qubits(rho: np.ndarray, order: Sequence[int]) -> np.ndarray:
    """Reorder the qubits of an n-qubit density matrix: new qubit i is old qubit ``order[i]``."""
    n = len(order)
    t = rho.reshape([2] * (2 * n))
    t = t.transpose(list(order) + [n + o for o in order])
    return t.reshape(2**n, 2**n)


@dataclass(frozen=True)
class DensityMatrix:
    """A two-qubit density matrix ``rho`` (4x4, Hermitian, trace 1, positive)."""

    rho: np.ndarray

    def __post_init__(self) -> None:
        rho = np.asarray(self.rho, dtype=complex)
        if rho.shape != (4, 4):
            raise ParameterError("rho", rho.shape, "a 4x4 matrix")
        object.__setattr__(self, "rho", rho)

    @classmethod
    def from_bell_diagonal(cls, state: BellDiagonal) -> DensityMatrix:
        """Exact: ``sum_k w_k |B_k><B_k|``."""
        rho = sum(w * np.outer(v, v.conj()) for w, v in zip(state.weights, BELL_VECTORS, strict=True))
        return cls(rho)

    @classmethod
    def from_ket(cls, ket: Sequence[complex]) -> DensityMatrix:
        v = np.asarray(ket, dtype=complex)
        v = v / np.linalg.norm(v)
        return cls(np.outer(v, v.conj()))

    def bell_weights(self) -> tuple[float, float, float, float]:
        """Diagonal in the Bell basis (``<B_k|rho|B_k>``): exact for Bell-diagonal states, a twirl otherwise."""
        return tuple(float(np.real(v.conj() @ self.rho @ v)) for v in BELL_VECTORS)

    def to_bell_diagonal(self) -> BellDiagonal:
        """The Bell-diagonal part of this state (equal to it when it is Bell-diagonal)."""
        return BellDiagonal(self.bell_weights())

    def is_bell_diagonal(self, atol: float = 1e-9) -> bool:
        return bool(np.allclose(DensityMatrix.from_bell_diagonal(self.to_bell_diagonal()).rho, self.rho, atol=atol))

    def fidelity(self, target: int = 0) -> float:
        return self.bell_weights()[target]

    def is_valid(self, atol: float = 1e-9) -> bool:
        """Hermitian, trace one and positive semidefinite (within ``atol``)."""
        r = self.rho
        if not np.allclose(r, r.conj().T, atol=atol) or abs(np.trace(r) - 1) > atol:
            return False
        return bool(np.linalg.eigvalsh((r + r.conj().T) / 2).min() >= -atol)

    def apply_kraus(self, kraus: Sequence[np.ndarray], qubit: int) -> DensityMatrix:
        """Apply a single-qubit channel given by Kraus operators to qubit 0 (A) or 1 (B)."""
        if qubit not in (0, 1):
            raise ParameterError("qubit", qubit, "0 (A) or 1 (B)")
        ops = [_on_qubit(k, qubit, 2) for k in kraus]
        return DensityMatrix(sum(k @ self.rho @ k.conj().T for k in ops))

    def pauli_channel(self, probabilities: Sequence[float], qubit: int = 1) -> DensityMatrix:
        """Pauli channel with probabilities in the order (I, X, Z, Y)."""
        probs = BellDiagonal(tuple(probabilities)).weights  # validates and normalises
        return self.apply_kraus([math.sqrt(p) * P for p, P in zip(probs, PAULIS, strict=True)], qubit)

    def depolarise(self, p: float, qubit: int = 1) -> DensityMatrix:
        """``rho -> (1 - p) rho + p (I/2 on that qubit)``."""
        check_probability("p", p)
        return self.pauli_channel((1 - 0.75 * p, p / 4, p / 4, p / 4), qubit)

    def dephase(self, p: float, qubit: int = 1) -> DensityMatrix:
        check_probability("p", p)
        return self.pauli_channel((1 - p, 0.0, p, 0.0), qubit)

    def amplitude_damp(self, gamma: float, qubit: int = 1) -> DensityMatrix:
        """Amplitude damping with decay probability ``gamma`` (|1> -> |0>)."""
        check_probability("gamma", gamma)
        k0 = np.array([[1, 0], [0, math.sqrt(1 - gamma)]], dtype=complex)
        k1 = np.array([[0, math.sqrt(gamma)], [0, 0]], dtype=complex)
        return self.apply_kraus([k0, k1], qubit)

    def decohere_t1_t2(self, t_s: float, t1_s: float, t2_s: float, qubit: int = 1) -> DensityMatrix:
        """Amplitude damping ``1 - exp(-t/T1)`` then pure dephasing so coherences decay as ``exp(-t/T2)``."""
        if t_s < 0 or t1_s <= 0 or t2_s <= 0:
            raise ParameterError("t_s/t1_s/t2_s", (t_s, t1_s, t2_s), "t >= 0 and positive T1, T2")
        if t2_s > 2 * t1_s * (1 + 1e-12):
            raise ParameterError("t2_s", t2_s, f"at most 2 * t1_s = {2 * t1_s}")
        gamma = 1 - math.exp(-t_s / t1_s)
        extra = math.exp(-t_s / t2_s + t_s / (2 * t1_s))  # coherence factor left for pure dephasing
        return self.amplitude_damp(gamma, qubit).dephase(max(0.0, (1 - extra) / 2), qubit)


def swap(a: DensityMatrix, b: DensityMatrix) -> list[tuple[float, DensityMatrix]]:
    """Entanglement swapping of pairs A-B1 and B2-C by a Bell measurement on B1, B2.

    Returns, for each Bell outcome k (order Phi+, Psi+, Phi-, Psi-), its probability and the
    A-C state after the Pauli correction ``X^x Z^z`` on C.
    """
    joint = np.kron(a.rho, b.rho)  # qubits A, B1, B2, C
    joint = _permute_qubits(joint, [0, 3, 1, 2])  # A, C, B1, B2
    results = []
    for k, v in enumerate(BELL_VECTORS):
        proj = np.kron(np.eye(4), v.conj()[None, :])  # <B_k| on (B1, B2): 4 x 16
        out = proj @ joint @ proj.conj().T
        p = float(np.real(np.trace(out)))
        if p > 1e-15:
            out = out / p
            corr = _on_qubit(PAULIS[k], 1, 2)
            out = corr @ out @ corr.conj().T
        results.append((p, DensityMatrix(out)))
    return results


def _purify_circuit(a: DensityMatrix, b: DensityMatrix, *, rotate: bool) -> tuple[float, DensityMatrix]:
    joint = _permute_qubits(np.kron(a.rho, b.rho), [0, 2, 1, 3])  # A1, A2, B1, B2
    if rotate:
        rot = np.kron(np.kron(_rx(math.pi / 2), _rx(math.pi / 2)), np.kron(_rx(-math.pi / 2), _rx(-math.pi / 2)))
        joint = rot @ joint @ rot.conj().T
    cnots = _two_qubit_gate(_CNOT, 0, 1, 4) @ _two_qubit_gate(_CNOT, 2, 3, 4)
    joint = cnots @ joint @ cnots.conj().T
    joint = _permute_qubits(joint, [0, 2, 1, 3])  # A1, B1, A2, B2
    keep = np.zeros((4, 4), dtype=complex)
    for bit in (0, 1):  # target pair measured in Z at both ends, outcomes equal
        ket = np.zeros(4, dtype=complex)
        ket[3 * bit] = 1
        proj = np.kron(np.eye(4), ket.conj()[None, :])
        keep = keep + proj @ joint @ proj.conj().T
    p = float(np.real(np.trace(keep)))
    return p, DensityMatrix(keep / p if p > 1e-15 else keep)


def dejmps(a: DensityMatrix, b: DensityMatrix) -> tuple[float, DensityMatrix]:
    """DEJMPS purification simulated gate by gate: Rx(pi/2) at A, Rx(-pi/2) at B, bilateral CNOT, Z parity."""
    return _purify_circuit(a, b, rotate=True)


def bbpssw(a: DensityMatrix, b: DensityMatrix) -> tuple[float, DensityMatrix]:
    """BBPSSW: twirl both inputs to Werner form, bilateral CNOT, Z parity, twirl the output."""
    wa = DensityMatrix.from_bell_diagonal(BellDiagonal.werner(a.to_bell_diagonal().werner_parameter))
    wb = DensityMatrix.from_bell_diagonal(BellDiagonal.werner(b.to_bell_diagonal().werner_parameter))
    p, out = _purify_circuit(wa, wb, rotate=False)
    return p, DensityMatrix.from_bell_diagonal(BellDiagonal.werner(out.to_bell_diagonal().werner_parameter))
