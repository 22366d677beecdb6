"""Analytic QKD key rates: decoy-state BB84 (asymptotic and finite-key), GLLP, BBM92, and the PLOB bound.

Channel model of Lo, Ma, Chen, PRL 94, 230504 (2005) and Ma, Qi, Zhao, Lo, PRA 72, 012326 (2005):
for a weak coherent pulse of mean photon number ``mu`` through total transmissivity ``eta``::

    Q_mu = Y0 + 1 - exp(-eta mu)                     gain (detection probability)
    E_mu = (Y0/2 + e_det (1 - exp(-eta mu))) / Q_mu  error rate

With detector after-pulsing (probability ``p_ap`` per detection), as in the simulations of Lim, Curty,
Walenta, Xu, Zbinden, PRA 89, 022307 (2014): every detection is followed by one after-pulse click with
probability ``p_ap``, carrying a random bit and counted with the pulse that caused it::

    Q'_mu = (1 + p_ap) Q_mu                          E'_mu Q'_mu = E_mu Q_mu + p_ap Q_mu / 2

>>> gys = Channel.gys(distance_km=100)
>>> round(decoy_bb84_rate(gys, decoys="infinite").rate / 1e-5, 2)   # REFERENCES.md s2: 1.72e-5 at 100 km
1.72
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from scipy.optimize import minimize, minimize_scalar

from qfabric.errors import ParameterError
from qfabric.hardware import plob_bound

E0 = 0.5  # error rate of a vacuum (dark-count) detection
NU_MIN = 0.01  # weakest practical decoy: below it the vacuum+weak bound only gains in exact arithmetic
MU_MAX = 1.5  # largest signal intensity the optimisers consider


def h2(p: float) -> float:
    """Binary entropy in bits; ``h2(0) = h2(1) = 0``."""
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -p * math.log2(p) - (1 - p) * math.log2(1 - p)


def _prob(name: str, value: float) -> None:
    if not (math.isfinite(value) and 0 <= value <= 1):
        raise ParameterError(name, value, "a probability in [0, 1]")


@dataclass(frozen=True)
class Channel:
    """A QKD link: fibre loss, Bob's detection efficiency, dark-count yield ``y0``, misalignment ``e_det``,
    and the detectors' after-pulse probability.

    ``y0`` is the probability of a click per pulse with no light (dark counts and stray light).
    ``afterpulse_probability`` (``p_ap``): probability that a detection is followed by an after-pulse
    click with a random bit (Lim et al. 2014's detector model: detection probability times ``1 + p_ap``,
    ``p_ap / 2`` more errors per detection). 0 leaves every formula as in Lo, Ma, Chen (2005).
    """

    distance_km: float
    attenuation_db_per_km: float = 0.2
    detector_efficiency: float = 0.1
    y0: float = 1e-6
    e_det: float = 0.01
    f_ec: float = 1.16
    sifting: float = 0.5
    afterpulse_probability: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.distance_km) and self.distance_km >= 0):
            raise ParameterError("distance_km", self.distance_km, "a non-negative distance in km")
        if self.attenuation_db_per_km < 0:
            raise ParameterError("attenuation_db_per_km", self.attenuation_db_per_km, "a non-negative dB/km")
        for name in ("detector_efficiency", "y0", "e_det", "sifting"):
            _prob(name, getattr(self, name))
        if self.detector_efficiency == 0:
            raise ParameterError("detector_efficiency", 0, "a probability in (0, 1]")
        if self.e_det >= 0.5:
            raise ParameterError("e_det", self.e_det, "a misalignment error below 0.5")
        if not self.f_ec >= 1:
            raise ParameterError("f_ec", self.f_ec, "a reconciliation efficiency >= 1 (1 is the Shannon limit)")
        p_ap = self.afterpulse_probability
        if not (isinstance(p_ap, numbers.Real) and math.isfinite(p_ap) and 0 <= p_ap < 1):
            raise ParameterError("afterpulse_probability", p_ap, "a probability in [0, 1)")

    @classmethod
    def gys(cls, distance_km: float) -> Channel:
        """The standard parameter set (GYS experiment, as used by Lo, Ma, Chen 2005): REFERENCES.md s2."""
        return cls(distance_km, attenuation_db_per_km=0.21, detector_efficiency=0.045, y0=1.7e-6,
                   e_det=0.033, f_ec=1.22, sifting=0.5)

    def at(self, distance_km: float) -> Channel:
        return replace(self, distance_km=distance_km)

    @property
    def eta(self) -> float:
        """Total transmissivity: fibre times Bob's detection efficiency."""
        return self.detector_efficiency * 10 ** (-self.attenuation_db_per_km * self.distance_km / 10)

    @property
    def fibre_transmissivity(self) -> float:
        return 10 ** (-self.attenuation_db_per_km * self.distance_km / 10)

    @property
    def vacuum_yield(self) -> float:
        """Detections per empty pulse: ``y0``, and the after-pulses its dark counts cause."""
        return (1 + self.afterpulse_probability) * self.y0

    def _error_rate(self, clicks: float, errors: float) -> float:
        """Error rate of ``clicks`` detections holding ``errors`` errors, once every click may bring an
        after-pulse with a random bit (exactly ``errors / clicks`` without after-pulses)."""
        p_ap = self.afterpulse_probability
        return (errors + p_ap * clicks / 2) / ((1 + p_ap) * clicks)

    def gain(self, mu: float) -> float:
        """``Q_mu``: detections per pulse of intensity ``mu`` (after-pulses included)."""
        return (1 + self.afterpulse_probability) * (self.y0 + 1 - math.exp(-self.eta * mu))

    def error(self, mu: float) -> float:
        """``E_mu``: quantum bit error rate of detections from pulses of intensity ``mu``."""
        empty = math.exp(-self.eta * mu)  # no photon detected
        return self._error_rate(self.y0 + 1 - empty, E0 * self.y0 + self.e_det * (1 - empty))

    def yield_n(self, n: int) -> float:
        """``Y_n``: detections per n-photon state (after-pulses included)."""
        return (1 + self.afterpulse_probability) * (self.y0 + 1 - (1 - self.eta) ** n)

    def error_n(self, n: int) -> float:
        lost = (1 - self.eta) ** n
        return self._error_rate(self.y0 + 1 - lost, E0 * self.y0 + self.e_det * (1 - lost))


@dataclass(frozen=True)
class KeyRate:
    """A secret-key rate in bits per pulse (or per pair), with what produced it."""

    rate: float
    protocol: str
    distance_km: float
    mu: float | None = None
    nu: float | None = None
    qber: float | None = None
    single_photon_gain: float | None = None
    single_photon_error: float | None = None
    plob: float | None = None

    @property
    def fraction_of_plob(self) -> float | None:
        return self.rate / self.plob if self.plob else None


def _decoy_terms(ch: Channel, mu: float, decoys: str, nu: float | None) -> tuple[float, float, float]:
    """Returns (rate, Q1, e1) for signal intensity ``mu``."""
    q_mu, e_mu = ch.gain(mu), ch.error(mu)
    if decoys == "infinite":
        y1 = ch.yield_n(1)
        q1, e1 = y1 * mu * math.exp(-mu), ch.error_n(1)
    elif decoys == "vacuum+weak":
        assert nu is not None
        q_nu, e_nu = ch.gain(nu), ch.error(nu)
        y0 = ch.vacuum_yield  # what the vacuum decoy measures
        y1 = mu / (mu * nu - nu * nu) * (
            q_nu * math.exp(nu) - q_mu * math.exp(mu) * nu * nu / (mu * mu) - (mu * mu - nu * nu) / (mu * mu) * y0
        )
        if y1 <= 0:
            return 0.0, 0.0, 0.5
        e1 = min(0.5, (e_nu * q_nu * math.exp(nu) - E0 * y0) / (y1 * nu))
        q1 = y1 * mu * math.exp(-mu)
    else:  # GLLP without decoys: every multi-photon pulse is assumed tagged
        multi = (1 + ch.afterpulse_probability) * (1 - (1 + mu) * math.exp(-mu))  # all detected, after-pulses too
        q1 = max(0.0, q_mu - multi)
        e1 = min(0.5, e_mu * q_mu / q1) if q1 > 0 else 0.5
    rate = ch.sifting * (-q_mu * ch.f_ec * h2(e_mu) + q1 * (1 - h2(e1)))
    return rate, q1, e1


def decoy_bb84_rate(
    ch: Channel,
    decoys: Literal["infinite", "vacuum+weak", "none"] = "infinite",
    mu: float | None = None,
    nu: float | None = None,
) -> KeyRate:
    """Asymptotic decoy-state BB84 key rate per pulse (GLLP with decoy estimates).

    ``decoys``: ``infinite`` (exact single-photon yield and error), ``vacuum+weak`` (Ma et al.
    2005: vacuum and one weak decoy ``nu``), ``none`` (GLLP: all multi-photon pulses insecure).
    ``mu`` (at most :data:`MU_MAX`) and ``nu`` (not below :data:`NU_MIN`) are optimised when not given: the
    one missing for the one given, or both together. Negative rates are reported as 0.
    """
    if decoys not in ("infinite", "vacuum+weak", "none"):
        raise ParameterError("decoys", decoys, "infinite, vacuum+weak or none")
    if mu is not None and not (0 < mu < 10):
        raise ParameterError("mu", mu, "a mean photon number in (0, 10)")
    if nu is not None and mu is not None and not (0 < nu < mu):
        raise ParameterError("nu", nu, f"a decoy intensity in (0, mu = {mu})")
    if decoys == "vacuum+weak":
        if nu is not None and mu is None and not (0 < nu < 1):
            raise ParameterError("nu", nu, f"a decoy intensity in (0, 1) (mu is optimised in (nu, {MU_MAX}])")
        if mu is not None and nu is None and not mu > 1.01 * NU_MIN:
            raise ParameterError("mu", mu, f"a signal intensity above {1.01 * NU_MIN:g} (nu is optimised in "
                                 f"[{NU_MIN}, mu))")
        if mu is None or nu is None:
            mu, nu = _optimise_two(ch, mu, nu)
    elif mu is None:
        res = minimize_scalar(lambda m: -_decoy_terms(ch, m, decoys, None)[0], bounds=(1e-4, MU_MAX),
                              method="bounded", options={"xatol": 1e-6})
        mu = float(res.x)
    rate, q1, e1 = _decoy_terms(ch, mu, decoys, nu)
    return KeyRate(rate=max(0.0, rate), protocol=f"decoy-bb84/{decoys}", distance_km=ch.distance_km, mu=mu,
                   nu=nu, qber=ch.error(mu), single_photon_gain=q1, single_photon_error=e1,
                   plob=plob_bound(ch.eta))


def _maximise(f, lo: float, hi: float, points: int = 24) -> tuple[float, float]:
    """``(x, f(x))`` maximising ``f`` on ``[lo, hi]``: the best of a grid (ends included), refined by bounded
    Brent between its neighbours. The grid keeps a flat or kinked rate (clipped bounds) from trapping Brent."""
    if not hi > lo:
        return lo, f(lo)
    grid = np.linspace(lo, hi, points)
    values = [f(float(x)) for x in grid]
    i = int(np.argmax(values))
    best = (float(grid[i]), values[i])
    a, b = float(grid[max(i - 1, 0)]), float(grid[min(i + 1, points - 1)])
    res = minimize_scalar(lambda x: -f(x), bounds=(a, b), method="bounded",
                          options={"xatol": 1e-10 * max(1.0, abs(b))})
    if -res.fun > best[1]:
        best = (float(res.x), float(-res.fun))
    return best


def _optimise_two(ch: Channel, mu: float | None, nu: float | None) -> tuple[float, float]:
    """Signal ``mu`` and weak decoy ``nu`` of the vacuum+weak protocol: whichever is not given is optimised
    for the one that is (``mu`` in ``(nu, MU_MAX]``, ``nu`` in ``[NU_MIN, mu)``); both when neither is."""

    def rate(m: float, n: float) -> float:
        return _decoy_terms(ch, m, "vacuum+weak", n)[0]

    def best_mu(n: float) -> tuple[float, float]:
        return _maximise(lambda m: rate(m, n), n + max(1e-6, 1e-3 * n), MU_MAX)

    def best_nu(m: float) -> tuple[float, float]:
        return _maximise(lambda n: rate(m, n), NU_MIN, m - max(1e-6, 1e-3 * m))

    if nu is not None:
        return best_mu(nu)[0], nu
    if mu is not None:
        return mu, best_nu(mu)[0]
    nu_best = _maximise(lambda n: best_mu(n)[1], NU_MIN, 0.5, points=6)[0]
    return best_mu(nu_best)[0], nu_best


def max_distance_km(rate_fn, lo: float = 0.0, hi: float = 400.0, tol: float = 0.01) -> float:
    """Largest distance at which ``rate_fn(distance_km)`` is positive (bisection)."""
    if rate_fn(lo) <= 0:
        return lo
    while rate_fn(hi) > 0:
        hi *= 2
        if hi > 1e5:
            return math.inf
    while hi - lo > tol:
        mid = (lo + hi) / 2
        if rate_fn(mid) > 0:
            lo = mid
        else:
            hi = mid
    return lo


def bbm92_rate(qber_z: float, qber_x: float, f_ec: float = 1.0) -> float:
    """Asymptotic BBM92 secret fraction per sifted bit: ``1 - f h(e_z) - h(e_x)`` (``1 - 2h(Q)`` when equal)."""
    _prob("qber_z", qber_z)
    _prob("qber_x", qber_x)
    return max(0.0, 1 - f_ec * h2(qber_z) - h2(qber_x))


def bbm92_key_length(n_key: int, n_test: int, test_errors: int, leaked: int, eps_sec: float,
                     eps_cor: float) -> tuple[float, float]:
    """Secure length and phase-error bound for entanglement-based BB84 (Tomamichel, Lim, Gisin, Renner,
    Nat. Commun. 3, 634 (2012)): ``n (1 - h(e_x + mu)) - leak - log2(2 / (eps_sec^2 eps_cor))``."""
    if n_key <= 0 or n_test <= 0:
        return 0.0, 0.5
    e_x = test_errors / n_test
    mu = math.sqrt((n_key + n_test) / (n_key * n_test) * (n_test + 1) / n_test * math.log(2 / eps_sec))
    phase = min(0.5, e_x + mu)
    return n_key * (1 - h2(phase)) - leaked - math.log2(2 / (eps_sec**2 * eps_cor)), phase


@dataclass(frozen=True)
class DecoySettings:
    """Intensities ``mu1 > mu2 > mu3 >= 0`` with their probabilities, and the Z-basis probability."""

    mu1: float = 0.5
    mu2: float = 0.1
    mu3: float = 2e-4
    p_mu1: float = 0.8
    p_mu2: float = 0.15
    p_z: float = 0.9

    def __post_init__(self) -> None:
        if not (self.mu1 > self.mu2 + self.mu3 and self.mu2 > self.mu3 >= 0):
            raise ParameterError("intensities", (self.mu1, self.mu2, self.mu3),
                                 "mu1 > mu2 + mu3 and mu2 > mu3 >= 0 (Lim et al. 2014)")
        if self.mu1 > 5:
            raise ParameterError("mu1", self.mu1, "a mean photon number of at most 5")
        for name in ("p_mu1", "p_mu2", "p_z"):
            _prob(name, getattr(self, name))
        if self.p_mu1 + self.p_mu2 >= 1:
            raise ParameterError("p_mu1 + p_mu2", self.p_mu1 + self.p_mu2, "less than 1 (mu3 needs some pulses)")

    @property
    def intensities(self) -> tuple[float, float, float]:
        return (self.mu1, self.mu2, self.mu3)

    @property
    def probabilities(self) -> tuple[float, float, float]:
        return (self.p_mu1, self.p_mu2, 1 - self.p_mu1 - self.p_mu2)


@dataclass(frozen=True)
class FiniteKeyResult:
    """Output of :func:`finite_key_length`: the secure key length and the bounds behind it."""

    length: float
    s0: float
    s1: float
    phi1: float
    leak_ec: float
    n_z: float
    n_x: float

    @property
    def feasible(self) -> bool:
        return self.length > 0


def _tau(n: int, settings: DecoySettings) -> float:
    return sum(math.exp(-k) * k**n * p / math.factorial(n)
               for k, p in zip(settings.intensities, settings.probabilities, strict=True))


def finite_key_length(
    n_z_by_k: np.ndarray,
    n_x_by_k: np.ndarray,
    m_x_by_k: np.ndarray,
    settings: DecoySettings,
    leak_ec: float,
    eps_sec: float = 1e-10,
    eps_cor: float = 1e-15,
    asymptotic: bool = False,
) -> FiniteKeyResult:
    """Secure key length of decoy BB84 with finite statistics (Lim, Curty, Walenta, Xu, Zbinden, PRA 89,
    022307 (2014)), with Z the key basis and X the test basis.

    ``n_z_by_k``/``n_x_by_k``: detections in which both chose Z/X, per intensity (mu1, mu2, mu3);
    ``m_x_by_k``: bit errors among the X ones. ``asymptotic`` drops every finite-size term.
    ``l = s0 + s1 (1 - h(phi1)) - leak_EC - 6 log2(21/eps_sec) - log2(2/eps_cor)``.
    """
    mu = np.asarray(settings.intensities)
    p = np.asarray(settings.probabilities)
    n_z_by_k, n_x_by_k, m_x_by_k = (np.asarray(a, dtype=float) for a in (n_z_by_k, n_x_by_k, m_x_by_k))
    eps1 = eps_sec / 21

    def bounds(counts: np.ndarray, total: float) -> tuple[np.ndarray, np.ndarray]:
        delta = 0.0 if asymptotic else math.sqrt(total / 2 * math.log(1 / eps1)) if total > 0 else 0.0
        return np.exp(mu) / p * (counts - delta), np.exp(mu) / p * (counts + delta)

    def vacuum_and_single(counts: np.ndarray) -> tuple[float, float]:
        lo, hi = bounds(counts, counts.sum())
        t0, t1 = _tau(0, settings), _tau(1, settings)
        m1, m2, m3 = mu
        s0 = max(0.0, t0 * (m2 * lo[2] - m3 * hi[1]) / (m2 - m3))
        s1 = t1 * m1 * (lo[1] - hi[2] - (m2**2 - m3**2) / m1**2 * (hi[0] - s0 / t0)) / (
            m1 * (m2 - m3) - m2**2 + m3**2)
        return s0, max(0.0, s1)

    s0_z, s1_z = vacuum_and_single(n_z_by_k)
    _, s1_x = vacuum_and_single(n_x_by_k)
    m_lo, m_hi = bounds(m_x_by_k, m_x_by_k.sum())
    t1 = _tau(1, settings)
    v1_x = max(0.0, t1 * (m_hi[1] - m_lo[2]) / (mu[1] - mu[2]))
    if s1_x <= 0 or s1_z <= 0:
        phi = 0.5
    else:
        b = min(0.5, v1_x / s1_x)
        gamma = 0.0
        if not asymptotic and 0 < b < 0.5:
            c, d = s1_x, s1_z
            arg = (c + d) / (c * d * (1 - b) * b) * 21**2 / eps_sec**2
            gamma = math.sqrt((c + d) * (1 - b) * b / (c * d * math.log(2)) * math.log2(arg))
        phi = min(0.5, b + gamma)
    security = 0.0 if asymptotic else 6 * math.log2(21 / eps_sec) + math.log2(2 / eps_cor)
    length = s0_z + s1_z * (1 - h2(phi)) - leak_ec - security
    return FiniteKeyResult(length=length, s0=s0_z, s1=s1_z, phi1=phi, leak_ec=leak_ec,
                           n_z=float(n_z_by_k.sum()), n_x=float(n_x_by_k.sum()))


def expected_counts(ch: Channel, settings: DecoySettings, pulses: float) -> dict[str, np.ndarray]:
    """Mean detection and error counts of a decoy BB84 run of ``pulses`` pulses over ``ch``."""
    gains = np.array([ch.gain(k) if k > 0 else ch.vacuum_yield for k in settings.intensities])
    errors = np.array([ch.error(k) if k > 0 else E0 for k in settings.intensities])
    p = np.asarray(settings.probabilities)
    n_z = pulses * p * settings.p_z**2 * gains
    n_x = pulses * p * (1 - settings.p_z) ** 2 * gains
    return {"n_z": n_z, "n_x": n_x, "m_z": n_z * errors, "m_x": n_x * errors}


def finite_key_rate(
    ch: Channel, settings: DecoySettings, pulses: float, eps_sec: float = 1e-10, eps_cor: float = 1e-15,
    asymptotic: bool = False,
) -> KeyRate:
    """Expected secret bits per pulse of decoy BB84 for ``pulses`` sent (Lim et al. 2014), or 0."""
    c = expected_counts(ch, settings, pulses)
    n_z = c["n_z"].sum()
    e_z = c["m_z"].sum() / n_z if n_z else 0.5
    leak = ch.f_ec * n_z * h2(e_z)
    res = finite_key_length(c["n_z"], c["n_x"], c["m_x"], settings, leak, eps_sec, eps_cor, asymptotic)
    return KeyRate(rate=max(0.0, res.length) / pulses, protocol="decoy-bb84/finite-key",
                   distance_km=ch.distance_km, mu=settings.mu1, nu=settings.mu2, qber=e_z,
                   plob=plob_bound(ch.eta))


def optimise_settings(ch: Channel, pulses: float, eps_sec: float = 1e-10, eps_cor: float = 1e-15,
                      start: DecoySettings | None = None) -> DecoySettings:
    """Intensities, their probabilities and the Z-basis probability that maximise the finite-key rate."""
    start = start or DecoySettings()

    def settings_of(x) -> DecoySettings | None:
        mu1, mu2, p1, p2, pz = x
        try:
            return DecoySettings(mu1=float(mu1), mu2=float(mu2), mu3=start.mu3, p_mu1=float(p1), p_mu2=float(p2),
                                 p_z=float(pz))
        except ParameterError:
            return None

    def negative(x):
        st = settings_of(x)
        if st is None or st.p_z >= 1 or min(st.probabilities) <= 0:
            return 1.0
        return -finite_key_rate(ch, st, pulses, eps_sec, eps_cor).rate * 1e6

    best = (negative([start.mu1, start.mu2, start.p_mu1, start.p_mu2, start.p_z]), start)
    for x0 in ([start.mu1, start.mu2, start.p_mu1, start.p_mu2, start.p_z], [0.4, 0.15, 0.5, 0.3, 0.7],
               [0.6, 0.2, 0.4, 0.4, 0.6]):
        res = minimize(negative, x0=x0, method="Nelder-Mead", options={"maxiter": 800, "xatol": 1e-4})
        st = settings_of(res.x)
        if st is not None and res.fun < best[0]:
            best = (res.fun, st)
    return best[1]


def minimum_pulses(ch: Channel, settings: DecoySettings, eps_sec: float = 1e-10, eps_cor: float = 1e-15) -> float:
    """Fewest pulses (to 10 %) for which the finite-key length is positive, or ``inf``."""
    n = 1e4
    while n < 1e16:
        if finite_key_rate(ch, settings, n, eps_sec, eps_cor).rate > 0:
            lo, hi = n / 10, n
            while hi / lo > 1.1:
                mid = math.sqrt(lo * hi)
                lo, hi = (lo, mid) if finite_key_rate(ch, settings, mid, eps_sec, eps_cor).rate > 0 else (mid, hi)
            return hi
        n *= 10
    return math.inf
