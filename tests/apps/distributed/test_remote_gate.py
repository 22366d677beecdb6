"""The teleported CNOT simulated gate by gate: exact with a perfect pair, the closed-form Pauli channel with any
Bell-diagonal pair, a valid channel with other pair states, and its Kraus form applies it inside larger registers."""

import numpy as np
import pytest

from qfabric.apps.distributed.remote import (
    CNOT,
    apply,
    apply_kraus,
    average_gate_fidelity,
    bell_diagonal_remote_cnot,
    kraus_operators,
    remote_cnot_channel,
)
from qfabric.states import BellDiagonal
from qfabric.states.density import DensityMatrix


def random_state(n: int, rng) -> np.ndarray:
    a = rng.normal(size=(2**n, 2**n)) + 1j * rng.normal(size=(2**n, 2**n))
    rho = a @ a.conj().T
    return rho / np.trace(rho)


def test_a_perfect_pair_gives_exactly_a_cnot():
    channel = remote_cnot_channel(BellDiagonal((1.0, 0.0, 0.0, 0.0)))
    assert np.allclose(channel, np.kron(CNOT, CNOT.conj()), atol=1e-12)


@pytest.mark.parametrize("weights", [(0.925, 0.025, 0.025, 0.025), (0.8, 0.1, 0.06, 0.04), (0.5, 0.0, 0.5, 0.0),
                                     (0.7, 0.3, 0.0, 0.0)])
def test_a_bell_diagonal_pair_gives_the_closed_form_pauli_channel(weights):
    pair = BellDiagonal(weights)
    assert np.allclose(remote_cnot_channel(pair), bell_diagonal_remote_cnot(pair), atol=1e-12)
    assert average_gate_fidelity(remote_cnot_channel(pair), CNOT) == pytest.approx((4 * weights[0] + 1) / 5, abs=1e-12)


def test_werner_pairs_lose_gate_fidelity_linearly_in_the_werner_parameter():
    fidelities = [average_gate_fidelity(remote_cnot_channel(BellDiagonal.werner(w)), CNOT) for w in (1, 0.9, 0.8, 0.5)]
    assert fidelities == pytest.approx([1 - 0.6 * (1 - w) for w in (1, 0.9, 0.8, 0.5)], abs=1e-12)


def test_an_amplitude_damped_pair_gives_a_valid_channel_worse_than_ideal():
    pair = DensityMatrix.from_bell_diagonal(BellDiagonal.werner(1.0)).amplitude_damp(0.2, qubit=1)
    channel = remote_cnot_channel(pair)
    kraus = kraus_operators(channel)
    assert np.allclose(sum(k.conj().T @ k for k in kraus), np.eye(4), atol=1e-10)  # trace preserving
    assert 0.8 < average_gate_fidelity(channel, CNOT) < 1 - 1e-3


def test_the_kraus_form_acts_on_any_two_qubits_of_a_larger_register():
    rng = np.random.default_rng(4)
    rho = random_state(4, rng)
    pair = BellDiagonal((0.8, 0.1, 0.06, 0.04))
    out = apply_kraus(rho, kraus_operators(remote_cnot_channel(pair)), [3, 1])  # control 3, target 1
    expected = np.zeros_like(rho)
    x, z = np.array([[0, 1], [1, 0]]), np.diag([1, -1])
    for k, w in enumerate(pair.weights):
        branch = apply(rho, CNOT, [3, 1])
        branch = apply(branch, np.linalg.matrix_power(x, k & 1), [1])
        branch = apply(branch, np.linalg.matrix_power(z, k >> 1), [3])
        expected += w * branch
    assert np.allclose(out, expected, atol=1e-12)
    assert np.trace(out) == pytest.approx(1)


def test_apply_matches_the_full_operator_built_qubit_by_qubit():
    from qfabric.states.density import _two_qubit_gate

    rng = np.random.default_rng(9)
    rho = random_state(4, rng)
    full = _two_qubit_gate(CNOT, 3, 1, 4)
    assert np.allclose(apply(rho, CNOT, [3, 1]), full @ rho @ full.conj().T, atol=1e-12)
