"""Decoy-state BB84 over a fibre link, simulated statistically in vectorised batches (never per pulse).

Per intensity, the number of pulses, the number whose photons reach Bob's detectors (Poisson
thinning: ``1 - exp(-eta mu)``) and the number of dark-count-only clicks are drawn as binomials; the
per-event details (photon number, bases, bits, which detectors click) are then drawn only for the
pulses that give a detection. Bob has two threshold detectors per basis; each arriving photon
hits the wrong one with the misalignment probability ``e_det``; a double click becomes a random
bit (squashing). With the channel's ``afterpulse_probability`` ``p_ap``, each detection is followed by an
after-pulse click with probability ``p_ap``: a detection with a random bit, in a slot whose basis
choices and Alice's bit are independent of the parent's, counted with the parent's intensity (the
detector model of Lim et al., PRA 89, 022307 (2014): detection probability times ``1 + p_ap``, no
after-pulses of after-pulses). Alice's and Bob's raw records hold one row per detection.

>>> from qfabric.qkd.theory import Channel, DecoySettings
>>> link = DecoyBB84Link(Channel(25), DecoySettings())
>>> rec = link.simulate(pulses=10**7, rng=np.random.default_rng(1))
>>> bool(abs(rec.gain(0) / link.channel.gain(0.5) - 1) < 0.05)
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from qfabric.errors import ParameterError
from qfabric.qkd.theory import Channel, DecoySettings

Z, X = 0, 1


@dataclass(frozen=True)
class InterceptResend:
    """Eve measures a ``fraction`` of Alice's pulses in a random basis and resends one photon in her result."""

    fraction: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.fraction <= 1:
            raise ParameterError("fraction", self.fraction, "a probability in [0, 1]")


@dataclass(frozen=True)
class PhotonNumberSplitting:
    """Eve splits multi-photon pulses (keeping one photon), forwards the rest over a lossless channel and
    blocks single photons as far as needed to keep Bob's signal gain at its honest value."""


@dataclass
class RawRecords:
    """One row per detection: intensity index, Alice's basis and bit, Bob's basis and bit."""

    pulses: int
    pulses_by_intensity: np.ndarray
    intensity: np.ndarray
    alice_basis: np.ndarray
    alice_bit: np.ndarray
    bob_basis: np.ndarray
    bob_bit: np.ndarray

    def gain(self, k: int) -> float:
        """Observed detection probability per pulse of intensity index ``k``."""
        return float(np.count_nonzero(self.intensity == k)) / self.pulses_by_intensity[k]

    def counts(self) -> dict[str, np.ndarray]:
        """Detections and errors per intensity when both used Z (``n_z``, ``m_z``) or both X (``n_x``, ``m_x``)."""
        out = {}
        same = self.alice_basis == self.bob_basis
        err = self.alice_bit != self.bob_bit
        for name, basis in (("z", Z), ("x", X)):
            sel = same & (self.alice_basis == basis)
            out[f"n_{name}"] = np.bincount(self.intensity[sel], minlength=3).astype(float)
            out[f"m_{name}"] = np.bincount(self.intensity[sel & err], minlength=3).astype(float)
        return out


def _truncated_poisson(lam: float, size: int, rng: np.random.Generator, at_least: int = 1) -> np.ndarray:
    """Poisson(lam) photon numbers conditioned on ``>= at_least``: inverse CDF by table lookup."""
    if size == 0:
        return np.zeros(0, dtype=np.int64)
    top = at_least + 10 + int(lam + 12 * math.sqrt(lam + 1))
    ns = np.arange(at_least, top)
    pmf = stats.poisson.pmf(ns, lam)
    cdf = np.cumsum(pmf) / pmf.sum()
    return ns[np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), len(ns) - 1)]


@dataclass(frozen=True)
class DecoyBB84Link:
    """Alice's weak coherent source with decoy intensities, the channel, Bob's detectors, and maybe Eve."""

    channel: Channel
    settings: DecoySettings
    eavesdropper: InterceptResend | PhotonNumberSplitting | None = None

    @property
    def dark_count_probability(self) -> float:
        """Per detector and pulse, so that both detectors give the channel's ``y0``."""
        return 1 - math.sqrt(1 - self.channel.y0)

    def simulate(self, pulses: int, rng: np.random.Generator) -> RawRecords:
        if not (isinstance(pulses, int | np.integer) and pulses >= 1):
            raise ParameterError("pulses", pulses, "a positive whole number of pulses")
        st = self.settings
        n_by_k = rng.multinomial(pulses, st.probabilities)
        parts = [self._intensity(k, int(n_by_k[k]), rng) for k in range(3)]
        cat = [np.concatenate([p[i] for p in parts]) for i in range(5)]
        order = rng.permutation(len(cat[0]))  # detections in time order, intensities mixed
        return RawRecords(pulses, n_by_k, *(c[order] for c in cat))

    def _intensity(self, k: int, n_pulses: int, rng: np.random.Generator):
        mu = self.settings.intensities[k]
        eta = self.channel.eta
        pd = self.dark_count_probability
        eve = self.eavesdropper
        photons = np.zeros(0, dtype=np.int64)
        forced_bits = np.zeros(0, dtype=np.uint8)  # Eve's resent bit (IR) per photon-bearing event
        forced_basis = np.zeros(0, dtype=np.int8)
        n_alice = np.zeros(0, dtype=np.uint8)
        n_alice_basis = np.zeros(0, dtype=np.int8)
        honest = n_pulses
        if isinstance(eve, InterceptResend) and eve.fraction > 0:
            caught = int(rng.binomial(n_pulses, eve.fraction))
            honest = n_pulses - caught
            measured = int(rng.binomial(caught, 1 - math.exp(-mu)))  # Eve sees at least one photon
            arrive = int(rng.binomial(measured, eta))  # her single resent photon reaches Bob's detector
            a_basis = self._bases(arrive, rng)
            a_bit = rng.integers(0, 2, arrive, dtype=np.uint8)
            e_basis = rng.integers(0, 2, arrive).astype(np.int8)
            e_bit = np.where(e_basis == a_basis, a_bit, rng.integers(0, 2, arrive, dtype=np.uint8))
            photons, forced_bits, forced_basis = np.ones(arrive, dtype=np.int64), e_bit, e_basis
            n_alice, n_alice_basis = a_bit, a_basis
            no_light = n_pulses - honest - arrive  # intercepted pulses that bring Bob nothing
        else:
            no_light = 0
        if isinstance(eve, PhotonNumberSplitting):
            arrive_counts, multi = self._pns_arrivals(mu, honest, rng)
            honest_arrive = multi
            no_light += honest - len(arrive_counts)
            photons = np.concatenate([photons, arrive_counts])
        else:
            p_arrive = 1 - math.exp(-eta * mu)
            honest_arrive = int(rng.binomial(honest, p_arrive))
            no_light += honest - honest_arrive
            photons = np.concatenate([photons, _truncated_poisson(eta * mu, honest_arrive, rng)])
        n_ir = len(forced_bits)
        n_ph = len(photons)
        a_basis = np.concatenate([n_alice_basis, self._bases(n_ph - n_ir, rng)])
        a_bit = np.concatenate([n_alice, rng.integers(0, 2, n_ph - n_ir, dtype=np.uint8)])
        b_basis = self._bases(n_ph, rng)
        # the state that reaches Bob: Eve's (intercepted) or Alice's
        s_basis = np.concatenate([forced_basis, a_basis[n_ir:]])
        s_bit = np.concatenate([forced_bits, a_bit[n_ir:]])
        p_right = np.where(b_basis == s_basis, 1 - self.channel.e_det, 0.5)
        right = rng.binomial(photons, p_right)
        click_right = (right > 0) | (rng.random(n_ph) < pd)
        click_wrong = (photons - right > 0) | (rng.random(n_ph) < pd)
        coin = rng.integers(0, 2, n_ph, dtype=np.uint8)
        b_bit = np.where(click_right & click_wrong, coin, np.where(click_right, s_bit, 1 - s_bit)).astype(np.uint8)
        # pulses with no light at Bob: dark counts alone
        dark = int(rng.binomial(no_light, 1 - (1 - pd) ** 2))
        d_a_basis, d_b_basis = self._bases(dark, rng), self._bases(dark, rng)
        d_a_bit = rng.integers(0, 2, dark, dtype=np.uint8)
        d_b_bit = rng.integers(0, 2, dark, dtype=np.uint8)
        rows = [(a_basis, a_bit, b_basis, b_bit), (d_a_basis, d_a_bit, d_b_basis, d_b_bit)]
        p_ap = self.channel.afterpulse_probability
        if p_ap > 0:  # skipped at 0: no draws, so records stay bit for bit those without after-pulsing
            rows.append(self._afterpulses(int(rng.binomial(n_ph + dark, p_ap)), rng))
        k_idx = np.full(sum(len(r[0]) for r in rows), k, dtype=np.int8)
        return (k_idx, *(np.concatenate([r[i] for r in rows]) for i in range(4)))

    def _afterpulses(self, n: int, rng: np.random.Generator):
        """``n`` after-pulse clicks: fresh bases and Alice bit, Bob's bit a coin (the avalanche is not the
        photon's)."""
        a_basis, b_basis = self._bases(n, rng), self._bases(n, rng)
        return a_basis, rng.integers(0, 2, n, dtype=np.uint8), b_basis, rng.integers(0, 2, n, dtype=np.uint8)

    def _bases(self, size: int, rng: np.random.Generator) -> np.ndarray:
        return (rng.random(size) >= self.settings.p_z).astype(np.int8)  # Z with probability p_z

    def _pns_arrivals(self, mu: float, n_pulses: int, rng: np.random.Generator):
        """Photon numbers reaching Bob's detector under photon-number splitting, and their count."""
        det = self.channel.detector_efficiency
        signal = self.settings.mu1
        honest_gain = 1 - math.exp(-self.channel.eta * signal)

        def pns_gain(s1: float, t: float, m: float) -> float:
            p1 = m * math.exp(-m)
            multi = sum(stats.poisson.pmf(n, m) * (1 - (1 - det) ** (n - 1)) for n in range(2, 40))
            return s1 * p1 * det + t * multi

        # Eve tunes (single-photon forwarding s1, multi-photon forwarding t) on the signal intensity
        full = pns_gain(0.0, 1.0, signal)
        if full >= honest_gain:
            s1, t = 0.0, honest_gain / full
        else:
            s1, t = min(1.0, (honest_gain - full) / (signal * math.exp(-signal) * det)), 1.0
        p0, p1 = math.exp(-mu), mu * math.exp(-mu)
        _, singles, multis = rng.multinomial(n_pulses, [p0, p1, max(0.0, 1 - p0 - p1)])
        single_arrive = int(rng.binomial(rng.binomial(singles, s1), det))
        kept = _truncated_poisson(mu, int(rng.binomial(multis, t)), rng, at_least=2) - 1  # Eve keeps one
        multi_arrive = rng.binomial(kept, det)
        arriving = np.concatenate([np.ones(single_arrive, dtype=np.int64), multi_arrive[multi_arrive > 0]])
        return arriving, len(arriving)
