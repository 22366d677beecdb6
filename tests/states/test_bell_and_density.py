"""Pair states: closed forms of REFERENCES.md s1 and agreement of the two formalisms."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qfabric.errors import ParameterError
from qfabric.states import (
    BellDiagonal,
    DensityMatrix,
    bbpssw,
    compose,
    dejmps,
    dephase,
    depolarise,
    depolarising_time_probabilities,
    pauli_channel,
    swap,
    t1_t2_pauli_probabilities,
)
from qfabric.states import density as dm

weights = st.lists(st.floats(0.0, 1.0), min_size=4, max_size=4).filter(lambda w: sum(w) > 1e-3).map(
    lambda w: tuple(x / sum(w) for x in w)
)
probability = st.floats(0.0, 1.0)


def as_dm(state: BellDiagonal) -> DensityMatrix:
    return DensityMatrix.from_bell_diagonal(state)


# ---- closed forms -------------------------------------------------------------------------------


def test_werner_fidelity_closed_form():
    # REFERENCES.md s1: F = (1 + 3w) / 4
    for w in (0.0, 0.3, 0.9, 1.0):
        assert BellDiagonal.werner(w).fidelity() == pytest.approx((1 + 3 * w) / 4)
        assert as_dm(BellDiagonal.werner(w)).fidelity() == pytest.approx((1 + 3 * w) / 4)


def test_swap_of_werner_pairs_multiplies_parameters():
    # REFERENCES.md s1: ideal swap of Werner pairs, w = w1 * w2
    out = swap(BellDiagonal.werner(0.9), BellDiagonal.werner(0.7))
    assert out.werner_parameter == pytest.approx(0.63)


def test_depolarising_memory_decay_closed_form():
    # REFERENCES.md s1: w(t) = w0 exp(-t/T) for one depolarising memory; both halves -> exp(-2t/T)
    w0, t, T = 0.95, 0.4, 1.3
    probs = depolarising_time_probabilities(t, T)
    one = pauli_channel(BellDiagonal.werner(w0), probs)
    assert one.werner_parameter == pytest.approx(w0 * math.exp(-t / T))
    both = pauli_channel(one, probs)
    assert both.werner_parameter == pytest.approx(w0 * math.exp(-2 * t / T))


@pytest.mark.parametrize("fidelity", [0.6, 0.75, 0.9, 0.99])
def test_bbpssw_closed_form(fidelity):
    # Bennett et al. PRL 76, 722 (1996), as quoted in REFERENCES.md s1
    f, q = fidelity, (1 - fidelity) / 3
    p_expected = f**2 + 2 * f * (1 - f) / 3 + 5 * q**2
    s = BellDiagonal.from_fidelity(f)
    p, out = bbpssw(s, s)
    assert p == pytest.approx(p_expected)
    assert out.fidelity() == pytest.approx((f**2 + q**2) / p_expected)
    assert out.fidelity() > f  # purification helps above F = 1/2


def test_dejmps_closed_form_in_its_own_letters():
    # Deutsch et al. PRL 77, 2818 (1996): A=Phi+, B=Psi-, C=Psi+, D=Phi-
    A, B, C, D = 0.7, 0.1, 0.15, 0.05
    s = BellDiagonal((A, C, D, B))  # our order: Phi+, Psi+, Phi-, Psi-
    p, out = dejmps(s, s)
    N = (A + B) ** 2 + (C + D) ** 2
    assert p == pytest.approx(N)
    assert out.weights == pytest.approx(((A**2 + B**2) / N, (C**2 + D**2) / N, 2 * A * B / N, 2 * C * D / N))


def test_amplitude_damping_of_phi_plus_closed_form():
    # (|00> + sqrt(1-g)|11>)/sqrt2 branch plus g/2 |10><10|: F = (1 + sqrt(1-g))^2 / 4
    g = 0.37
    out = as_dm(BellDiagonal.perfect()).amplitude_damp(g, qubit=1)
    assert out.fidelity() == pytest.approx((1 + math.sqrt(1 - g)) ** 2 / 4)
    assert out.is_valid()
    assert not out.is_bell_diagonal()


def test_t1_t2_decay_rates():
    # coherence <X> decays as exp(-t/T2), population relaxation as exp(-t/T1)
    t, t1, t2 = 0.3, 1.0, 0.5
    pi, px, pz, py = t1_t2_pauli_probabilities(t, t1, t2)
    assert pi + px - pz - py == pytest.approx(math.exp(-t / t2))
    assert pi - px + pz - py == pytest.approx(math.exp(-t / t1))


def test_invalid_inputs_are_refused():
    with pytest.raises(ParameterError):
        BellDiagonal((0.5, 0.5, 0.5, 0.0))
    with pytest.raises(ParameterError):
        BellDiagonal.from_fidelity(1.2)
    with pytest.raises(ParameterError):
        depolarise(BellDiagonal.perfect(), -0.1)
    with pytest.raises(ParameterError, match="2 \\* t1_s"):
        t1_t2_pauli_probabilities(1.0, 1.0, 3.0)
    with pytest.raises(ParameterError):
        DensityMatrix(np.eye(3))


# ---- properties: validity and agreement of the formalisms -------------------------------------


@settings(max_examples=60, deadline=None)
@given(weights, weights)
def test_swap_agrees_with_gate_level_bell_measurement(a, b):
    sa, sb = BellDiagonal(a), BellDiagonal(b)
    expected = swap(sa, sb).weights
    outcomes = dm.swap(as_dm(sa), as_dm(sb))
    assert sum(p for p, _ in outcomes) == pytest.approx(1.0)
    for p, state in outcomes:
        assert p == pytest.approx(0.25)  # Bell-diagonal inputs: outcomes uniform
        assert state.is_valid()
        assert state.bell_weights() == pytest.approx(expected, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(weights, weights)
def test_purification_agrees_with_gate_level_circuit(a, b):
    sa, sb = BellDiagonal(a), BellDiagonal(b)
    for fast, slow in ((dejmps, dm.dejmps), (bbpssw, dm.bbpssw)):
        p, out = fast(sa, sb)
        p_dm, out_dm = slow(as_dm(sa), as_dm(sb))
        assert p == pytest.approx(p_dm, abs=1e-9)
        if p > 1e-6:
            assert out_dm.is_valid(atol=1e-7)
            assert out.weights == pytest.approx(out_dm.bell_weights(), abs=1e-7)


@settings(max_examples=60, deadline=None)
@given(weights, probability, probability, st.sampled_from([0, 1]))
def test_noise_channels_agree(a, p, q, qubit):
    s = BellDiagonal(a)
    rho = as_dm(s)
    assert depolarise(s, p).weights == pytest.approx(rho.depolarise(p, qubit).bell_weights(), abs=1e-9)
    assert dephase(s, q).weights == pytest.approx(rho.dephase(q, qubit).bell_weights(), abs=1e-9)
    out = rho.depolarise(p, qubit).dephase(q, qubit)
    assert out.is_valid() and out.is_bell_diagonal()


@settings(max_examples=60, deadline=None)
@given(weights, st.floats(0.0, 5.0), st.floats(0.1, 10.0), st.floats(0.05, 1.0), st.sampled_from([0, 1]))
def test_t1_t2_twirl_is_the_bell_diagonal_part_of_the_exact_channel(a, t, t1, t2_fraction, qubit):
    t2 = 2 * t1 * t2_fraction
    s = BellDiagonal(a)
    exact = as_dm(s).decohere_t1_t2(t, t1, t2, qubit)
    assert exact.is_valid()
    fast = pauli_channel(s, t1_t2_pauli_probabilities(t, t1, t2))
    assert fast.weights == pytest.approx(exact.bell_weights(), abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(weights)
def test_conversion_round_trip_is_exact(a):
    s = BellDiagonal(a)
    rho = as_dm(s)
    assert rho.is_valid()
    assert rho.to_bell_diagonal().weights == pytest.approx(s.weights, abs=1e-12)
    assert np.trace(rho.rho).real == pytest.approx(1.0)


@settings(max_examples=60, deadline=None)
@given(weights, weights)
def test_compose_is_a_probability_distribution_and_commutes(a, b):
    ab, ba = compose(a, b), compose(b, a)
    assert sum(ab) == pytest.approx(1.0)
    assert min(ab) >= -1e-15
    assert ab == pytest.approx(ba)
