"""Bell-diagonal two-qubit states: four weights, the fast default formalism.

Convention: the weight at index ``k = x + 2 z`` belongs to the Bell state reached from
``|Phi+>`` by the Pauli ``X^x Z^z`` on either qubit, so the order is
``(Phi+, Psi+, Phi-, Psi-)`` and single-qubit Paulis are ordered ``(I, X, Z, Y)``.
With this order, composing two Pauli errors is the XOR of their indices, which makes
Pauli noise and ideal entanglement swapping one convolution over the Klein group.

>>> s = BellDiagonal.werner(0.9)
>>> round(s.fidelity(), 4)
0.925
>>> round(swap(s, s).werner_parameter, 4)      # REFERENCES.md s1: w = w1 * w2
0.81
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from qfabric.errors import ParameterError

BELL_LABELS = ("Phi+", "Psi+", "Phi-", "Psi-")
PAULI_LABELS = ("I", "X", "Z", "Y")
_TOLERANCE = 1e-9


def _check_probabilities(name: str, values: Sequence[float]) -> tuple[float, float, float, float]:
    if len(values) != 4:
        raise ParameterError(name, values, "four numbers")
    if any(not math.isfinite(v) or v < -_TOLERANCE for v in values):
        raise ParameterError(name, values, "non-negative finite weights")
    total = sum(values)
    if abs(total - 1.0) > 1e-6:
        raise ParameterError(name, values, "weights that sum to 1")
    clipped = [max(0.0, float(v)) for v in values]
    s = sum(clipped)
    return (clipped[0] / s, clipped[1] / s, clipped[2] / s, clipped[3] / s)


def check_probability(name: str, value: float, *, open_low: bool = False) -> float:
    """Return ``value`` if it is a probability in [0, 1] ((0, 1] with ``open_low``), else raise."""
    if not (isinstance(value, int | float) and math.isfinite(value)) or value > 1 or value < 0 or (
        open_low and value == 0
    ):
        raise ParameterError(name, value, "a probability in (0, 1]" if open_low else "a probability in [0, 1]")
    return float(value)


@dataclass(frozen=True, slots=True)
class BellDiagonal:
    """A Bell-diagonal pair state; ``weights`` in the order ``(Phi+, Psi+, Phi-, Psi-)``."""

    weights: tuple[float, float, float, float]

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", _check_probabilities("weights", self.weights))

    @classmethod
    def perfect(cls, target: int = 0) -> BellDiagonal:
        """The pure Bell state with index ``target``."""
        w = [0.0, 0.0, 0.0, 0.0]
        w[target] = 1.0
        return cls(tuple(w))

    @classmethod
    def werner(cls, w: float) -> BellDiagonal:
        """``w |Phi+><Phi+| + (1 - w) I/4``; ``w`` in [-1/3, 1]."""
        if not (-1 / 3 - _TOLERANCE <= w <= 1 + _TOLERANCE):
            raise ParameterError("werner_parameter", w, "a number in [-1/3, 1]")
        q = (1.0 - w) / 4.0
        return cls((w + q, q, q, q))

    @classmethod
    def from_fidelity(cls, fidelity: float) -> BellDiagonal:
        """The Werner state with ``<Phi+|rho|Phi+> = fidelity``."""
        check_probability("fidelity", fidelity)
        if fidelity < 0.25 - _TOLERANCE:
            raise ParameterError("fidelity", fidelity, "a Werner fidelity in [0.25, 1]")
        return cls.werner((4.0 * fidelity - 1.0) / 3.0)

    def fidelity(self, target: int = 0) -> float:
        """Overlap with the Bell state ``target`` (0 is Phi+)."""
        return self.weights[target]

    @property
    def werner_parameter(self) -> float:
        """``(4F - 1) / 3``: the ``w`` of the Werner state with the same fidelity."""
        return (4.0 * self.weights[0] - 1.0) / 3.0

    @property
    def entropy_bits(self) -> float:
        """Von Neumann entropy of the state: the Shannon entropy of its four weights."""
        return -sum(w * math.log2(w) for w in self.weights if w > 0)

    @property
    def hashing_yield(self) -> float:
        """Ebits per pair distillable by one-way hashing, ``max(0, 1 - S(rho))`` (a lower bound)."""
        return max(0.0, 1.0 - self.entropy_bits)

    @property
    def qber_z(self) -> float:
        """Error rate of Z-basis measurements on both qubits (bit flips: Psi+ and Psi-)."""
        return self.weights[1] + self.weights[3]

    @property
    def qber_x(self) -> float:
        """Error rate of X-basis measurements on both qubits (phase flips: Phi- and Psi-)."""
        return self.weights[2] + self.weights[3]


def compose(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float, float]:
    """Convolution over the Pauli group: ``out[k] = sum_i a[i] b[i XOR k]``."""
    a0, a1, a2, a3 = a
    b0, b1, b2, b3 = b
    return (
        a0 * b0 + a1 * b1 + a2 * b2 + a3 * b3,
        a0 * b1 + a1 * b0 + a2 * b3 + a3 * b2,
        a0 * b2 + a1 * b3 + a2 * b0 + a3 * b1,
        a0 * b3 + a1 * b2 + a2 * b1 + a3 * b0,
    )


def swap(a: BellDiagonal, b: BellDiagonal) -> BellDiagonal:
    """Ideal entanglement swapping with outcome-dependent Pauli correction (every outcome gives this state)."""
    return BellDiagonal(compose(a.weights, b.weights))


def pauli_channel(state: BellDiagonal, probabilities: Sequence[float]) -> BellDiagonal:
    """Apply the single-qubit Pauli channel ``(p_I, p_X, p_Z, p_Y)`` to either qubit of the pair."""
    return BellDiagonal(compose(state.weights, _check_probabilities("pauli probabilities", probabilities)))


def depolarising_probabilities(p: float) -> tuple[float, float, float, float]:
    """``rho -> (1 - p) rho + p I/2`` on one qubit, as Pauli probabilities ``(I, X, Z, Y)``."""
    check_probability("p", p)
    return (1.0 - 0.75 * p, p / 4.0, p / 4.0, p / 4.0)


def dephasing_probabilities(p: float) -> tuple[float, float, float, float]:
    """Phase flip (Z) with probability ``p`` on one qubit."""
    check_probability("p", p)
    return (1.0 - p, 0.0, p, 0.0)


def depolarise(state: BellDiagonal, p: float) -> BellDiagonal:
    """One qubit depolarised with probability ``p``: the Werner parameter scales by ``1 - p``."""
    return BellDiagonal(compose(state.weights, depolarising_probabilities(p)))


def dephase(state: BellDiagonal, p: float) -> BellDiagonal:
    """One qubit dephased (Z flip) with probability ``p``."""
    return BellDiagonal(compose(state.weights, dephasing_probabilities(p)))


def t1_t2_pauli_probabilities(t_s: float, t1_s: float, t2_s: float) -> tuple[float, float, float, float]:
    """Pauli twirl of amplitude damping (T1) plus dephasing (T2) over ``t_s`` seconds.

    Chosen so that the Bloch vector's transverse part decays as ``exp(-t/T2)`` and the
    longitudinal part as ``exp(-t/T1)``: ``p_X = p_Y = (1 - e1)/4``, ``p_Z = (1 + e1)/4 - e2/2``.
    For a Bell-diagonal input this is exact: it equals the Bell-diagonal part of the
    density-matrix channel's output (tested).
    """
    if t_s < 0:
        raise ParameterError("t_s", t_s, "a non-negative storage time")
    if t1_s <= 0 or t2_s <= 0:
        raise ParameterError("t1_s/t2_s", (t1_s, t2_s), "positive times")
    if t2_s > 2 * t1_s * (1 + 1e-12):
        raise ParameterError("t2_s", t2_s, f"at most 2 * t1_s = {2 * t1_s} (physical limit)")
    e1 = math.exp(-t_s / t1_s) if math.isfinite(t1_s) else 1.0
    e2 = math.exp(-t_s / t2_s) if math.isfinite(t2_s) else 1.0
    px = (1.0 - e1) / 4.0
    pz = max(0.0, (1.0 + e1) / 4.0 - e2 / 2.0)
    return (1.0 - 2 * px - pz, px, pz, px)


def depolarising_time_probabilities(t_s: float, depolarising_time_s: float) -> tuple[float, float, float, float]:
    """Depolarising memory: after ``t_s`` the qubit is depolarised with ``p = 1 - exp(-t/T)``."""
    if t_s < 0:
        raise ParameterError("t_s", t_s, "a non-negative storage time")
    if depolarising_time_s <= 0:
        raise ParameterError("depolarising_time_s", depolarising_time_s, "a positive time")
    return depolarising_probabilities(1.0 - math.exp(-t_s / depolarising_time_s))


def twirl_to_werner(state: BellDiagonal) -> BellDiagonal:
    """The Werner state with the same fidelity (the result of a random bilateral rotation)."""
    return BellDiagonal.werner(state.werner_parameter)


def _bilateral_cnot(a: Sequence[float], b: Sequence[float]) -> tuple[float, BellDiagonal]:
    """Bilateral CNOT (pair ``a`` controls pair ``b``), Z-measure ``b``, keep ``a`` if both ends agree.

    Keeps the pairs whose bit-flip parities agree; the phase parities of kept pairs combine.
    """
    a0, a1, a2, a3 = a
    b0, b1, b2, b3 = b
    # index = x + 2z: success needs x_a == x_b; the output has x = x_a and z = z_a XOR z_b.
    out = (
        a0 * b0 + a2 * b2,  # x=0, z=0
        a1 * b1 + a3 * b3,  # x=1, z=0
        a0 * b2 + a2 * b0,  # x=0, z=1
        a1 * b3 + a3 * b1,  # x=1, z=1
    )
    p = sum(out)
    if p <= 0:
        return 0.0, BellDiagonal.perfect()
    return p, BellDiagonal(tuple(v / p for v in out))


def bbpssw(a: BellDiagonal, b: BellDiagonal) -> tuple[float, BellDiagonal]:
    """BBPSSW recurrence (Bennett et al. PRL 76, 722 (1996)): twirl both inputs to Werner, purify, twirl.

    Returns ``(success_probability, output_state)``. For two Werner pairs of fidelity F:
    ``p = F^2 + 2F(1-F)/3 + 5((1-F)/3)^2`` and ``F' = (F^2 + ((1-F)/3)^2) / p``.
    """
    p, out = _bilateral_cnot(twirl_to_werner(a).weights, twirl_to_werner(b).weights)
    return p, twirl_to_werner(out)


def dejmps(a: BellDiagonal, b: BellDiagonal) -> tuple[float, BellDiagonal]:
    """DEJMPS recurrence (Deutsch et al. PRL 77, 2818 (1996)); no twirling.

    The local rotations ``Rx(pi/2)`` (Alice) and ``Rx(-pi/2)`` (Bob) exchange the Phi- and Psi-
    weights; then the bilateral CNOT step. In DEJMPS' letters (A=Phi+, B=Psi-, C=Psi+, D=Phi-):
    ``A' = (A^2+B^2)/N, B' = 2CD/N, C' = (C^2+D^2)/N, D' = 2AB/N``, ``N = (A+B)^2 + (C+D)^2``.
    """
    ra = (a.weights[0], a.weights[1], a.weights[3], a.weights[2])
    rb = (b.weights[0], b.weights[1], b.weights[3], b.weights[2])
    return _bilateral_cnot(ra, rb)
