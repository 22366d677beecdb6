"""The kernel over two processors: exact with perfect pairs, worse as pair fidelity falls, the teleported CNOT's
closed form equal to the protocol inside the circuit, pairs and time counted, bad input refused."""

import numpy as np
import pytest

from qfabric.apps.distributed.kernel import (
    PairSupply,
    distributed_kernel,
    embedded_state,
    exact_kernel,
    remote_cnot,
    split_qubits,
)
from qfabric.apps.distributed.remote import apply_kraus, kraus_operators, remote_cnot_channel
from qfabric.apps.qml.datasets import ad_hoc_data
from qfabric.errors import ParameterError, QfabricError
from qfabric.states import BellDiagonal

X, _ = ad_hoc_data(12, 3, seed=7)


def werner_supply(w: float, count: int = 500, period_s: float = 0.01) -> PairSupply:
    weights = BellDiagonal.werner(w).weights
    return PairSupply(np.arange(1, count + 1) * period_s, np.tile(weights, (count, 1)))


def test_perfect_pairs_give_the_exact_kernel_of_one_processor():
    result = distributed_kernel(X, split_qubits(3), werner_supply(1.0))
    assert np.allclose(result.kernel, exact_kernel(X), atol=1e-12)
    assert result.remote_gates == 8 * len(X)  # ZZ, full: pairs (0,2), (1,2) cross; 2 CNOTs each, 2 layers


def test_kernel_error_grows_as_pair_fidelity_falls():
    exact = exact_kernel(X)
    off = ~np.eye(len(X), dtype=bool)
    errors = [np.abs(distributed_kernel(X, split_qubits(3), werner_supply(w)).kernel - exact)[off].mean()
              for w in (1.0, 0.98, 0.9, 0.75)]
    assert errors[0] < 1e-12 and errors[1] < errors[2] < errors[3]


def test_the_closed_form_remote_cnot_equals_the_protocol_inside_a_register():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(8, 8)) + 1j * rng.normal(size=(8, 8))
    rho = a @ a.conj().T / np.trace(a @ a.conj().T)
    pair = BellDiagonal((0.85, 0.07, 0.05, 0.03))
    protocol = apply_kraus(rho, kraus_operators(remote_cnot_channel(pair)), [2, 0])
    assert np.allclose(remote_cnot(rho, 2, 0, pair.weights), protocol, atol=1e-12)


def test_pairs_are_taken_in_delivery_order_and_time_waits_for_them_and_the_classical_bits():
    supply = werner_supply(1.0, count=10, period_s=0.5)
    clock = [0.0]
    _, used = embedded_state(X[0], split_qubits(3), supply, clock, classical_delay_s=0.001)
    assert len(used) == 8 and supply.taken == 8
    assert clock[0] == pytest.approx(8 * 0.5 + 0.002)  # the 8th pair comes at 4 s, then its two messages
    result = distributed_kernel(X[:3], split_qubits(3), werner_supply(1.0, count=10, period_s=0.5))
    assert result.pairs_reused == 24 - 10  # 24 remote CNOTs on 10 pairs: the rest reused, counted
    assert result.time_to_solution_s == pytest.approx(0.5 * 24)  # reuse k repeats the run: pair 24 at 12 s


def test_bad_input_is_refused():
    with pytest.raises(ParameterError, match="qubits"):
        distributed_kernel(np.zeros((2, 11)), split_qubits(11), werner_supply(1.0))
    with pytest.raises(ParameterError, match="assignment"):
        distributed_kernel(X, [0, 1], werner_supply(1.0))
    with pytest.raises(QfabricError, match="no entangled pairs were delivered"):
        PairSupply(np.array([]), np.zeros((0, 4)))
