"""Post-processing steps on bit arrays: sifting, error estimation, verification, privacy amplification.

Each works alone on numpy arrays of 0/1 (``uint8``).

>>> import numpy as np
>>> key = np.array([1, 0, 1, 1, 0, 0, 1, 0], dtype=np.uint8)
>>> seed = np.array([1, 0, 0, 1, 1, 0, 1, 0, 1, 1, 0], dtype=np.uint8)      # n + m - 1 = 8 + 4 - 1 bits
>>> toeplitz_hash(key, seed, 4).tolist() == (toeplitz_matrix(seed, 8, 4) @ key % 2).tolist()
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit
from scipy import fft as sfft

from qfabric.errors import ParameterError


def _bits(name: str, a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 1:
        raise ParameterError(name, a.shape, "a 1-D array of bits")
    if a.size and (a.min() < 0 or a.max() > 1):
        raise ParameterError(name, "values outside {0, 1}", "an array of 0 and 1")
    return a.astype(np.uint8, copy=False)


def _same_length(**arrays: np.ndarray) -> int:
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ParameterError("lengths", lengths, "arrays of the same length")
    return next(iter(lengths.values()))


def sift(alice_bases: np.ndarray, bob_bases: np.ndarray) -> np.ndarray:
    """Indices of the events in which Alice and Bob used the same basis."""
    _same_length(alice_bases=alice_bases, bob_bases=bob_bases)
    return np.flatnonzero(np.asarray(alice_bases) == np.asarray(bob_bases))


@dataclass(frozen=True)
class ErrorEstimate:
    """Observed error rate of ``sample`` disclosed bits and its upper confidence bound."""

    errors: int
    sample: int
    qber: float
    upper: float
    confidence: float


def estimate_qber(alice: np.ndarray, bob: np.ndarray, failure_probability: float = 1e-10) -> ErrorEstimate:
    """Error rate of disclosed bits with a Hoeffding upper bound: ``q + sqrt(ln(1/eps) / (2n))``.

    The bound holds for the Bernoulli error probability with probability ``1 - failure_probability``.
    """
    n = _same_length(alice=alice, bob=bob)
    if n == 0:
        raise ParameterError("sample", 0, "at least one disclosed bit to estimate the error rate")
    if not 0 < failure_probability < 1:
        raise ParameterError("failure_probability", failure_probability, "a probability in (0, 1)")
    errors = int(np.count_nonzero(_bits("alice", alice) != _bits("bob", bob)))
    q = errors / n
    return ErrorEstimate(errors, n, q, min(1.0, q + math.sqrt(math.log(1 / failure_probability) / (2 * n))),
                         1 - failure_probability)


def toeplitz_matrix(seed: np.ndarray, n: int, m: int) -> np.ndarray:
    """The ``m x n`` binary Toeplitz matrix ``T[i, j] = seed[i - j + n - 1]`` (for tests and small cases)."""
    seed = _bits("seed", seed)
    if len(seed) != n + m - 1:
        raise ParameterError("seed", len(seed), f"n + m - 1 = {n + m - 1} bits")
    i = np.arange(m)[:, None]
    j = np.arange(n)[None, :]
    return seed[i - j + n - 1]


def toeplitz_hash(bits: np.ndarray, seed: np.ndarray, m: int) -> np.ndarray:
    """``T x mod 2`` for the ``m x len(bits)`` Toeplitz matrix of ``seed``, by FFT in O(n log n)."""
    x = _bits("bits", bits)
    seed = _bits("seed", seed)
    n = len(x)
    if m < 1 or m > n:
        raise ParameterError("m", m, f"an output length in [1, {n}]")
    if len(seed) != n + m - 1:
        raise ParameterError("seed", len(seed), f"n + m - 1 = {n + m - 1} bits for n = {n}, m = {m}")
    # circular convolution of length >= n + m - 1: its wrap-around falls outside the window we keep
    size = sfft.next_fast_len(len(seed), real=True)
    conv = sfft.irfft(sfft.rfft(seed.astype(np.float64), size) * sfft.rfft(x.astype(np.float64), size), size)
    window = conv[n - 1 : n - 1 + m]
    rounded = np.rint(window)
    if np.abs(window - rounded).max(initial=0) > 0.25:  # float64 precision would not be enough
        raise ParameterError("bits", n, "a block short enough for float64 FFT convolution")
    return (rounded.astype(np.int64) & 1).astype(np.uint8)


def verification_tag_bits(eps_cor: float, frames: int = 1) -> int:
    """Tag length so that ``frames`` verifications together fail with probability at most ``eps_cor``."""
    if not 0 < eps_cor < 1 or frames < 1:
        raise ParameterError("eps_cor", eps_cor, "a probability in (0, 1) and at least one frame")
    return math.ceil(math.log2(frames / eps_cor))


def verify(alice: np.ndarray, bob: np.ndarray, tag_bits: int, rng: np.random.Generator) -> bool:
    """Compare Toeplitz hashes (a 2^-tag_bits-almost-universal family) under a fresh public seed.

    Different keys pass with probability at most ``2^-tag_bits``; ``tag_bits`` bits leak to Eve.
    """
    n = _same_length(alice=alice, bob=bob)
    m = min(tag_bits, n)
    seed = rng.integers(0, 2, n + m - 1, dtype=np.uint8)
    return bool(np.array_equal(toeplitz_hash(alice, seed, m), toeplitz_hash(bob, seed, m)))


P61 = np.uint64((1 << 61) - 1)
_M30 = np.uint64((1 << 30) - 1)
_M31 = np.uint64((1 << 31) - 1)


@njit(cache=True)
def _mulmod61(a, b):
    """``a * b mod (2^61 - 1)`` for ``a, b < 2^61`` in 64-bit arithmetic (``2^61 = 1`` modulo the prime)."""
    a_hi, a_lo = a >> np.uint64(31), a & _M31
    b_hi, b_lo = b >> np.uint64(31), b & _M31
    mid = a_hi * b_lo + a_lo * b_hi
    r = a_hi * b_hi * np.uint64(2) + (mid >> np.uint64(30)) + ((mid & _M30) << np.uint64(31)) + a_lo * b_lo
    r = (r & P61) + (r >> np.uint64(61))
    r = (r & P61) + (r >> np.uint64(61))
    return r - P61 if r >= P61 else r


@njit(cache=True)
def _polynomial_hash(words, n_bits, point):
    """Horner evaluation of the frame's 32-bit words (and its length) at ``point`` modulo 2^61 - 1."""
    h = np.uint64(0)
    for w in words:
        h = _mulmod61(h, point) + w
        h = h - P61 if h >= P61 else h
    h = _mulmod61(h, point) + np.uint64(n_bits)
    return h - P61 if h >= P61 else h


def _words(bits: np.ndarray) -> np.ndarray:
    packed = np.packbits(bits)
    packed = np.concatenate([packed, np.zeros(-len(packed) % 4, dtype=np.uint8)])
    return packed.view(">u4").astype(np.uint64)


@dataclass(frozen=True)
class FrameVerification:
    """Per frame, whether Alice's and Bob's tags agree; ``tag_bits`` were disclosed per frame."""

    ok: np.ndarray
    tag_bits: int


def verify_frames(alice_frames: list[np.ndarray], bob_frames: list[np.ndarray], tag_bits: int,
                  rng: np.random.Generator) -> FrameVerification:
    """Verify many frames with polynomial hashing modulo the prime ``p = 2^61 - 1``.

    A frame of ``d`` 32-bit words is the polynomial of its words (and its length); two different frames
    collide at a random point with probability at most ``(d + 1) / p``. Enough independent public points,
    drawn after the frames are fixed, bring that below ``2^-tag_bits``; each point discloses 61 bits.
    """
    if len(alice_frames) != len(bob_frames) or not alice_frames:
        raise ParameterError("frames", (len(alice_frames), len(bob_frames)), "the same non-zero number of frames")
    longest = max(len(a) for a in alice_frames)
    per_point = 61 - math.log2(math.ceil(longest / 32) + 2)
    points = [np.uint64(int(x)) for x in rng.integers(0, (1 << 61) - 1, max(1, math.ceil(tag_bits / per_point)))]
    ok = np.empty(len(alice_frames), dtype=bool)
    for i, (a, b) in enumerate(zip(alice_frames, bob_frames, strict=True)):
        n = _same_length(alice=a, bob=b)
        wa, wb = _words(_bits("alice", a)), _words(_bits("bob", b))
        ok[i] = all(_polynomial_hash(wa, n, r) == _polynomial_hash(wb, n, r) for r in points)
    return FrameVerification(ok, 61 * len(points))


def privacy_amplify(key: np.ndarray, length: int, seed: np.ndarray) -> np.ndarray:
    """Compress a reconciled key to ``length`` secret bits with the Toeplitz hash of ``seed``."""
    return toeplitz_hash(key, seed, length)


def toeplitz_hash_pair(a: np.ndarray, b: np.ndarray, seed: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`toeplitz_hash` of two equal-length inputs under one seed, sharing the seed's transform."""
    n = _same_length(a=a, b=b)
    a, b, seed = _bits("a", a), _bits("b", b), _bits("seed", seed)
    if m < 1 or m > n or len(seed) != n + m - 1:
        raise ParameterError("seed/m", (len(seed), m), f"m in [1, {n}] and n + m - 1 seed bits")
    size = sfft.next_fast_len(len(seed), real=True)
    rows = sfft.rfft(np.stack([a, b]).astype(np.float64), size, axis=1)
    rows *= sfft.rfft(seed.astype(np.float64), size)[None, :]
    window = sfft.irfft(rows, size, axis=1)[:, n - 1 : n - 1 + m]
    rounded = np.rint(window)
    if np.abs(window - rounded).max(initial=0) > 0.25:
        raise ParameterError("bits", n, "a block short enough for float64 FFT convolution")
    out = (rounded.astype(np.int64) & 1).astype(np.uint8)
    return out[0], out[1]
