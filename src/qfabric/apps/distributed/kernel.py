"""A quantum kernel whose circuit spans two processors linked by the simulated network.

The feature map's circuit (:func:`qfabric.apps.qml.featuremaps.gate_list`) runs on density matrices; its qubits
are split over the processors (``assignment``: qubit -> 0 or 1), and every CNOT between qubits on different
processors is a teleported CNOT (:mod:`qfabric.apps.distributed.remote`) that consumes the next pair the network
delivered to the processors' request, with that pair's Bell-diagonal state. The kernel entry of two samples is
``Tr(rho_i rho_j)``, what a swap test between the two embedded states estimates (``|<psi_i|psi_j>|^2`` when the
pairs are perfect). It is compared with the exact single-processor kernel
(:class:`~qfabric.apps.qml.QuantumKernel`).

Time to solution: the circuits run one after the other; a remote CNOT waits for its pair's delivery and then for
its two classical bits, one each way between the processors (``classical_delay_s`` each). Local gates, readout and
the storage of a pair until its gate are not timed (their cost is the same as on one processor, or small next to
the network's).

>>> supply = PairSupply(np.array([0.01, 0.02]), np.array([[1.0, 0, 0, 0], [1.0, 0, 0, 0]]))
>>> X = np.array([[0.3, 1.2], [2.0, 0.4]])
>>> result = distributed_kernel(X, [0, 1], supply, reps=1)
>>> bool(np.allclose(result.kernel, exact_kernel(X, reps=1)))   # perfect pairs: the exact kernel
True
>>> result.remote_gates, result.pairs_reused                     # two remote CNOTs per sample, pairs cycled
(4, 2)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qfabric.apps.distributed.remote import CNOT, H, X, Z, apply
from qfabric.apps.qml.featuremaps import as_samples, gate_list
from qfabric.apps.qml.kernel import QuantumKernel
from qfabric.errors import ParameterError, QfabricError

MAX_QUBITS = 10  # density matrices of 2^10 x 2^10 complex numbers (16 MiB), a few per sample


@dataclass
class PairSupply:
    """Pairs delivered to the processors' request, in delivery order: times (s) and Bell-diagonal weights
    ``(Phi+, Psi+, Phi-, Psi-)``. Taking more than were delivered reuses them in order (counted), as if the run
    repeated: the k-th reuse of pair i comes ``k`` times the last delivery time later."""

    times_s: np.ndarray
    weights: np.ndarray
    taken: int = 0

    def __post_init__(self) -> None:
        self.times_s = np.asarray(self.times_s, dtype=float)
        self.weights = np.asarray(self.weights, dtype=float).reshape(-1, 4)
        if len(self.times_s) == 0 or len(self.times_s) != len(self.weights):
            raise QfabricError("no entangled pairs were delivered to the processors' request: the circuit cannot "
                               "run (lengthen the run, or check the request in the report)")

    def take(self) -> tuple[float, np.ndarray]:
        """The next pair's delivery time and weights."""
        cycle, i = divmod(self.taken, len(self.times_s))
        self.taken += 1
        return float(self.times_s[i] + cycle * self.times_s[-1]), self.weights[i]

    @property
    def reused(self) -> int:
        return max(0, self.taken - len(self.times_s))


@dataclass
class DistributedKernel:
    kernel: np.ndarray
    remote_gates: int  # teleported CNOTs over all samples
    pairs_reused: int  # of them, on pairs taken a second time (the run delivered fewer)
    mean_pair_fidelity: float  # of the pairs the remote gates used
    time_to_solution_s: float | None


def _single(gate: tuple) -> np.ndarray:
    name = gate[0]
    if name == "H":
        return H
    if name == "P":
        return np.diag([1.0, np.exp(1j * gate[2])])
    if name == "RX":
        c, s = np.cos(gate[2] / 2), np.sin(gate[2] / 2)
        return np.array([[c, -1j * s], [-1j * s, c]])
    raise QfabricError(f"gate {name!r} has no single-qubit matrix here")


def remote_cnot(rho: np.ndarray, control: int, target: int, weights: Sequence[float]) -> np.ndarray:
    """The teleported CNOT with a Bell-diagonal pair of ``weights``: CNOT, then ``X^x`` on the target and ``Z^z``
    on the control with probability ``weights[x + 2z]`` (tested against the gate-by-gate protocol)."""
    base = apply(rho, CNOT, [control, target])
    out = np.zeros_like(rho)
    for k, w in enumerate(weights):
        if w <= 0:
            continue
        branch = base
        if k & 1:
            branch = apply(branch, X, [target])
        if k >> 1:
            branch = apply(branch, Z, [control])
        out += w * branch
    return out


def _check(n: int, assignment: Sequence[int]) -> None:
    if n > MAX_QUBITS:
        raise ParameterError("qubits", n, f"at most {MAX_QUBITS} (density matrices of 2^n x 2^n; 2^{n} x 2^{n} "
                             f"complex numbers take {16 * 4**n / 2**20:.0f} MiB each)")
    if len(assignment) != n or set(assignment) - {0, 1}:
        raise ParameterError("assignment", list(assignment), f"{n} processor numbers, 0 or 1 (one per qubit)")


def embedded_state(x: Sequence[float], assignment: Sequence[int], supply: PairSupply, clock: list[float],
                   classical_delay_s: float, feature_map: str = "zz", reps: int = 2,
                   entanglement: str = "full") -> tuple[np.ndarray, list[float]]:
    """One sample's embedded state on the two processors; advances ``clock[0]`` and returns the fidelities of
    the pairs its remote CNOTs used."""
    n = len(x)
    rho = np.zeros((2**n, 2**n), dtype=complex)
    rho[0, 0] = 1
    used = []
    for gate in gate_list(x, feature_map, reps, entanglement):
        if gate[0] == "CNOT":
            control, target = gate[1], gate[2]
            if assignment[control] == assignment[target]:
                rho = apply(rho, CNOT, [control, target])
            else:
                delivered, weights = supply.take()
                clock[0] = max(clock[0], delivered) + 2 * classical_delay_s
                rho = remote_cnot(rho, control, target, weights)
                used.append(float(weights[0]))
        else:
            rho = apply(rho, _single(gate), [gate[1]])
    return rho, used


def distributed_kernel(X, assignment: Sequence[int], supply: PairSupply, *, feature_map: str = "zz", reps: int = 2,
                       entanglement: str = "full", classical_delay_s: float = 0.0) -> DistributedKernel:
    """``K(X, X)`` with the circuit split by ``assignment`` and remote CNOTs on ``supply``'s pairs; each sample's
    state is prepared once, in order (``time_to_solution_s``: when the last one was ready)."""
    X = as_samples(X)
    _check(X.shape[1], assignment)
    clock = [0.0]
    fidelities: list[float] = []
    states = []
    for x in X:
        rho, used = embedded_state(x, assignment, supply, clock, classical_delay_s, feature_map, reps, entanglement)
        states.append(rho)
        fidelities.extend(used)
    K = np.array([[float(np.real(np.vdot(b, a))) for b in states] for a in states])  # Tr(rho_a rho_b)
    return DistributedKernel(K, len(fidelities), supply.reused,
                             float(np.mean(fidelities)) if fidelities else 1.0,
                             clock[0] if fidelities else None)


def exact_kernel(X, Y=None, *, feature_map: str = "zz", reps: int = 2, entanglement: str = "full") -> np.ndarray:
    """The single-processor kernel (statevectors, no noise)."""
    return QuantumKernel(feature_map, reps, entanglement)(X, Y)


def split_qubits(n: int) -> list[int]:
    """The first half of the qubits on processor 0, the rest on 1: ``split_qubits(5) -> [0, 0, 0, 1, 1]``."""
    return [0 if q < (n + 1) // 2 else 1 for q in range(n)]
