"""Heralded generation: rates and fidelities against the formulas of the hardware model."""

import math

import numpy as np
import pytest

from qfabric.errors import ParameterError
from qfabric.hardware import BsmStation, Detector, Fibre, HardwareProfile, Memory, Source, get_profile
from qfabric.link import ClassicalChannel, HeraldedLink
from qfabric.units import fibre_delay_s


def profile(alpha=0.05, efficiency=1.0, detector=1.0, dark=0.0, visibility=1.0, emission=1.0, rate=1e9):
    return HardwareProfile(
        memory=Memory(efficiency=efficiency),
        source=Source(attempt_rate_hz=rate, bright_state_population=alpha, emission_fidelity=emission),
        station=BsmStation(Detector(efficiency=detector, dark_count_probability=dark), visibility=visibility),
    )


def test_fibre_closed_forms():
    # REFERENCES.md s1: eta = 10^(-alpha L / 10); light at about c / 1.47 (4.9 us/km)
    f = Fibre(length_km=100, attenuation_db_per_km=0.2)
    assert f.transmissivity == pytest.approx(0.01)
    assert f.delay_s == pytest.approx(100 / (299_792.458 / 1.47))
    assert fibre_delay_s(1) * 1e6 == pytest.approx(4.9, abs=0.01)


@pytest.mark.parametrize("length_km", [10, 50, 100])
def test_single_click_rate_scales_with_sqrt_eta_and_fidelity_is_one_minus_alpha(length_km):
    alpha = 0.02
    link = HeraldedLink(length_km, profile(alpha=alpha), "single-click")
    eta_arm = math.sqrt(Fibre(length_km).transmissivity)
    # exact for this model: one emitter detected, or both emitted and at least one detected
    p_expected = 2 * alpha * (1 - alpha) * eta_arm + alpha**2 * eta_arm * (2 - eta_arm)
    assert link.success_probability == pytest.approx(p_expected)
    # small-alpha limits: p ~ 2 alpha sqrt(eta), F ~ 1 - alpha
    assert link.success_probability == pytest.approx(2 * alpha * eta_arm, rel=0.05)
    f_expected = 2 * alpha * (1 - alpha) * eta_arm / p_expected
    assert link.heralded_state.fidelity() == pytest.approx(f_expected)
    assert link.heralded_state.fidelity() == pytest.approx(1 - alpha, abs=alpha / 2)


@pytest.mark.parametrize("length_km", [10, 50, 100])
def test_double_click_rate_scales_with_eta_and_fidelity_is_visibility_limited(length_km):
    eff = 0.8
    link = HeraldedLink(length_km, profile(detector=eff, visibility=0.9), "double-click")
    eta_link = Fibre(length_km).transmissivity
    assert link.success_probability == pytest.approx(eta_link * eff**2 / 2)  # eta_arm^2 / 2
    assert link.heralded_state.fidelity() == pytest.approx((1 + 0.9) / 2)


def test_dark_counts_and_emission_noise_lower_fidelity():
    clean = HeraldedLink(150, profile(alpha=0.05), "single-click")
    dark = HeraldedLink(150, profile(alpha=0.05, dark=1e-4), "single-click")
    noisy = HeraldedLink(150, profile(alpha=0.05, emission=0.95), "single-click")
    assert dark.success_probability > clean.success_probability
    assert dark.heralded_state.fidelity() < clean.heralded_state.fidelity()
    w_em = (4 * 0.95 - 1) / 3
    assert noisy.heralded_state.werner_parameter == pytest.approx(clean.heralded_state.werner_parameter * w_em**2)


def test_attempts_are_paced_by_the_round_trip():
    link = HeraldedLink(40, profile(rate=1e9), "single-click")
    assert link.attempt_period_s == pytest.approx(Fibre(40).delay_s)  # L/2 there, L/2 back
    assert link.herald_delay_s == pytest.approx(Fibre(40).delay_s)
    slow = HeraldedLink(1, profile(rate=1e3), "single-click")
    assert slow.attempt_period_s == pytest.approx(1e-3)


def test_geometric_attempts_match_success_probability():
    link = HeraldedLink(50, profile(alpha=0.1), "single-click")
    rng = np.random.default_rng(0)
    draws = np.array([link.attempts_until_success(rng) for _ in range(20000)])
    stderr = draws.std() / math.sqrt(len(draws))
    assert abs(draws.mean() - 1 / link.success_probability) < 4 * stderr
    assert draws.min() >= 1


def test_bounds_per_channel_use():
    for length in (10, 50, 150):
        for scheme in ("single-click", "double-click"):
            link = HeraldedLink(length, get_profile("near-term"), scheme)
            # distillable ebits never exceed the relay bound; double-click stays below PLOB too
            assert link.hashing_ebits_per_attempt <= link.relay_bound_per_use
            if scheme == "double-click":
                assert link.hashing_ebits_per_attempt <= link.plob_bound_per_use


def test_bad_hardware_is_refused():
    with pytest.raises(ParameterError, match="length_km"):
        Fibre(-1)
    with pytest.raises(ParameterError, match="efficiency"):
        Memory(efficiency=1.5)
    with pytest.raises(ParameterError, match="t2_s"):
        Memory(t1_s=1.0, t2_s=5.0)
    with pytest.raises(ParameterError, match="scheme"):
        HeraldedLink(10, profile(), "triple-click")
    with pytest.raises(ParameterError, match="profile"):
        get_profile("unobtainium")
    with pytest.raises(ParameterError):
        ClassicalChannel(latency_s=-1)


def test_profile_overrides_replace_only_the_named_fields():
    base = get_profile("nv-diamond")
    changed = base.with_overrides({"memory": {"t2_s": 0.5}, "swap_success_probability": 0.5})
    assert changed.memory.t2_s == 0.5 and changed.memory.efficiency == base.memory.efficiency
    assert changed.swap_success_probability == 0.5 and base.swap_success_probability == 1.0
    det = base.with_overrides({"station": {"detector": {"efficiency": 0.5}}})
    assert det.station.detector.efficiency == 0.5
    assert det.station.visibility == base.station.visibility
