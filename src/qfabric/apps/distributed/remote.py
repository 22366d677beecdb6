"""A CNOT between qubits on two processors, by gate teleportation over one entangled pair, with the pair's real
state: the two-qubit channel it applies, simulated gate by gate on density matrices.

The protocol (Eisert, Jacobs, Papadopoulos and Plenio, "Optimal local implementation of nonlocal quantum gates",
PRA 62, 052317 (2000)): the control's processor holds ``c`` and pair half ``a``, the target's holds ``b`` and ``t``.
CNOT(c -> a), measure ``a`` in Z and send the bit; on 1, X on ``b``; CNOT(b -> t); measure ``b`` in X and send the
bit; on 1, Z on ``c``. Two classical bits and one pair per gate. With the pair exactly |Phi+> this is CNOT(c -> t).

A Bell-diagonal pair (weights ``(Phi+, Psi+, Phi-, Psi-)``, i.e. the Pauli ``X^x Z^z`` at index ``x + 2z`` on
one half) turns into Pauli errors after the gate: an X on the pair becomes an X on the target, a Z becomes a Z
on the control, so the channel is CNOT followed by ``X_t^x Z_c^z`` with the pair's weights
(:func:`bell_diagonal_remote_cnot`); other pair states (amplitude damping, from
:class:`~qfabric.states.density.DensityMatrix`) go through the simulation.

>>> from qfabric.states import BellDiagonal
>>> ideal = remote_cnot_channel(BellDiagonal((1.0, 0.0, 0.0, 0.0)))
>>> round(average_gate_fidelity(ideal, CNOT), 12)
1.0
>>> round(average_gate_fidelity(remote_cnot_channel(BellDiagonal.werner(0.9)), CNOT), 4)   # (d F_e + 1)/(d + 1)
0.94
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qfabric.errors import ParameterError
from qfabric.states import BellDiagonal
from qfabric.states.density import DensityMatrix

I2 = np.eye(2, dtype=complex)
X = np.array([[0, 1], [1, 0]], dtype=complex)
Z = np.diag([1, -1]).astype(complex)
H = np.array([[1, 1], [1, -1]], dtype=complex) / np.sqrt(2)
CNOT = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]], dtype=complex)
P0, P1 = np.diag([1, 0]).astype(complex), np.diag([0, 1]).astype(complex)


def apply(rho: np.ndarray, op: np.ndarray, qubits: Sequence[int]) -> np.ndarray:
    """``op rho op^dagger`` with ``op`` acting on ``qubits`` (in that order) of the n-qubit ``rho`` (qubit 0 is the
    most significant bit), without building a 2^n x 2^n operator."""
    n = int(np.log2(rho.shape[0]))
    k = len(qubits)
    t = rho.reshape([2] * (2 * n))
    o = op.reshape([2] * (2 * k))
    # op on the row indices
    t = np.tensordot(o, t, axes=(list(range(k, 2 * k)), list(qubits)))
    t = np.moveaxis(t, list(range(k)), list(qubits))
    # op^dagger on the column indices
    cols = [n + q for q in qubits]
    t = np.tensordot(t, o.conj(), axes=(cols, list(range(k, 2 * k))))
    t = np.moveaxis(t, list(range(2 * n - k, 2 * n)), cols)
    return t.reshape(2**n, 2**n)


def apply_kraus(rho: np.ndarray, kraus: Sequence[np.ndarray], qubits: Sequence[int]) -> np.ndarray:
    """The channel with Kraus operators ``kraus`` on ``qubits`` of ``rho``."""
    return sum(apply(rho, k, qubits) for k in kraus)


def _pair_matrix(pair: BellDiagonal | DensityMatrix) -> np.ndarray:
    if isinstance(pair, BellDiagonal):
        pair = DensityMatrix.from_bell_diagonal(pair)
    if not isinstance(pair, DensityMatrix):
        raise ParameterError("pair", pair, "a BellDiagonal or DensityMatrix pair state")
    return pair.rho


def _teleported_cnot(rho_ct: np.ndarray, pair: np.ndarray) -> np.ndarray:
    """The protocol on qubits (c, a, b, t), averaged over the four measurement outcomes."""
    joint = np.kron(rho_ct, pair).reshape([2] * 8)  # (c, t, a, b) rows, then columns
    joint = joint.transpose(0, 2, 3, 1, 4, 6, 7, 5).reshape(16, 16)  # (c, a, b, t)
    joint = apply(joint, CNOT, [0, 1])  # CNOT(c -> a)
    out = np.zeros((4, 4), dtype=complex)
    for m1, proj_a in enumerate((P0, P1)):
        after_a = apply(joint, proj_a, [1])
        if m1:
            after_a = apply(after_a, X, [2])  # X on b
        after_a = apply(after_a, CNOT, [2, 3])  # CNOT(b -> t)
        after_a = apply(after_a, H, [2])  # measure b in X: H, then Z
        for m2, proj_b in enumerate((P0, P1)):
            branch = apply(after_a, proj_b, [2])
            if m2:
                branch = apply(branch, Z, [0])  # Z on c
            t = branch.reshape([2] * 8)
            out += np.einsum("cabtdabs->ctds", t).reshape(4, 4)  # trace out a and b
    return out


def remote_cnot_channel(pair: BellDiagonal | DensityMatrix) -> np.ndarray:
    """The 16 x 16 superoperator of the teleported CNOT on (control, target) with ``pair`` as its resource:
    ``vec(rho_out) = S @ vec(rho_in)`` (row-major ``vec``)."""
    rho_pair = _pair_matrix(pair)
    columns = []
    for i in range(4):
        for j in range(4):
            basis = np.zeros((4, 4), dtype=complex)
            basis[i, j] = 1
            columns.append(_teleported_cnot(basis, rho_pair).reshape(16))
    return np.array(columns).T


def bell_diagonal_remote_cnot(pair: BellDiagonal) -> np.ndarray:
    """The same superoperator in closed form: CNOT, then ``X^x`` on the target and ``Z^z`` on the control with
    probability ``weights[x + 2z]``."""
    out = np.zeros((16, 16), dtype=complex)
    for k, w in enumerate(pair.weights):
        x, z = k & 1, k >> 1
        u = np.kron(np.linalg.matrix_power(Z, z), np.linalg.matrix_power(X, x)) @ CNOT
        out += w * np.kron(u, u.conj())
    return out


def kraus_operators(superoperator: np.ndarray, atol: float = 1e-12) -> list[np.ndarray]:
    """Kraus operators of a two-qubit channel given as its superoperator (from the Choi matrix's eigenvectors)."""
    choi = superoperator.reshape(4, 4, 4, 4).transpose(0, 2, 1, 3).reshape(16, 16)  # (out, in) x (out', in')
    values, vectors = np.linalg.eigh((choi + choi.conj().T) / 2)
    return [np.sqrt(v) * vectors[:, i].reshape(4, 4) for i, v in enumerate(values) if v > atol]


def average_gate_fidelity(superoperator: np.ndarray, gate: np.ndarray) -> float:
    """Average gate fidelity of a two-qubit channel to the unitary ``gate``: ``(d F_e + 1) / (d + 1)``, d = 4."""
    ideal = np.kron(gate, gate.conj())
    entanglement_fidelity = float(np.real(np.trace(ideal.conj().T @ superoperator))) / 16
    return (4 * entanglement_fidelity + 1) / 5
