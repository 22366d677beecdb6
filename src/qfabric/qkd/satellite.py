"""Decoy-BB84 downlinks and entangled-pair distribution over satellite passes.

A pass is a time series of channel transmissivities (from :mod:`qfabric.link.freespace` and
:mod:`qfabric.link.orbit`). The decoy-BB84 key of a pass treats the whole pass as one finite-key block: the
expected detections and errors of every time slice (the existing channel model of :mod:`qfabric.qkd.theory`, with
the slice's transmissivity as Bob's total efficiency) are added up, and the Lim et al. (2014) key length is
computed once on the sums, as an experiment that distils the pass's records together would.

>>> import numpy as np
>>> key = decoy_pass_key(np.full(100, 1e-3), dt_s=1.0, source_rate_hz=1e8)
>>> key.key_bits > 0, round(key.qber, 3)
(True, 0.011)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qfabric.errors import ParameterError
from qfabric.qkd.theory import (
    Channel,
    DecoySettings,
    bbm92_key_length,
    bbm92_rate,
    expected_counts,
    finite_key_length,
    h2,
)

MICIUS_DECOY = DecoySettings(mu1=0.8, mu2=0.1, mu3=0.0, p_mu1=0.5, p_mu2=0.25, p_z=0.5)
"""Liao et al. (2017): signal 0.8, decoy 0.1 and vacuum sent with probabilities 50 %, 25 %, 25 %; Bob's basis is a
passive 50:50 choice (so p_z = 0.5 here; both bases' coincident detections are sifted)."""


@dataclass(frozen=True)
class PassKey:
    """The decoy-BB84 outcome of one pass: sifted and secret bits (finite-key and asymptotic), QBER."""

    duration_s: float
    pulses: float
    sifted_bits: float
    qber: float
    key_bits: float
    asymptotic_key_bits: float

    @property
    def key_rate_bps(self) -> float:
        return self.key_bits / self.duration_s if self.duration_s > 0 else 0.0


def decoy_pass_key(transmissivity: np.ndarray, dt_s: float, source_rate_hz: float = 1e8,
                   settings: DecoySettings = MICIUS_DECOY, dark_count_yield: float = 1e-6,
                   misalignment: float = 0.01, f_ec: float = 1.16, eps_sec: float = 1e-10,
                   eps_cor: float = 1e-15) -> PassKey:
    """Key of a pass whose total transmissivity (source to detection) is ``transmissivity[i]`` during slice ``i``
    of ``dt_s`` seconds. Z is the key basis, X the test basis (Lim et al. 2014); ``sifted_bits`` counts both."""
    eta = np.asarray(transmissivity, dtype=float).ravel()
    if eta.size == 0 or not np.all(np.isfinite(eta)) or np.any(eta < 0) or np.any(eta > 1):
        raise ParameterError("transmissivity", eta.size, "a non-empty series of transmissivities in [0, 1]")
    if not (math.isfinite(dt_s) and dt_s > 0):
        raise ParameterError("dt_s", dt_s, "a positive time step, s")
    if not (math.isfinite(source_rate_hz) and source_rate_hz > 0):
        raise ParameterError("source_rate_hz", source_rate_hz, "a positive pulse rate, Hz")
    pulses_per_slice = source_rate_hz * dt_s
    totals = {k: np.zeros(3) for k in ("n_z", "n_x", "m_z", "m_x")}
    for value in eta:
        if value <= 0:
            continue
        channel = Channel(0.0, 0.0, detector_efficiency=float(value), y0=dark_count_yield, e_det=misalignment,
                          f_ec=f_ec)
        for key, counts in expected_counts(channel, settings, pulses_per_slice).items():
            totals[key] += counts
    n_z = totals["n_z"].sum()
    e_z = totals["m_z"].sum() / n_z if n_z > 0 else 0.5
    leak = f_ec * n_z * h2(e_z)
    finite = finite_key_length(totals["n_z"], totals["n_x"], totals["m_x"], settings, leak, eps_sec, eps_cor)
    asymptotic = finite_key_length(totals["n_z"], totals["n_x"], totals["m_x"], settings, leak, eps_sec, eps_cor,
                                   asymptotic=True)
    return PassKey(duration_s=eta.size * dt_s, pulses=pulses_per_slice * eta.size,
                   sifted_bits=float(n_z + totals["n_x"].sum()), qber=float(e_z),
                   key_bits=float(max(0.0, finite.length)),
                   asymptotic_key_bits=float(max(0.0, asymptotic.length)))


@dataclass(frozen=True)
class PairPass:
    """Entangled pairs from a satellite source to two ground stations over one common window: the true
    coincidences (``pairs``), the accidental ones (two unrelated clicks within one coincidence window) and the
    coincidences expected in error in a matching basis."""

    duration_s: float
    pairs: float
    two_photon_loss_db_min: float
    two_photon_loss_db_max: float
    accidentals: float = 0.0
    errors: float = 0.0

    @property
    def pair_rate_hz(self) -> float:
        return self.pairs / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def coincidences(self) -> float:
        return self.pairs + self.accidentals

    @property
    def qber(self) -> float:
        """Errors among the coincidences measured in the same basis (0.5: nothing but noise)."""
        return self.errors / self.coincidences if self.coincidences > 0 else 0.5


def pair_pass(transmissivity_a: np.ndarray, transmissivity_b: np.ndarray, dt_s: float,
              pair_rate_hz: float, background_hz: tuple[float, float] = (0.0, 0.0), window_s: float = 0.0,
              intrinsic_qber: float = 0.0) -> PairPass:
    """Coincidences from a source of ``pair_rate_hz`` pairs per second during slices of ``dt_s`` s in which the
    stations' total transmissivities (source to detection) are ``eta_a``, ``eta_b``:

    * true coincidences ``R eta_a eta_b`` (multi-pair emissions neglected: R times the window is ~1e-2 at most);
    * accidental ones ``S_a S_b window`` from the singles ``S = R eta + background`` (dark counts and stray
      light per second at the detectors), uncorrelated: half of them in error;
    * true pairs in error with ``intrinsic_qber`` (the source's visibility, polarisation drift in the optics).

    Slices where either station sees nothing (transmissivity 0) are left out of the window.

    >>> round(pair_pass([1e-3, 1e-3], [1e-4, 1e-4], 1.0, 1e7).pairs, 6)
    2.0
    >>> p = pair_pass([1e-3], [1e-3], 1.0, 1e6, background_hz=(1e3, 1e3), window_s=1e-9, intrinsic_qber=0.02)
    >>> round(p.accidentals, 6), round(p.qber, 4)        # S = 2000/s at each end: 4e6 x 1e-9 per s
    (0.004, 0.0219)
    """
    a = np.asarray(transmissivity_a, dtype=float).ravel()
    b = np.asarray(transmissivity_b, dtype=float).ravel()
    if a.shape != b.shape or a.size == 0:
        raise ParameterError("transmissivity_b", b.size, f"as many slices as transmissivity_a ({a.size})")
    if not (math.isfinite(pair_rate_hz) and pair_rate_hz > 0):
        raise ParameterError("pair_rate_hz", pair_rate_hz, "a positive pair rate, Hz")
    if len(background_hz) != 2 or not all(math.isfinite(n) and n >= 0 for n in background_hz):
        raise ParameterError("background_hz", background_hz, "two non-negative count rates, Hz")
    if not (math.isfinite(window_s) and window_s >= 0) or not 0 <= intrinsic_qber <= 0.5:
        raise ParameterError("window_s/intrinsic_qber", (window_s, intrinsic_qber),
                             "a non-negative coincidence window, s, and an error probability in [0, 0.5]")
    both = (a > 0) & (b > 0)
    if not both.any():
        return PairPass(0.0, 0.0, math.inf, math.inf)
    a, b = a[both], b[both]
    true = pair_rate_hz * a * b
    accidental = (pair_rate_hz * a + background_hz[0]) * (pair_rate_hz * b + background_hz[1]) * window_s
    loss = -10 * np.log10(a * b)
    return PairPass(duration_s=float(a.size * dt_s), pairs=float(dt_s * true.sum()),
                    two_photon_loss_db_min=float(loss.min()), two_photon_loss_db_max=float(loss.max()),
                    accidentals=float(dt_s * accidental.sum()),
                    errors=float(dt_s * (intrinsic_qber * true + accidental / 2).sum()))


@dataclass(frozen=True)
class Bbm92Key:
    """BBM92 on a block of coincidences: both stations choose a basis at random (Z with ``p_z``), Z-Z
    coincidences give the key, X-X ones bound the phase error; ``sifted_bits`` counts both."""

    coincidences: float
    qber: float
    sifted_bits: float
    key_bits: float
    asymptotic_key_bits: float


def bbm92_block_key(coincidences: float, qber: float, p_z: float = 0.5, f_ec: float = 1.16,
                    eps_sec: float = 1e-10, eps_cor: float = 1e-15) -> Bbm92Key:
    """The key of ``coincidences`` distilled as one block at ``qber`` (the same in both bases): finite-key with
    Tomamichel et al.'s bound (:func:`~qfabric.qkd.theory.bbm92_key_length`: key from the Z-Z coincidences,
    the X-X ones disclosed), and asymptotic with every sifted bit keyed at ``1 - f h(Q) - h(Q)``.

    >>> k = bbm92_block_key(6208, 0.045, f_ec=1.19)      # Yin et al. (2020): 3,100 s over 1,120 km
    >>> round(k.sifted_bits), round(k.asymptotic_key_bits), k.key_bits
    (3104, 1304, 0.0)
    """
    if not (math.isfinite(coincidences) and coincidences >= 0) or not 0 <= qber <= 0.5 or not 0 < p_z < 1:
        raise ParameterError("coincidences/qber/p_z", (coincidences, qber, p_z),
                             "a non-negative count, an error rate in [0, 0.5] and p_z in (0, 1)")
    n_key, n_test = coincidences * p_z**2, coincidences * (1 - p_z) ** 2
    length, _ = bbm92_key_length(n_key, n_test, qber * n_test, f_ec * n_key * h2(qber), eps_sec, eps_cor)
    sifted = n_key + n_test
    return Bbm92Key(coincidences=float(coincidences), qber=float(qber), sifted_bits=float(sifted),
                    key_bits=float(max(0.0, length)), asymptotic_key_bits=float(sifted * bbm92_rate(qber, qber, f_ec)))
