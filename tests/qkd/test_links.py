"""QKD links end to end: simulation against theory, eavesdroppers, BBM92, reproducibility, bad input."""

import numpy as np
import pytest

from qfabric.errors import ParameterError
from qfabric.qkd.bb84 import DecoyBB84Link, InterceptResend, PhotonNumberSplitting
from qfabric.qkd.bbm92 import measure_pairs
from qfabric.qkd.distill import distill_decoy_bb84
from qfabric.qkd.link import run_bbm92, run_decoy_bb84
from qfabric.qkd.theory import (
    Channel,
    DecoySettings,
    bbm92_rate,
    expected_counts,
    finite_key_rate,
    optimise_settings,
)
from qfabric.states import BellDiagonal


@pytest.mark.parametrize("distance_km", [25, 50, 75])
def test_simulated_key_rate_agrees_with_finite_key_theory(distance_km):
    # Full chain (simulate, sift, Cascade, verify, Toeplitz PA) against Lim et al. (2014) evaluated on the
    # expected counts with the same settings, block size and achieved reconciliation efficiency.
    # Across seeds the ratio spreads by about 2 % (measured); tolerance 10 %, about 4 sigma.
    run = run_decoy_bb84(Channel(distance_km), 10**9, seed=3)
    s = run.summary()
    assert run.aborted_blocks == 0
    block_pulses = run.pulses // len(run.blocks)
    theory = finite_key_rate(Channel(distance_km, f_ec=s["reconciliation_efficiency"]), run.settings, block_pulses)
    assert s["secret_bits_per_pulse"] == pytest.approx(theory.rate, rel=0.10)
    assert s["secret_bits_per_pulse"] < s["plob_bits_per_pulse"]
    assert 1.0 < s["reconciliation_efficiency"] < 1.10
    for block in run.blocks:
        assert np.array_equal(block.alice_key, block.bob_key)


def test_detection_statistics_match_the_channel_model():
    ch, settings = Channel(40), DecoySettings()
    rec = DecoyBB84Link(ch, settings).simulate(10**9, np.random.default_rng(11))
    for k, mu in enumerate(settings.intensities[:2]):
        n = rec.pulses_by_intensity[k]
        expected = ch.gain(mu)
        assert abs(rec.gain(k) - expected) < 5 * np.sqrt(expected / n)  # Poisson standard error, 5 sigma
    c = rec.counts()
    e_signal = c["m_z"][0] / c["n_z"][0]
    assert e_signal == pytest.approx(ch.error(settings.mu1), abs=5 * np.sqrt(e_signal / c["n_z"][0]))


def test_simulated_afterpulsing_matches_the_channel_model():
    # each detection brings an after-pulse click with probability p_ap and a random bit (Lim et al. 2014):
    # gains (1 + p_ap) Q_mu and QBER (E_mu + p_ap / 2) / (1 + p_ap) per intensity, within 5 sigma
    ch, settings = Channel(40, afterpulse_probability=0.04), DecoySettings()
    rec = DecoyBB84Link(ch, settings).simulate(3 * 10**8, np.random.default_rng(12))
    for k, mu in enumerate(settings.intensities):
        n, expected = rec.pulses_by_intensity[k], ch.gain(mu)
        assert abs(rec.gain(k) - expected) < 5 * np.sqrt(expected / n)
    assert rec.gain(0) / Channel(40).gain(settings.mu1) == pytest.approx(1.04, abs=0.004)  # the 4 % is there
    c = rec.counts()
    for basis in ("z", "x"):
        for k in (0, 1):
            n = c[f"n_{basis}"][k]
            e = ch.error(settings.intensities[k])
            assert c[f"m_{basis}"][k] / n == pytest.approx(e, abs=5 * np.sqrt(e * (1 - e) / n))
    run = run_decoy_bb84(ch.at(25), 10**8, seed=5)  # and through post-processing to a key
    expected = expected_counts(ch.at(25), run.settings, 1.0)
    assert run.key_bits > 0 and run.aborted_blocks == 0
    assert run.summary()["qber"] == pytest.approx(expected["m_z"].sum() / expected["n_z"].sum(), abs=0.002)


def test_intercept_resend_on_every_signal_is_detected():
    run = run_decoy_bb84(Channel(20), 10**8, eavesdropper=InterceptResend(1.0), seed=1)
    block = run.blocks[0]
    assert 0.23 < block.qber_estimate < 0.28  # 25 % from Eve plus the channel's own errors
    assert run.key_bits == 0 and block.aborted and "threshold" in block.reason


def test_intercept_resend_on_a_fraction_shrinks_the_key_as_estimated():
    honest = run_decoy_bb84(Channel(20), 3 * 10**8, seed=4)
    settings = honest.settings
    attacked = run_decoy_bb84(Channel(20), 3 * 10**8, settings=settings, eavesdropper=InterceptResend(0.06), seed=4)
    h, a = honest.blocks[0], attacked.blocks[0]
    # each intercepted signal is wrong a quarter of the time: QBER rises by about fraction / 4
    assert a.qber_estimate - h.qber_estimate == pytest.approx(0.06 / 4, abs=0.006)
    assert a.finite_key.phi1 > h.finite_key.phi1
    assert 0 < attacked.key_bits < 0.8 * honest.key_bits


def test_photon_number_splitting_is_caught_by_the_decoys():
    ch = Channel(50)
    settings = optimise_settings(ch, 10**9)
    honest = DecoyBB84Link(ch, settings).simulate(10**9, np.random.default_rng(6))
    pns = DecoyBB84Link(ch, settings, PhotonNumberSplitting()).simulate(10**9, np.random.default_rng(6))
    # Eve keeps Bob's signal gain honest, but the weak decoy's gain collapses ...
    assert pns.gain(0) == pytest.approx(honest.gain(0), rel=0.02)
    assert pns.gain(1) < 0.6 * honest.gain(1)
    # ... so the single-photon bound vanishes and no key is produced, while the honest run yields one
    assert not distill_decoy_bb84(honest, settings, seed=1).aborted
    attacked = distill_decoy_bb84(pns, settings, seed=1)
    assert attacked.aborted and attacked.key_bits == 0 and "finite-key length" in attacked.reason


def test_same_seed_same_key_bit_for_bit():
    a = run_decoy_bb84(Channel(30), 10**8, seed=9)
    b = run_decoy_bb84(Channel(30), 10**8, seed=9)
    c = run_decoy_bb84(Channel(30), 10**8, seed=10)
    assert a.key_bits > 0
    assert np.array_equal(a.blocks[0].alice_key, b.blocks[0].alice_key)
    assert not np.array_equal(a.blocks[0].alice_key[:1000], c.blocks[0].alice_key[:1000])


def test_bbm92_on_werner_pairs():
    f = 0.97
    weights = np.tile(BellDiagonal.from_fidelity(f).weights, (400_000, 1))
    run = run_bbm92(weights, seed=2)
    s = run.summary()
    q = 2 * (1 - f) / 3  # a Werner pair errs in either basis with two of its three error terms
    assert s["qber"] == pytest.approx(q, abs=0.002)
    # finite-size key per sifted bit sits below the asymptotic 1 - 2 h(Q) (with f ~ 1.06) but close
    per_sifted = s["key_bits"] / s["sifted_bits"]
    assert 0.6 * bbm92_rate(q, q) < per_sifted < bbm92_rate(q, q)
    assert np.array_equal(run.blocks[0].alice_key, run.blocks[0].bob_key)


def test_bbm92_aborts_on_bad_pairs():
    weights = np.tile(BellDiagonal.from_fidelity(0.8).weights, (50_000, 1))  # QBER ~13 %
    run = run_bbm92(weights, seed=1)
    assert run.key_bits == 0 and "threshold" in run.blocks[0].reason
    rec = measure_pairs(np.tile([1.0, 0, 0, 0], (1000, 1)), rng=np.random.default_rng(1))
    same = rec.alice_basis == rec.bob_basis
    assert np.array_equal(rec.alice_bit[same], rec.bob_bit[same])  # perfect pairs: perfect correlation


def test_bad_input_gets_clear_errors():
    with pytest.raises(ParameterError, match="distance_km"):
        Channel(-1)
    with pytest.raises(ParameterError, match="fraction"):
        InterceptResend(1.5)
    with pytest.raises(ParameterError, match="pulses"):
        run_decoy_bb84(Channel(10), 0)
    with pytest.raises(ParameterError, match=r"at least .* pulses per block for a positive finite key"):
        run_decoy_bb84(Channel(50), 10**6)
    with pytest.raises(ParameterError, match="N x 4"):
        measure_pairs(np.zeros((3, 3)))
    with pytest.raises(ParameterError, match="sum to 1"):
        measure_pairs(np.full((3, 4), 0.5))
