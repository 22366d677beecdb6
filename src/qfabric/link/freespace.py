"""Free-space optical channels: a Gaussian beam from a transmit telescope to a receive telescope through air.

The mean transmissivity is a product of independent terms, each reported in dB by :class:`LossBudget`:

* **transmitter optics** ``tx_efficiency``.
* **diffraction**: a Gaussian beam of waist ``w0 = tx_aperture_m / 2`` (the aperture filled to its 1/e^2 radius;
  truncation ignored) spreads with half-angle ``theta = M^2 lambda / (pi w0)``, or ``divergence_urad / 2`` when the
  beam's measured full divergence is given: ``w(L)^2 = w0^2 + theta^2 L^2``. A receive aperture of radius ``a``
  collects ``1 - exp(-2 a^2 / w^2)`` of a centred beam.
* **turbulence** (long-term beam spreading; Yura, Appl. Opt. 12, 1188 (1973); Andrews & Phillips, *Laser Beam
  Propagation through Random Media*, 2nd ed. (2005)): the turbulence angle ``lambda / (pi rho0)`` adds in
  quadrature to the beam's, where ``rho0 = [1.46 k^2 int Cn^2(h(s)) (1 - s/L)^(5/3) ds]^(-3/5)`` is the coherence
  radius seen from the transmitter (``s`` measured from it). Cn^2 follows the Hufnagel-Valley profile (HV 5/7 by
  default). On an **uplink** the turbulence sits at the transmitter, where it spreads the beam most; on a
  **downlink** it sits in the last ~20 km of a path hundreds of km long, so its weight ``(1 - s/L)^(5/3)`` is tiny,
  ``rho0`` is metres against a 0.15 m waist, and the spreading is below 0.01 dB (the downlink's turbulence shows up
  as scintillation and as a blurred spot in the receiver, not modelled here).
* **pointing** jitter of rms ``sigma`` per axis (angle) moves the beam by a Gaussian offset of rms ``sigma L``;
  averaged over it the mean intensity is again Gaussian with ``w^2 + 4 sigma^2 L^2`` (exact for the mean power).
* **atmosphere**: extinction at zenith (``zenith_transmittance``) times the Kasten & Young (Appl. Opt. 28, 4735
  (1989)) air mass for the elevation; horizontal paths lose ``extinction_db_per_km`` (default from the visibility by
  Kim, McArthur & Korevaar, Proc. SPIE 4214 (2001)).
* **receiver optics** ``rx_efficiency`` and the **detector** ``detector_efficiency``.

>>> optics = FreeSpaceOptics(wavelength_nm=850, tx_aperture_m=0.3, rx_aperture_m=1.0, divergence_urad=10)
>>> budget = free_space_budget(optics, range_km=1000, elevation_deg=90, path="downlink")
>>> round(budget.terms_db["diffraction"], 1), round(budget.terms_db["turbulence"], 3)
(17.0, 0.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from qfabric.errors import ParameterError

EARTH_RADIUS_KM = 6371.0
TURBULENCE_TOP_KM = 30.0  # Cn^2 above this altitude is negligible for the integrals
Path = Literal["downlink", "uplink", "horizontal"]
PATHS = ("downlink", "uplink", "horizontal")


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ParameterError(name, value, "a positive number")


def _efficiency(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and 0 < value <= 1):
        raise ParameterError(name, value, "an efficiency in (0, 1]")


@dataclass(frozen=True)
class FreeSpaceOptics:
    """The two telescopes and the beam between them (apertures are diameters, in metres).

    ``divergence_urad``: the beam's full far-field divergence (1/e^2 intensity), when measured; otherwise it follows
    from diffraction of the transmit aperture with beam quality ``beam_quality`` (M^2 >= 1).
    ``pointing_jitter_urad``: rms pointing error per axis.
    """

    wavelength_nm: float = 850.0
    tx_aperture_m: float = 0.3
    rx_aperture_m: float = 1.0
    beam_quality: float = 1.0
    divergence_urad: float | None = None
    pointing_jitter_urad: float = 0.0
    tx_efficiency: float = 1.0
    rx_efficiency: float = 1.0
    detector_efficiency: float = 1.0

    def __post_init__(self) -> None:
        for name in ("wavelength_nm", "tx_aperture_m", "rx_aperture_m"):
            _positive(name, getattr(self, name))
        if not (math.isfinite(self.beam_quality) and self.beam_quality >= 1):
            raise ParameterError("beam_quality", self.beam_quality, "an M^2 of at least 1 (1: a perfect Gaussian)")
        if self.divergence_urad is not None:
            _positive("divergence_urad", self.divergence_urad)
            if self.divergence_urad < 2 * self.diffraction_half_angle_rad(1.0) * 1e6 * (1 - 1e-9):
                raise ParameterError("divergence_urad", self.divergence_urad, "at least the diffraction limit of the "
                                     f"transmit aperture, {2e6 * self.diffraction_half_angle_rad(1.0):.3g} urad")
        if not (math.isfinite(self.pointing_jitter_urad) and self.pointing_jitter_urad >= 0):
            raise ParameterError("pointing_jitter_urad", self.pointing_jitter_urad, "a non-negative rms angle, urad")
        for name in ("tx_efficiency", "rx_efficiency", "detector_efficiency"):
            _efficiency(name, getattr(self, name))

    @property
    def wavelength_m(self) -> float:
        return self.wavelength_nm * 1e-9

    @property
    def waist_m(self) -> float:
        """The beam's 1/e^2 radius at the transmitter: half the aperture."""
        return self.tx_aperture_m / 2

    def diffraction_half_angle_rad(self, beam_quality: float | None = None) -> float:
        """``M^2 lambda / (pi w0)``: the far-field 1/e^2 half-angle of a beam of this waist."""
        m2 = self.beam_quality if beam_quality is None else beam_quality
        return m2 * self.wavelength_m / (math.pi * self.waist_m)

    @property
    def half_angle_rad(self) -> float:
        """The beam's far-field 1/e^2 half-angle: measured (``divergence_urad / 2``) or from diffraction."""
        if self.divergence_urad is not None:
            return self.divergence_urad * 1e-6 / 2
        return self.diffraction_half_angle_rad()

    def beam_radius_m(self, range_m: float) -> float:
        """1/e^2 beam radius after ``range_m`` metres of vacuum: ``sqrt(w0^2 + theta^2 L^2)``."""
        return math.hypot(self.waist_m, self.half_angle_rad * range_m)


@dataclass(frozen=True)
class Atmosphere:
    """Extinction and turbulence of the air at a ground station.

    ``zenith_transmittance``: fraction of the light through the whole atmosphere straight up, at the wavelength.
    ``visibility_km`` sets the horizontal extinction (Kim et al. 2001) unless ``extinction_db_per_km`` is given.
    Turbulence: Hufnagel-Valley ``Cn^2(h) = 0.00594 (v/27)^2 (1e-5 h)^10 e^(-h/1000) + 2.7e-16 e^(-h/1500)
    + A e^(-h/100)`` (h in m above the station), ``A = cn2_ground`` (1.7e-14 m^-2/3 and ``v = 21 m/s``: HV 5/7);
    ``turbulence=False`` switches it off.
    """

    zenith_transmittance: float = 0.8
    visibility_km: float = 23.0
    extinction_db_per_km: float | None = None
    cn2_ground: float = 1.7e-14
    wind_m_s: float = 21.0
    turbulence: bool = True

    def __post_init__(self) -> None:
        _efficiency("zenith_transmittance", self.zenith_transmittance)
        _positive("visibility_km", self.visibility_km)
        if self.extinction_db_per_km is not None and not (
                math.isfinite(self.extinction_db_per_km) and self.extinction_db_per_km >= 0):
            raise ParameterError("extinction_db_per_km", self.extinction_db_per_km, "a non-negative dB/km")
        if not (math.isfinite(self.cn2_ground) and self.cn2_ground >= 0):
            raise ParameterError("cn2_ground", self.cn2_ground, "a non-negative Cn^2, m^-2/3")
        if not (math.isfinite(self.wind_m_s) and self.wind_m_s >= 0):
            raise ParameterError("wind_m_s", self.wind_m_s, "a non-negative wind speed, m/s")

    def cn2(self, height_m: float) -> float:
        """Refractive-index structure constant at ``height_m`` above the station, m^-2/3 (Hufnagel-Valley)."""
        if not self.turbulence:
            return 0.0
        h = max(0.0, height_m)
        return (0.00594 * (self.wind_m_s / 27) ** 2 * (1e-5 * h) ** 10 * math.exp(-h / 1000)
                + 2.7e-16 * math.exp(-h / 1500) + self.cn2_ground * math.exp(-h / 100))

    def horizontal_extinction_db_per_km(self, wavelength_nm: float) -> float:
        """dB/km along the ground: given, or ``3.91 / V (lambda / 550 nm)^-q`` (Kim et al. 2001) in 1/km."""
        if self.extinction_db_per_km is not None:
            return self.extinction_db_per_km
        v = self.visibility_km
        q = 1.6 if v > 50 else 1.3 if v > 6 else 0.16 * v + 0.34 if v > 1 else max(v - 0.5, 0.0)
        per_km = 3.91 / v * (wavelength_nm / 550) ** (-q)
        return 10 * math.log10(math.e) * per_km


def air_mass(elevation_deg: float) -> float:
    """Relative optical air mass at ``elevation_deg`` (Kasten & Young 1989): 1 at zenith, about 38 at the horizon.

    >>> round(air_mass(90), 3), round(air_mass(30), 3)
    (1.0, 1.994)
    """
    if not (math.isfinite(elevation_deg) and 0 <= elevation_deg <= 90):
        raise ParameterError("elevation_deg", elevation_deg, "an elevation in [0, 90] degrees")
    return 1 / (math.sin(math.radians(elevation_deg)) + 0.50572 * (elevation_deg + 6.07995) ** -1.6364)


def _height_m(s_m: float, elevation_deg: float) -> float:
    """Height above a station of the point ``s_m`` metres along a straight slant path leaving it at ``elevation``."""
    r = EARTH_RADIUS_KM * 1e3
    return math.sqrt(r * r + s_m * s_m + 2 * r * s_m * math.sin(math.radians(elevation_deg))) - r


def coherence_radius_m(atmosphere: Atmosphere, wavelength_nm: float, range_km: float, elevation_deg: float,
                       path: Path) -> float:
    """``rho0`` seen from the transmitter (m): ``[1.46 k^2 int Cn^2 (1 - s_tx/L)^(5/3) ds]^(-3/5)``; inf without
    turbulence. Horizontal paths keep the station's height (Cn^2 of the ground layer all along)."""
    k = 2 * math.pi / (wavelength_nm * 1e-9)
    length = range_km * 1e3
    if path == "horizontal":
        integral = atmosphere.cn2(0.0) * length * 3 / 8  # int_0^L (1 - s/L)^(5/3) ds = 3L/8
    else:
        from scipy.integrate import quad  # here: horizontal links (qfabric validate checks them) need no scipy

        top = min(length, _slant_to_height_m(TURBULENCE_TOP_KM * 1e3, elevation_deg))

        def weight(s_ground: float) -> float:  # s_ground: metres from the ground station along the path
            s_tx = s_ground if path == "uplink" else length - s_ground
            return atmosphere.cn2(_height_m(s_ground, elevation_deg)) * max(0.0, 1 - s_tx / length) ** (5 / 3)

        integral = quad(weight, 0.0, top, points=[p for p in (100.0, 1000.0, 10_000.0) if p < top], limit=200)[0]
    if integral <= 0:
        return math.inf
    return (1.46 * k * k * integral) ** (-3 / 5)


def _slant_to_height_m(height_m: float, elevation_deg: float) -> float:
    """Distance along a slant path from the ground to ``height_m`` above it."""
    r = EARTH_RADIUS_KM * 1e3
    sin_e = math.sin(math.radians(elevation_deg))
    return math.sqrt((r * sin_e) ** 2 + 2 * r * height_m + height_m**2) - r * sin_e


@dataclass(frozen=True)
class LossBudget:
    """The loss of one free-space path, term by term (dB); ``print(budget)`` shows the table.

    ``link_db`` is what experiments usually call the link (or channel) loss: everything from the transmit
    telescope to the receive telescope's aperture, without the receiver's optics and detector.
    """

    range_km: float
    elevation_deg: float
    path: str
    beam_radius_m: float
    coherence_radius_m: float
    terms_db: dict[str, float] = field(default_factory=dict)

    RECEIVER_TERMS = ("receiver optics", "detector")

    @property
    def total_db(self) -> float:
        return sum(self.terms_db.values())

    @property
    def link_db(self) -> float:
        return sum(v for k, v in self.terms_db.items() if k not in self.RECEIVER_TERMS)

    @property
    def transmissivity(self) -> float:
        """Probability that a photon leaving the source is detected."""
        return 10 ** (-self.total_db / 10)

    def __str__(self) -> str:
        head = f"{self.path} {self.range_km:.1f} km at {self.elevation_deg:.1f} deg (beam radius " \
               f"{self.beam_radius_m:.3g} m)"
        rows = [f"  {name:<20}{value:8.2f} dB" for name, value in self.terms_db.items()]
        return "\n".join([head, *rows, f"  {'link (to aperture)':<20}{self.link_db:8.2f} dB",
                          f"  {'total':<20}{self.total_db:8.2f} dB"])


def _collected(aperture_radius_m: float, beam_radius_m: float) -> float:
    """Fraction of a centred Gaussian beam inside a circular aperture: ``1 - exp(-2 a^2 / w^2)``."""
    return -math.expm1(-2 * aperture_radius_m**2 / beam_radius_m**2)


def _db(ratio: float) -> float:
    return -10 * math.log10(ratio) + 0.0  # + 0.0: no "-0.00 dB" for a lossless term


def free_space_budget(optics: FreeSpaceOptics, range_km: float, elevation_deg: float = 90.0,
                      path: Path = "downlink", atmosphere: Atmosphere | None = None) -> LossBudget:
    """Loss budget of a path of ``range_km`` (slant range for satellites) at ``elevation_deg`` seen from the ground.

    >>> b = free_space_budget(FreeSpaceOptics(tx_aperture_m=0.1, rx_aperture_m=0.1), 5, path="horizontal")
    >>> sorted(b.terms_db) == sorted(["transmitter optics", "diffraction", "turbulence", "pointing", "atmosphere",
    ...                               "receiver optics", "detector"])
    True
    """
    atmosphere = atmosphere or Atmosphere()
    if path not in PATHS:
        raise ParameterError("path", path, f"one of {list(PATHS)}")
    if not (isinstance(range_km, int | float) and math.isfinite(range_km) and range_km > 0):
        raise ParameterError("range_km", range_km, "a positive distance in km")
    if not (math.isfinite(elevation_deg) and 0 <= elevation_deg <= 90):
        raise ParameterError("elevation_deg", elevation_deg, "an elevation in [0, 90] degrees")
    if path != "horizontal" and elevation_deg <= 0:
        raise ParameterError("elevation_deg", elevation_deg, "above the horizon (> 0 degrees) for a slant path")
    length = range_km * 1e3
    a = optics.rx_aperture_m / 2
    w_vacuum = optics.beam_radius_m(length)
    rho0 = coherence_radius_m(atmosphere, optics.wavelength_nm, range_km, elevation_deg, path)
    w_turb = math.hypot(w_vacuum, 0.0 if math.isinf(rho0) else optics.wavelength_m * length / (math.pi * rho0))
    w_point = math.hypot(w_turb, 2 * optics.pointing_jitter_urad * 1e-6 * length)
    if path == "horizontal":
        atmosphere_db = atmosphere.horizontal_extinction_db_per_km(optics.wavelength_nm) * range_km
    else:
        atmosphere_db = _db(atmosphere.zenith_transmittance) * air_mass(elevation_deg)
    terms = {
        "transmitter optics": _db(optics.tx_efficiency),
        "diffraction": _db(_collected(a, w_vacuum)),
        "turbulence": _db(_collected(a, w_turb)) - _db(_collected(a, w_vacuum)),
        "pointing": _db(_collected(a, w_point)) - _db(_collected(a, w_turb)),
        "atmosphere": atmosphere_db,
        "receiver optics": _db(optics.rx_efficiency),
        "detector": _db(optics.detector_efficiency),
    }
    return LossBudget(range_km=range_km, elevation_deg=elevation_deg, path=path, beam_radius_m=w_point,
                      coherence_radius_m=rho0, terms_db=terms)


def horizon_range_km(height_a_m: float, height_b_m: float) -> float:
    """Longest line of sight between two points at these heights above a spherical Earth (no refraction), km.

    >>> round(horizon_range_km(100, 0), 1)
    35.7
    """
    r = EARTH_RADIUS_KM * 1e3
    return (math.sqrt(2 * r * height_a_m + height_a_m**2) + math.sqrt(2 * r * height_b_m + height_b_m**2)) / 1e3
