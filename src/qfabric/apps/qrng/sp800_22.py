"""Six NIST SP 800-22 rev. 1a statistical tests, written from the standard with scipy's special functions.

The maintained-looking package on PyPI (``nistrng`` 1.2.3, 2021) installs here but fails good generators
under numpy 2 (its int8 partial sums overflow: cumulative sums, DFT, serial and approximate entropy reject
PCG64 output), so the tests qfabric relies on are implemented here, each held to the worked examples of the
standard in the tests: frequency (monobit, 2.1), frequency within a block (2.2), runs (2.3), longest run of
ones in a block (2.4), approximate entropy (2.12) and cumulative sums (2.13, forward and backward).

A sequence passes a test when its P-value is ``>= significance`` (the standard's 0.01).

>>> import numpy as np
>>> report = sp800_22_report(np.random.default_rng(1).integers(0, 2, 100_000))
>>> sorted(report["tests"])[:3], report["passed"]
(['approximate_entropy', 'block_frequency', 'cumulative_sums_backward'], True)
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erfc, gammaincc, ndtr

from qfabric.errors import ParameterError


def _bits(bits) -> np.ndarray:
    bits = np.asarray(bits)
    if bits.ndim != 1 or bits.size == 0 or not np.isin(bits, (0, 1)).all():
        raise ParameterError("bits", f"array of shape {bits.shape}", "a non-empty 1-D array of 0/1")
    return bits.astype(np.int64)


def monobit(bits) -> float:
    """2.1: the proportion of ones."""
    x = _bits(bits)
    s = abs(int((2 * x - 1).sum())) / math.sqrt(len(x))
    return float(erfc(s / math.sqrt(2)))


def block_frequency(bits, block: int = 128) -> float:
    """2.2: the proportion of ones in each of the ``n // block`` blocks."""
    x = _bits(bits)
    count = len(x) // block
    if count < 1:
        raise ParameterError("bits", len(x), f"at least one block of {block} bits")
    pi = x[: count * block].reshape(count, block).mean(axis=1)
    chi2 = 4 * block * float(((pi - 0.5) ** 2).sum())
    return float(gammaincc(count / 2, chi2 / 2))


def runs(bits) -> float:
    """2.3: the number of runs (0.0 when the monobit prerequisite ``|pi - 1/2| < 2 / sqrt(n)`` fails)."""
    x = _bits(bits)
    n = len(x)
    pi = x.mean()
    if abs(pi - 0.5) >= 2 / math.sqrt(n):
        return 0.0
    v = 1 + int((x[1:] != x[:-1]).sum())
    return float(erfc(abs(v - 2 * n * pi * (1 - pi)) / (2 * math.sqrt(2 * n) * pi * (1 - pi))))


# (minimum n, block M, class bounds (<= first, ..., >= last), class probabilities), SP 800-22 2.4.4
_LONGEST_RUN = [
    (750_000, 10_000, (10, 16), (0.0882, 0.2092, 0.2483, 0.1933, 0.1208, 0.0675, 0.0727)),
    (6_272, 128, (4, 9), (0.1174, 0.2430, 0.2493, 0.1752, 0.1027, 0.1124)),
    (128, 8, (1, 4), (0.2148, 0.3672, 0.2305, 0.1875)),
]


def longest_run(bits) -> float:
    """2.4: the longest run of ones in each block (``M`` = 8, 128 or 10,000 by length)."""
    x = _bits(bits)
    n = len(x)
    row = next((r for r in _LONGEST_RUN if n >= r[0]), None)
    if row is None:
        raise ParameterError("bits", n, "at least 128 bits for the longest-run test")
    _, m, (low, high), probabilities = row
    count = n // m
    blocks = x[: count * m].reshape(count, m)
    longest = np.zeros(count, dtype=np.int64)
    current = np.zeros(count, dtype=np.int64)
    for column in blocks.T:
        current = (current + 1) * column
        np.maximum(longest, current, out=longest)
    classes = np.bincount(np.clip(longest, low, high) - low, minlength=high - low + 1)
    expected = count * np.asarray(probabilities)
    chi2 = float(((classes - expected) ** 2 / expected).sum())
    return float(gammaincc((len(probabilities) - 1) / 2, chi2 / 2))


def approximate_entropy(bits, m: int = 10) -> float:
    """2.12: frequencies of all overlapping ``m``- and ``m+1``-bit patterns (wrapping around)."""
    x = _bits(bits)
    n = len(x)

    def phi(k: int) -> float:
        if k == 0:
            return 0.0
        wrapped = np.concatenate((x, x[: k - 1]))
        codes = np.zeros(n, dtype=np.int64)
        for i in range(k):
            codes = (codes << 1) | wrapped[i : i + n]
        c = np.bincount(codes, minlength=2**k) / n
        c = c[c > 0]
        return float((c * np.log(c)).sum())

    apen = phi(m) - phi(m + 1)
    chi2 = 2 * n * (math.log(2) - apen)
    return float(gammaincc(2 ** (m - 1), chi2 / 2))


def cumulative_sums(bits, backward: bool = False) -> float:
    """2.13: the maximal excursion of the random walk of ``2 x - 1`` (forward, or from the end)."""
    x = _bits(bits)
    if backward:
        x = x[::-1]
    n = len(x)
    z = int(np.abs(np.cumsum(2 * x - 1)).max())
    if z == 0:
        return 1.0

    def trunc(value: float) -> int:  # C integer division, as the NIST code does
        return int(value)

    root = math.sqrt(n)
    k1 = np.arange(trunc((trunc(-n / z) + 1) / 4), trunc((trunc(n / z) - 1) / 4) + 1)
    k2 = np.arange(trunc((trunc(-n / z) - 3) / 4), trunc((trunc(n / z) - 1) / 4) + 1)
    s1 = (ndtr((4 * k1 + 1) * z / root) - ndtr((4 * k1 - 1) * z / root)).sum()
    s2 = (ndtr((4 * k2 + 3) * z / root) - ndtr((4 * k2 + 1) * z / root)).sum()
    return float(1 - s1 + s2)


def sp800_22_report(bits, significance: float = 0.01) -> dict:
    """P-values of the six tests on ``bits`` (at least 10^4 recommended; 10^6 is the standard's size), and
    whether each passes at ``significance``."""
    x = _bits(bits)
    if len(x) < 128:
        raise ParameterError("bits", len(x), "at least 128 bits")
    m = max(2, min(10, int(math.log2(len(x))) - 7))  # the standard asks m < floor(log2 n) - 5
    p = {"monobit": monobit(x), "block_frequency": block_frequency(x, 128 if len(x) >= 12_800 else 10),
         "runs": runs(x), "longest_run": longest_run(x), "approximate_entropy": approximate_entropy(x, m),
         "cumulative_sums_forward": cumulative_sums(x), "cumulative_sums_backward": cumulative_sums(x, True)}
    tests = {name: {"p_value": value, "passed": value >= significance} for name, value in p.items()}
    return {"bits": len(x), "significance": significance, "tests": tests,
            "passed": all(t["passed"] for t in tests.values())}
