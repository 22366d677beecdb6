"""Satellite passes: a circular orbit over a spherical, optionally rotating Earth, seen from ground stations.

Positions are Earth-centred inertial (km); at ``t = 0`` the Greenwich meridian points along x. With
``earth_rotation`` the stations turn with the Earth (7.292e-5 rad/s); without it they stay put, which makes the
closed forms of an overhead pass exact: slant range ``d(psi) = sqrt(R^2 + r^2 - 2 R r cos psi)`` at central angle
``psi = n t`` and a pass above elevation ``e`` lasting ``2 (arccos(R cos e / r) - e) / n``. No J2, drag or refraction.

>>> station = GroundStation("xinglong", 40.3958, 117.5775)
>>> orbit = CircularOrbit.passing_over(station, at_s=300.0, altitude_km=500.0)
>>> round(float(look_angles(orbit, station, [300.0])[0][0]), 6)   # elevation at 300 s: straight overhead
90.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from qfabric.errors import ParameterError

EARTH_RADIUS_KM = 6371.0
EARTH_MU_KM3_S2 = 398_600.4418  # standard gravitational parameter of the Earth
EARTH_ROTATION_RAD_S = 7.2921159e-5  # sidereal rotation rate


@dataclass(frozen=True)
class GroundStation:
    """A telescope on the ground: geocentric latitude and longitude in degrees (heights are ignored)."""

    name: str
    latitude_deg: float
    longitude_deg: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.latitude_deg) and -90 <= self.latitude_deg <= 90):
            raise ParameterError("latitude_deg", self.latitude_deg, "a latitude in [-90, 90] degrees")
        if not (math.isfinite(self.longitude_deg) and -180 <= self.longitude_deg <= 360):
            raise ParameterError("longitude_deg", self.longitude_deg, "a longitude in [-180, 360] degrees")

    def position_km(self, t_s: np.ndarray, earth_rotation: bool) -> np.ndarray:
        """Inertial position at times ``t_s``, shape ``(n, 3)``."""
        t = np.atleast_1d(np.asarray(t_s, dtype=float))
        lat = math.radians(self.latitude_deg)
        lon = math.radians(self.longitude_deg) + (EARTH_ROTATION_RAD_S * t if earth_rotation else 0.0 * t)
        return EARTH_RADIUS_KM * np.stack([math.cos(lat) * np.cos(lon), math.cos(lat) * np.sin(lon),
                                           np.full_like(t, math.sin(lat))], axis=1)


@dataclass(frozen=True)
class CircularOrbit:
    """A circular orbit: altitude, inclination, right ascension of the ascending node, and the argument of
    latitude at ``t = 0`` (``phase_deg``, measured from the ascending node along the orbit)."""

    altitude_km: float
    inclination_deg: float = 97.4
    raan_deg: float = 0.0
    phase_deg: float = 0.0
    earth_rotation: bool = True

    def __post_init__(self) -> None:
        if not (math.isfinite(self.altitude_km) and 100 <= self.altitude_km <= 50_000):
            raise ParameterError("altitude_km", self.altitude_km, "an orbit altitude in [100, 50000] km")
        if not (math.isfinite(self.inclination_deg) and 0 <= self.inclination_deg <= 180):
            raise ParameterError("inclination_deg", self.inclination_deg, "an inclination in [0, 180] degrees")
        for name in ("raan_deg", "phase_deg"):
            if not math.isfinite(getattr(self, name)):
                raise ParameterError(name, getattr(self, name), "a finite angle in degrees")

    @property
    def radius_km(self) -> float:
        return EARTH_RADIUS_KM + self.altitude_km

    @property
    def mean_motion_rad_s(self) -> float:
        """Angular rate along the orbit: ``sqrt(mu / r^3)``."""
        return math.sqrt(EARTH_MU_KM3_S2 / self.radius_km**3)

    @property
    def period_s(self) -> float:
        return 2 * math.pi / self.mean_motion_rad_s

    def position_km(self, t_s: np.ndarray) -> np.ndarray:
        """Inertial position at times ``t_s``, shape ``(n, 3)``."""
        t = np.atleast_1d(np.asarray(t_s, dtype=float))
        u = math.radians(self.phase_deg) + self.mean_motion_rad_s * t
        raan, inc = math.radians(self.raan_deg), math.radians(self.inclination_deg)
        cu, su = np.cos(u), np.sin(u)
        return self.radius_km * np.stack([math.cos(raan) * cu - math.sin(raan) * su * math.cos(inc),
                                          math.sin(raan) * cu + math.cos(raan) * su * math.cos(inc),
                                          su * math.sin(inc)], axis=1)

    @classmethod
    def passing_over(cls, station: GroundStation, at_s: float, altitude_km: float, inclination_deg: float = 97.4,
                     offset_deg: float = 0.0, ascending: bool = False, earth_rotation: bool = True) -> CircularOrbit:
        """The orbit whose satellite is straight over ``station`` at ``at_s`` (elevation 90 degrees); ``offset_deg``
        turns the orbit plane about the pole by that angle, so the pass culminates lower. ``ascending``: the
        satellite moves north (a sun-synchronous dawn-dusk orbit crosses mid-latitudes at night descending)."""
        inc = math.radians(inclination_deg)
        lat = math.radians(station.latitude_deg)
        if abs(math.sin(lat)) > math.sin(inc) + 1e-12:
            raise ParameterError("inclination_deg", inclination_deg, f"an orbit that reaches latitude "
                                 f"{station.latitude_deg:g} (inclination between |lat| and 180 - |lat|)")
        u = math.asin(max(-1.0, min(1.0, math.sin(lat) / math.sin(inc))))
        if not ascending:
            u = math.pi - u
        lon = math.radians(station.longitude_deg) + (EARTH_ROTATION_RAD_S * at_s if earth_rotation else 0.0)
        raan = lon - math.atan2(math.cos(inc) * math.sin(u), math.cos(u)) + math.radians(offset_deg)
        n = math.sqrt(EARTH_MU_KM3_S2 / (EARTH_RADIUS_KM + altitude_km) ** 3)
        return cls(altitude_km, inclination_deg, math.degrees(raan) % 360, math.degrees(u - n * at_s) % 360,
                   earth_rotation)


def look_angles(orbit: CircularOrbit, station: GroundStation, t_s) -> tuple[np.ndarray, np.ndarray]:
    """Elevation (degrees) and slant range (km) of the satellite from ``station`` at times ``t_s``."""
    sat = orbit.position_km(t_s)
    ground = station.position_km(t_s, orbit.earth_rotation)
    line = sat - ground
    distance = np.linalg.norm(line, axis=1)
    up = ground / EARTH_RADIUS_KM
    elevation = np.degrees(np.arcsin(np.clip(np.sum(line * up, axis=1) / distance, -1.0, 1.0)))
    return elevation, distance


@dataclass(frozen=True)
class Pass:
    """A link window: the satellite above the minimum elevation from ``start_s`` to ``end_s``."""

    station: str
    start_s: float
    end_s: float
    culmination_s: float
    max_elevation_deg: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def link_windows(orbit: CircularOrbit, station: GroundStation, start_s: float, end_s: float,
                 min_elevation_deg: float = 10.0, step_s: float = 1.0) -> list[Pass]:
    """The passes of ``orbit`` over ``station`` between ``start_s`` and ``end_s`` above ``min_elevation_deg``:
    sampled every ``step_s``, edges refined by root finding (a window open at either end is cut there).

    >>> st = GroundStation("g", 0.0, 0.0)
    >>> orbit = CircularOrbit.passing_over(st, 400.0, 500.0, earth_rotation=False)
    >>> [round(p.duration_s) for p in link_windows(orbit, st, 0, 800, min_elevation_deg=10)]
    [443]
    """
    if not (math.isfinite(min_elevation_deg) and 0 <= min_elevation_deg < 90):
        raise ParameterError("min_elevation_deg", min_elevation_deg, "an elevation in [0, 90) degrees")
    if not (end_s > start_s):
        raise ParameterError("end_s", end_s, f"a time after start_s = {start_s:g} s")
    if not (math.isfinite(step_s) and step_s > 0):
        raise ParameterError("step_s", step_s, "a positive time step, s")
    t = np.linspace(start_s, end_s, max(2, int(math.ceil((end_s - start_s) / step_s)) + 1))
    elevation, _ = look_angles(orbit, station, t)
    above = elevation >= min_elevation_deg

    def crossing(a: float, b: float) -> float:
        return brentq(lambda x: look_angles(orbit, station, [x])[0][0] - min_elevation_deg, a, b, xtol=1e-6)

    windows = []
    i = 0
    while i < len(t):
        if not above[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(t) and above[j + 1]:
            j += 1
        begin = t[0] if i == 0 else crossing(t[i - 1], t[i])
        finish = t[-1] if j == len(t) - 1 else crossing(t[j], t[j + 1])
        k = i + int(np.argmax(elevation[i:j + 1]))
        lo, hi = t[max(k - 1, i)], t[min(k + 1, j)]
        fine = np.linspace(lo, hi, 201)
        fine_elevation = look_angles(orbit, station, fine)[0]
        m = int(np.argmax(fine_elevation))
        windows.append(Pass(station.name, float(begin), float(finish), float(fine[m]), float(fine_elevation[m])))
        i = j + 1
    return windows


def overhead_pass_duration_s(altitude_km: float, min_elevation_deg: float) -> float:
    """Closed form for a pass straight overhead of a non-rotating Earth: ``2 (arccos(R cos e / r) - e) / n``.

    >>> round(overhead_pass_duration_s(500.0, 10.0))
    443
    """
    r = EARTH_RADIUS_KM + altitude_km
    e = math.radians(min_elevation_deg)
    psi = math.acos(EARTH_RADIUS_KM * math.cos(e) / r) - e
    return 2 * psi / math.sqrt(EARTH_MU_KM3_S2 / r**3)


def slant_range_km(altitude_km: float, elevation_deg: float) -> float:
    """Distance from a ground station to a satellite at ``altitude_km`` seen at ``elevation_deg``.

    >>> round(slant_range_km(500.0, 90.0), 6), round(slant_range_km(500.0, 0.0))   # zenith; horizon
    (500.0, 2573)
    """
    r = EARTH_RADIUS_KM + altitude_km
    s = EARTH_RADIUS_KM * math.sin(math.radians(elevation_deg))
    return math.sqrt(s * s + r * r - EARTH_RADIUS_KM**2) - s
