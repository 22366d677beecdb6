"""The free-space channel and the orbit geometry against closed forms, and their bad input."""

import math

import numpy as np
import pytest

from qfabric.errors import ParameterError
from qfabric.link.freespace import (
    Atmosphere,
    FreeSpaceOptics,
    air_mass,
    coherence_radius_m,
    free_space_budget,
    horizon_range_km,
)
from qfabric.link.orbit import (
    EARTH_MU_KM3_S2,
    EARTH_RADIUS_KM,
    CircularOrbit,
    GroundStation,
    link_windows,
    look_angles,
    overhead_pass_duration_s,
    slant_range_km,
)

VACUUM = Atmosphere(zenith_transmittance=1.0, turbulence=False, extinction_db_per_km=0.0)


def test_far_field_divergence_is_m2_lambda_over_pi_w0():
    optics = FreeSpaceOptics(wavelength_nm=800, tx_aperture_m=0.2, beam_quality=1.5)
    theta = 1.5 * 800e-9 / (math.pi * 0.1)
    assert optics.half_angle_rad == pytest.approx(theta, rel=1e-12)
    # far field: w(L) / L -> theta (within 1e-6 at 1000 Rayleigh ranges)
    z_r = math.pi * 0.1**2 / (1.5 * 800e-9)
    assert optics.beam_radius_m(1000 * z_r) / (1000 * z_r) == pytest.approx(theta, rel=1e-6)
    # at one Rayleigh range the beam is sqrt(2) wider than its waist
    assert optics.beam_radius_m(z_r) == pytest.approx(0.1 * math.sqrt(2), rel=1e-12)


def test_small_aperture_limit_collects_2a2_over_w2():
    """Far field, aperture much smaller than the beam: collected fraction -> 2 a^2 / w^2 (to 1e-3)."""
    optics = FreeSpaceOptics(wavelength_nm=850, tx_aperture_m=0.1, rx_aperture_m=0.05, divergence_urad=20)
    b = free_space_budget(optics, 1000.0, 90.0, "downlink", VACUUM)
    w = math.hypot(0.05, 10e-6 * 1e6)
    assert 10 ** (-b.terms_db["diffraction"] / 10) == pytest.approx(2 * 0.025**2 / w**2, rel=1e-3)
    assert b.total_db == pytest.approx(b.terms_db["diffraction"], abs=1e-12)  # nothing else in a vacuum


def test_large_aperture_collects_everything():
    optics = FreeSpaceOptics(tx_aperture_m=0.01, rx_aperture_m=1.0, divergence_urad=200)
    assert free_space_budget(optics, 1.0, path="horizontal", atmosphere=VACUUM).total_db < 1e-9


def test_pointing_jitter_adds_4_sigma2_l2_to_the_beam():
    """Mean intensity of a jittered Gaussian beam is Gaussian with w^2 + 4 sigma^2 L^2: exact collected power."""
    optics = FreeSpaceOptics(tx_aperture_m=0.3, rx_aperture_m=1.0, divergence_urad=10, pointing_jitter_urad=3)
    b = free_space_budget(optics, 800.0, 90.0, "downlink", VACUUM)
    w0 = math.hypot(0.15, 5e-6 * 8e5)
    w = math.hypot(w0, 2 * 3e-6 * 8e5)
    expected = -10 * math.log10(-math.expm1(-0.5 / w**2)) + 10 * math.log10(-math.expm1(-0.5 / w0**2))
    assert b.terms_db["pointing"] == pytest.approx(expected, rel=1e-9)
    # and a Monte Carlo of the jitter agrees with the closed form (small aperture: power ~ exp(-2 r^2 / w0^2)),
    # 200k draws, seed 1: relative standard error ~ 0.2 %, tolerance 1 %
    rng = np.random.default_rng(1)
    offsets = rng.normal(0.0, 3e-6 * 8e5, size=(200_000, 2))
    mc = np.mean(np.exp(-2 * np.sum(offsets**2, axis=1) / w0**2))
    assert mc == pytest.approx(w0**2 / w**2, rel=0.01)


def test_air_mass_kasten_young():
    assert air_mass(90.0) == pytest.approx(1.0, abs=1e-3)
    for elevation in (30.0, 60.0, 75.0):  # plane-parallel limit 1 / sin(e) away from the horizon, within 0.5 %
        assert air_mass(elevation) == pytest.approx(1 / math.sin(math.radians(elevation)), rel=5e-3)
    assert 37 < air_mass(0.0) < 39  # about 38 air masses at the horizon (Kasten & Young 1989)


def test_atmosphere_term_is_zenith_loss_times_air_mass():
    optics = FreeSpaceOptics()
    atmosphere = Atmosphere(zenith_transmittance=0.7)
    b = free_space_budget(optics, 900.0, 30.0, "downlink", atmosphere)
    assert b.terms_db["atmosphere"] == pytest.approx(-10 * math.log10(0.7) * air_mass(30.0), rel=1e-12)


def test_horizontal_coherence_radius_is_the_spherical_wave_closed_form():
    """Uniform Cn^2 over L: rho0 = (1.46 * 3/8 k^2 Cn^2 L)^(-3/5) = (0.5475 k^2 Cn^2 L)^(-3/5)."""
    atmosphere = Atmosphere(cn2_ground=1e-14)
    k = 2 * math.pi / 850e-9
    cn2 = atmosphere.cn2(0.0)
    rho0 = coherence_radius_m(atmosphere, 850, 5.0, 0.0, "horizontal")
    assert rho0 == pytest.approx((0.5475 * k * k * cn2 * 5e3) ** (-3 / 5), rel=1e-9)


def test_uplink_spreads_and_downlink_does_not():
    """The same path both ways: the uplink's turbulence sits at its transmitter (dB of spreading), the downlink's at
    its receiver (negligible: below 0.01 dB)."""
    optics = FreeSpaceOptics(wavelength_nm=850, tx_aperture_m=0.3, rx_aperture_m=0.3)
    up = free_space_budget(optics, 800.0, 40.0, "uplink")
    down = free_space_budget(optics, 800.0, 40.0, "downlink")
    assert up.terms_db["turbulence"] > 3.0
    assert down.terms_db["turbulence"] < 0.01
    assert down.coherence_radius_m > 30 * up.coherence_radius_m


def test_hufnagel_valley_5_7_gives_r0_of_5_cm_at_500_nm():
    """HV 5/7 is named for r0 = 5 cm (at 500 nm, zenith) and isoplanatic angle 7 urad; plane wave
    r0 = (0.423 k^2 int Cn^2 dh)^(-3/5) within 5 %."""
    from scipy.integrate import quad

    atmosphere = Atmosphere()
    k = 2 * math.pi / 500e-9
    integral = quad(atmosphere.cn2, 0, 30e3, points=[100, 1000, 10_000], limit=200)[0]
    assert (0.423 * k * k * integral) ** (-3 / 5) == pytest.approx(0.05, rel=0.05)


def test_budget_prints_every_term():
    text = str(free_space_budget(FreeSpaceOptics(), 700.0, 45.0))
    for term in ("diffraction", "turbulence", "pointing", "atmosphere", "detector", "total"):
        assert term in text


@pytest.mark.parametrize("field, kwargs", [
    ("tx_aperture_m", {"tx_aperture_m": -0.3}),
    ("rx_aperture_m", {"rx_aperture_m": 0.0}),
    ("beam_quality", {"beam_quality": 0.5}),
    ("divergence_urad", {"divergence_urad": 0.1}),  # below the diffraction limit of 0.3 m at 850 nm (3.6 urad)
    ("pointing_jitter_urad", {"pointing_jitter_urad": -1.0}),
    ("detector_efficiency", {"detector_efficiency": 1.5}),
])
def test_bad_optics_name_the_field(field, kwargs):
    with pytest.raises(ParameterError, match=field):
        FreeSpaceOptics(**kwargs)


@pytest.mark.parametrize("kwargs, field", [
    ({"elevation_deg": 95.0}, "elevation_deg"),
    ({"elevation_deg": -5.0}, "elevation_deg"),
    ({"elevation_deg": 0.0}, "elevation_deg"),  # a slant path needs the satellite above the horizon
    ({"range_km": -1.0}, "range_km"),
    ({"path": "sideways"}, "path"),
])
def test_bad_paths_name_the_field(kwargs, field):
    args = {"range_km": 500.0, "elevation_deg": 45.0, "path": "downlink"} | kwargs
    with pytest.raises(ParameterError, match=field):
        free_space_budget(FreeSpaceOptics(), **args)


def test_horizon_range():
    r = EARTH_RADIUS_KM
    assert horizon_range_km(0, 0) == 0
    assert horizon_range_km(1000, 1000) == pytest.approx(2 * math.sqrt((r + 1) ** 2 - r * r), rel=1e-12)


# --- orbits -----------------------------------------------------------------------------------------------------


def test_range_at_zenith_is_the_altitude_and_at_the_horizon_the_tangent():
    assert slant_range_km(550.0, 90.0) == pytest.approx(550.0, abs=1e-9)
    r = EARTH_RADIUS_KM + 550.0
    assert slant_range_km(550.0, 0.0) == pytest.approx(math.sqrt(r * r - EARTH_RADIUS_KM**2), rel=1e-12)


def test_overhead_pass_geometry_matches_closed_forms():
    """Non-rotating Earth, satellite straight overhead at 300 s: elevation 90 and range = altitude then; at every
    sample the range is sqrt(R^2 + r^2 - 2 R r cos(n |t - 300|)); the window above 15 deg lasts the closed form."""
    station = GroundStation("g", 35.0, 20.0)
    orbit = CircularOrbit.passing_over(station, 300.0, 600.0, inclination_deg=60.0, earth_rotation=False)
    t = np.linspace(0.0, 600.0, 61)
    elevation, distance = look_angles(orbit, station, t)
    assert elevation[30] == pytest.approx(90.0, abs=1e-6)
    assert distance[30] == pytest.approx(600.0, abs=1e-6)
    r, n = EARTH_RADIUS_KM + 600.0, math.sqrt(EARTH_MU_KM3_S2 / (EARTH_RADIUS_KM + 600.0) ** 3)
    psi = n * np.abs(t - 300.0)
    np.testing.assert_allclose(distance, np.sqrt(EARTH_RADIUS_KM**2 + r * r - 2 * EARTH_RADIUS_KM * r * np.cos(psi)),
                               rtol=1e-9)
    (window,) = link_windows(orbit, station, 0.0, 900.0, min_elevation_deg=15.0, step_s=2.0)
    assert window.duration_s == pytest.approx(overhead_pass_duration_s(600.0, 15.0), abs=1e-3)
    assert window.culmination_s == pytest.approx(300.0, abs=0.1)
    assert window.max_elevation_deg == pytest.approx(90.0, abs=0.05)


def test_earth_rotation_keeps_the_overhead_point_and_shifts_the_pass():
    station = GroundStation("g", 40.0, 117.0)
    rotating = CircularOrbit.passing_over(station, 400.0, 500.0)
    elevation, distance = look_angles(rotating, station, [400.0])
    assert elevation[0] == pytest.approx(90.0, abs=1e-6) and distance[0] == pytest.approx(500.0, abs=1e-6)
    fixed = dataclass_replace(rotating, earth_rotation=False)
    assert look_angles(fixed, station, [400.0])[0][0] < 89.0  # the station is ~0.03 rad elsewhere without rotation


def dataclass_replace(obj, **changes):
    import dataclasses

    return dataclasses.replace(obj, **changes)


def test_orbit_period_is_keplers():
    orbit = CircularOrbit(500.0)
    assert orbit.period_s == pytest.approx(2 * math.pi * math.sqrt((EARTH_RADIUS_KM + 500) ** 3 / EARTH_MU_KM3_S2))
    assert 94 * 60 < orbit.period_s < 95 * 60  # a 500 km LEO orbits in about 94.6 minutes


@pytest.mark.parametrize("kwargs, field", [
    ({"altitude_km": -10.0}, "altitude_km"),
    ({"altitude_km": 60.0}, "altitude_km"),
    ({"inclination_deg": 200.0}, "inclination_deg"),
])
def test_bad_orbits_name_the_field(kwargs, field):
    with pytest.raises(ParameterError, match=field):
        CircularOrbit(**({"altitude_km": 500.0} | kwargs))


def test_bad_stations_and_windows_name_the_field():
    with pytest.raises(ParameterError, match="latitude_deg"):
        GroundStation("g", 95.0, 0.0)
    station = GroundStation("g", 0.0, 0.0)
    with pytest.raises(ParameterError, match="min_elevation_deg"):
        link_windows(CircularOrbit(500.0), station, 0, 100, min_elevation_deg=90.0)
    with pytest.raises(ParameterError, match="inclination_deg"):  # an equatorial orbit never passes over 60 N
        CircularOrbit.passing_over(GroundStation("north", 60.0, 0.0), 0.0, 500.0, inclination_deg=10.0)
