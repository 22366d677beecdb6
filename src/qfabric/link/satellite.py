"""Satellite-to-ground downlinks over a pass: orbit geometry (:mod:`~qfabric.link.orbit`) driving the free-space
loss budget (:mod:`~qfabric.link.freespace`), and the Micius parameter sets the tests check against.

Micius parameters (each with its source; "assumed" marks what we could not confirm from the papers' text):

* QKD downlink (Liao et al., Nature 549, 43 (2017)): 850 nm; 300 mm transmit telescope; beam divergence about
  10 urad (read here as the full 1/e^2 angle: **our reading, not confirmed**); satellite altitude about 500 km,
  sun-synchronous (inclination 97.4 deg); Xinglong 1.0 m telescope (NAOC). Reported: link loss 22 dB at 645 km to
  35 dB at 1200 km; 300,939 secret bits from the 273 s pass of 19 Dec 2016 (1.1 kbit/s), QBER about 1.1 %;
  100 MHz source, intensities 0.8 / 0.1 / 0 sent 50 / 25 / 25 %.
* **Assumed** (not in what we could check): satellite pointing jitter 2 urad rms per axis, transmitter optics 0.6,
  zenith transmittance 0.5 at 850 nm over Xinglong (a low, hazy winter site), receiver optics 0.25 and detector
  efficiency 0.5 (silicon SPADs at 850 nm), 1e-6 background clicks per pulse, misalignment 1 %.
* Entanglement (Yin et al., Science 356, 1140 (2017)): 810 nm pairs, 5.9 million pairs/s at the source, two
  downlinks to Delingha and Lijiang (1203 km apart), summed length 1600-2400 km, two-downlink loss 64-82 dB, about
  1.1 coincidences per second. Transmitters of 300 mm (to Delingha) and 180 mm (to Lijiang) apertures and receive
  telescopes of 1.2 m (Delingha) and 1.8 m (Lijiang) are **our recollection, not confirmed**; divergences follow
  from diffraction with M^2 = 2.5 (**assumed**), receivers as above.

>>> link = micius_qkd_downlink()
>>> round(link.budget(645.0, 50.0).link_db)   # Liao et al.: 22 dB at 645 km
22
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from qfabric.errors import ParameterError
from qfabric.link.freespace import Atmosphere, FreeSpaceOptics, LossBudget, free_space_budget
from qfabric.link.orbit import CircularOrbit, GroundStation, look_angles

XINGLONG = GroundStation("xinglong", 40.3958, 117.5775)
DELINGHA = GroundStation("delingha", 37.3790, 97.7270)
LIJIANG = GroundStation("lijiang", 26.6940, 100.0293)
MICIUS_ALTITUDE_KM = 500.0
MICIUS_INCLINATION_DEG = 97.4


@dataclass(frozen=True)
class PassSeries:
    """One downlink sampled over time: times (s), elevation (deg), slant range (km), link and total loss (dB),
    and the transmissivity (0 while the satellite is below the minimum elevation)."""

    t_s: np.ndarray
    elevation_deg: np.ndarray
    range_km: np.ndarray
    link_db: np.ndarray
    total_db: np.ndarray
    transmissivity: np.ndarray


@dataclass(frozen=True)
class Downlink:
    """A satellite's optical downlink to one ground station."""

    orbit: CircularOrbit
    station: GroundStation
    optics: FreeSpaceOptics
    atmosphere: Atmosphere = Atmosphere()
    min_elevation_deg: float = 10.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.min_elevation_deg) and 0 < self.min_elevation_deg < 90):
            raise ParameterError("min_elevation_deg", self.min_elevation_deg, "an elevation in (0, 90) degrees")

    def budget(self, range_km: float, elevation_deg: float) -> LossBudget:
        return free_space_budget(self.optics, range_km, elevation_deg, "downlink", self.atmosphere)

    def series(self, start_s: float, end_s: float, dt_s: float = 1.0) -> PassSeries:
        """The link sampled at the middle of each ``dt_s`` slice from ``start_s`` to ``end_s``."""
        if not (math.isfinite(dt_s) and dt_s > 0):
            raise ParameterError("dt_s", dt_s, "a positive time step, s")
        n = max(1, int(round((end_s - start_s) / dt_s)))
        t = start_s + (np.arange(n) + 0.5) * dt_s
        elevation, distance = look_angles(self.orbit, self.station, t)
        link = np.full(n, np.inf)
        total = np.full(n, np.inf)
        for i in np.flatnonzero(elevation >= self.min_elevation_deg):
            b = self.budget(float(distance[i]), float(elevation[i]))
            link[i], total[i] = b.link_db, b.total_db
        eta = np.where(np.isfinite(total), 10 ** (-np.where(np.isfinite(total), total, 0.0) / 10), 0.0)
        return PassSeries(t, elevation, distance, link, total, eta)


def micius_qkd_optics() -> FreeSpaceOptics:
    """Micius's decoy-BB84 transmitter to the Xinglong 1 m telescope (sources in the module docstring)."""
    return FreeSpaceOptics(wavelength_nm=850.0, tx_aperture_m=0.3, rx_aperture_m=1.0, divergence_urad=10.0,
                           pointing_jitter_urad=2.0, tx_efficiency=0.6, rx_efficiency=0.25, detector_efficiency=0.5)


MICIUS_ATMOSPHERE = Atmosphere(zenith_transmittance=0.5)


def micius_qkd_downlink(at_s: float = 300.0) -> Downlink:
    """Micius straight over Xinglong at ``at_s`` (descending, as its night passes are)."""
    orbit = CircularOrbit.passing_over(XINGLONG, at_s, MICIUS_ALTITUDE_KM, MICIUS_INCLINATION_DEG)
    return Downlink(orbit, XINGLONG, micius_qkd_optics(), MICIUS_ATMOSPHERE)


def micius_liao_pass(closest_km: float = 645.0, at_s: float = 300.0) -> Downlink:
    """Micius over Xinglong on a pass whose shortest slant range is ``closest_km`` (at ``at_s``), as on the pass
    of 19 Dec 2016 that Liao et al. report (645 km closest, 1200 km at the ends of the 273 s of data)."""

    def closest(offset_deg: float) -> float:
        orbit = CircularOrbit.passing_over(XINGLONG, at_s, MICIUS_ALTITUDE_KM, MICIUS_INCLINATION_DEG,
                                           offset_deg=offset_deg)
        return float(look_angles(orbit, XINGLONG, np.linspace(at_s - 60, at_s + 60, 241))[1].min()) - closest_km

    offset = brentq(closest, 0.0, 15.0, xtol=1e-6)
    orbit = CircularOrbit.passing_over(XINGLONG, at_s, MICIUS_ALTITUDE_KM, MICIUS_INCLINATION_DEG, offset_deg=offset)
    return Downlink(orbit, XINGLONG, micius_qkd_optics(), MICIUS_ATMOSPHERE)


def micius_entanglement_downlinks(at_s: float = 300.0) -> tuple[Downlink, Downlink]:
    """Micius over the midpoint of Delingha and Lijiang at ``at_s``; its two entangled-photon downlinks."""
    middle = GroundStation("midpoint", (DELINGHA.latitude_deg + LIJIANG.latitude_deg) / 2,
                           (DELINGHA.longitude_deg + LIJIANG.longitude_deg) / 2)
    orbit = CircularOrbit.passing_over(middle, at_s, MICIUS_ALTITUDE_KM, MICIUS_INCLINATION_DEG)
    common = dict(wavelength_nm=810.0, beam_quality=2.5, pointing_jitter_urad=2.0, tx_efficiency=0.6,
                  rx_efficiency=0.25, detector_efficiency=0.5)
    to_delingha = FreeSpaceOptics(tx_aperture_m=0.3, rx_aperture_m=1.2, **common)
    to_lijiang = FreeSpaceOptics(tx_aperture_m=0.18, rx_aperture_m=1.8, **common)
    return (Downlink(orbit, DELINGHA, to_delingha, MICIUS_ATMOSPHERE),
            Downlink(orbit, LIJIANG, to_lijiang, MICIUS_ATMOSPHERE))
