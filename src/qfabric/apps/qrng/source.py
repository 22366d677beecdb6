"""A simulated vacuum-fluctuation homodyne entropy source, and its min-entropy.

A balanced homodyne detector measures one quadrature of the vacuum: Gaussian quantum noise (shot noise,
variance 1 in shot-noise units) plus the detector's Gaussian electronic noise, whose variance sits
``clearance_db`` below it. An ADC of ``adc_bits`` bits digitises ``[-R, R]`` (``R = range_sigmas`` total
standard deviations) into ``2**adc_bits`` equal bins, clipping beyond (after Gabriel et al., Nat. Photon. 4,
711 (2010); Haw et al., Phys. Rev. Applied 3, 054004 (2015)).

Two min-entropies per sample:

* ``min_entropy_total``: of the digitised distribution, ``-log2 max_k P(k)``: what the health tests watch.
* ``min_entropy_quantum``: conditioned on the electronic noise (an adversary may know or set it), worst case
  over ``|e| <= e_max = 5 sigma_e``: ``-log2 max(2 Phi(delta / (2 sigma_q)) - 1, Phi((delta - R + e_max) / sigma_q))``
  (a bin centred on the electronic offset, or the clipped edge bin pushed by the largest offset), which
  bounds what may be extracted (Haw et al., eq. 5).

>>> s = HomodyneSource(adc_bits=8, clearance_db=10, seed=1)
>>> round(s.min_entropy_total(), 3), round(s.min_entropy_quantum(), 3)
(6.326, 6.257)
>>> s.read(4).tolist()
[147, 157, 132, 93]
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr

from qfabric.errors import ParameterError

FAULTS = ("stuck", "dc-offset", "laser-off")
ELECTRONIC_BOUND_SIGMAS = 5.0


class HomodyneSource:
    """Raw ADC codes (``uint16``, ``0 .. 2**adc_bits - 1``) of a homodyne vacuum-noise QRNG.

    ``fault`` injects a failure for testing the health tests: ``stuck`` (the ADC repeats one code),
    ``dc-offset`` (an intermittent offset of 3 R, on 90 % of samples, saturates them at the top code),
    ``laser-off`` (no local oscillator: no shot noise, only electronic noise)."""

    def __init__(self, adc_bits: int = 8, clearance_db: float = 10.0, range_sigmas: float = 4.0,
                 seed: int | np.random.SeedSequence | None = None, fault: str | None = None):
        if not isinstance(adc_bits, int) or not 1 <= adc_bits <= 16:
            raise ParameterError("adc_bits", adc_bits, "a whole number of bits in 1..16")
        if not math.isfinite(clearance_db) or clearance_db <= 0:
            raise ParameterError("clearance_db", clearance_db, "a positive shot-noise to electronic-noise ratio, dB")
        if not range_sigmas > 0:
            raise ParameterError("range_sigmas", range_sigmas, "a positive ADC half-range, in total std. deviations")
        if fault is not None and fault not in FAULTS:
            raise ParameterError("fault", fault, f"None or one of {', '.join(FAULTS)}")
        self.adc_bits, self.clearance_db, self.range_sigmas, self.fault = adc_bits, clearance_db, range_sigmas, fault
        self.sigma_q = 1.0
        self.sigma_e = 10 ** (-clearance_db / 20)
        self.sigma_total = math.hypot(self.sigma_q, self.sigma_e)
        self.half_range = range_sigmas * self.sigma_total
        self.levels = 2**adc_bits
        self.bin_width = 2 * self.half_range / self.levels
        self.rng = np.random.default_rng(seed)

    # -- entropy ---------------------------------------------------------------------------------------
    def code_probabilities(self, sigma: float | None = None, offset: float = 0.0) -> np.ndarray:
        """``P(code k)`` for Gaussian input of standard deviation ``sigma`` (default: total) and mean ``offset``."""
        sigma = self.sigma_total if sigma is None else sigma
        edges = -self.half_range + self.bin_width * np.arange(1, self.levels)
        cdf = np.concatenate(([0.0], ndtr((edges - offset) / sigma), [1.0]))
        return np.diff(cdf)

    def min_entropy_total(self) -> float:
        """Min-entropy per sample of the digitised distribution, bits."""
        return float(-np.log2(self.code_probabilities().max()))

    def min_entropy_quantum(self) -> float:
        """Min-entropy per sample conditioned on electronic noise up to 5 sigma_e (worst case), bits."""
        e_max = ELECTRONIC_BOUND_SIGMAS * self.sigma_e
        centred = 2 * ndtr(self.bin_width / (2 * self.sigma_q)) - 1
        edge = ndtr((self.bin_width - self.half_range + e_max) / self.sigma_q)
        return float(-np.log2(max(centred, edge)))

    # -- samples ---------------------------------------------------------------------------------------
    def read(self, n: int) -> np.ndarray:
        """``n`` ADC codes."""
        if self.fault == "stuck":
            return np.full(n, self.levels // 2, dtype=np.uint16)
        quantum = 0.0 if self.fault == "laser-off" else self.rng.normal(0.0, self.sigma_q, n)
        voltage = quantum + self.rng.normal(0.0, self.sigma_e, n)
        if self.fault == "dc-offset":
            voltage = voltage + 3 * self.half_range * (self.rng.random(n) < 0.9)
        codes = np.floor((voltage + self.half_range) / self.bin_width)
        return np.clip(codes, 0, self.levels - 1).astype(np.uint16)
