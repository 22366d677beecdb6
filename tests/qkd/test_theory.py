"""Analytic key rates against the published numbers of REFERENCES.md s2."""

import math

import pytest

from qfabric.errors import ParameterError
from qfabric.qkd.theory import (
    Channel,
    DecoySettings,
    bbm92_rate,
    decoy_bb84_rate,
    finite_key_rate,
    h2,
    max_distance_km,
    minimum_pulses,
    optimise_settings,
)


def test_binary_entropy():
    assert h2(0.5) == pytest.approx(1.0)
    assert h2(0.11) == pytest.approx(0.4999, abs=1e-3)  # the 11 % BB84 threshold: 1 - 2 h(0.11) = 0
    assert h2(0) == 0 and h2(1) == 0


def test_decoy_bb84_published_rate_at_100_km():
    # Lo, Ma, Chen PRL 94, 230504 (2005) with the GYS set: R(100 km) = 1.72e-5 per pulse, within 1 %
    r = decoy_bb84_rate(Channel.gys(100), decoys="infinite")
    assert r.rate == pytest.approx(1.72e-5, rel=0.01)
    assert 0.3 < r.mu < 0.7


def test_decoy_bb84_cutoff_distances():
    def infinite(d):
        return decoy_bb84_rate(Channel.gys(d), "infinite").rate

    def practical(d):
        return decoy_bb84_rate(Channel.gys(d), "vacuum+weak").rate

    def gllp(d):
        return decoy_bb84_rate(Channel.gys(d), "none").rate

    assert max_distance_km(infinite) == pytest.approx(142, abs=1)  # REFERENCES.md s2: 142 +- 1 km
    assert max_distance_km(gllp) == pytest.approx(40, abs=2)  # no decoys: near 40 km
    assert 138 <= max_distance_km(practical) <= max_distance_km(infinite)  # within a few km


@pytest.mark.parametrize("decoys", ["infinite", "vacuum+weak", "none"])
def test_rates_stay_below_plob_everywhere(decoys):
    for d in range(0, 200, 10):
        r = decoy_bb84_rate(Channel.gys(d), decoys)
        assert r.rate < r.plob


def test_bbm92_threshold_and_closed_form():
    # r = 1 - 2 h(Q), vanishing at the 11 % threshold
    assert bbm92_rate(0.05, 0.05) == pytest.approx(1 - 2 * h2(0.05))
    assert bbm92_rate(0.11, 0.11) < 0.002
    assert bbm92_rate(0.12, 0.12) == 0


def test_finite_key_rate_rises_with_block_size_toward_asymptotic():
    # Lim et al. PRA 89, 022307 (2014): the finite-key rate rises with the block size toward the asymptotic
    # rate of the same settings (the optimiser re-tunes the settings at every size)
    ch = Channel(50)
    rates, ratios = [], []
    for pulses in (1e8, 1e9, 1e10, 1e11, 1e12, 1e13):
        settings = optimise_settings(ch, pulses)
        rates.append(finite_key_rate(ch, settings, pulses).rate)
        ratios.append(rates[-1] / finite_key_rate(ch, settings, pulses, asymptotic=True).rate)
    assert all(b > a for a, b in zip(rates, rates[1:], strict=False))
    assert all(b > a for a, b in zip(ratios, ratios[1:], strict=False))
    assert 0.9 < ratios[-1] < 1


def test_minimum_pulses_is_where_the_key_appears():
    ch, settings = Channel(50), DecoySettings()
    n = minimum_pulses(ch, settings)
    assert math.isfinite(n)
    assert finite_key_rate(ch, settings, n).rate > 0
    assert finite_key_rate(ch, settings, n / 1.5).rate == 0


def test_bad_parameters_are_refused():
    with pytest.raises(ParameterError, match="distance_km"):
        Channel(-5)
    with pytest.raises(ParameterError, match="e_det"):
        Channel(10, e_det=0.7)
    with pytest.raises(ParameterError, match="mu1 > mu2"):
        DecoySettings(mu1=0.1, mu2=0.2)
    with pytest.raises(ParameterError, match="nu"):
        decoy_bb84_rate(Channel(10), "vacuum+weak", mu=0.5, nu=0.6)
    with pytest.raises(ParameterError, match="decoys"):
        decoy_bb84_rate(Channel(10), "some")
