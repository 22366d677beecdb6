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


def verify_frames(alice_frames: list[np.ndarray], bob_frames: list[np.ndarray], tag_bits: int,
                  rng: np.random.Generator) -> np.ndarray:
    """:func:`verify` for many frames at once (one batched FFT, one public seed chosen after the frames).

    Returns, per frame, whether the tags agree. Each differing frame passes with probability at most
    ``2^-tag_bits``; frames are zero-padded to the longest, which keeps the hash family universal.
    """
    if len(alice_frames) != len(bob_frames) or not alice_frames:
        raise ParameterError("frames", (len(alice_frames), len(bob_frames)), "the same non-zero number of frames")
    n = max(len(a) for a in alice_frames)
    m = min(tag_bits, n)
    seed = rng.integers(0, 2, n + m - 1, dtype=np.uint8).astype(np.float64)
    size = sfft.next_fast_len(n + m - 1, real=True)
    stacked = np.zeros((2 * len(alice_frames), n), dtype=np.float64)
    for i, (a, b) in enumerate(zip(alice_frames, bob_frames, strict=True)):
        _same_length(alice=a, bob=b)
        stacked[2 * i, : len(a)] = a
        stacked[2 * i + 1, : len(b)] = b
    conv = sfft.irfft(sfft.rfft(stacked, size, axis=1) * sfft.rfft(seed, size)[None, :], size, axis=1)
    tags = np.rint(conv[:, n - 1 : n - 1 + m]).astype(np.int64) & 1
    return np.all(tags[0::2] == tags[1::2], axis=1)


def privacy_amplify(key: np.ndarray, length: int, seed: np.ndarray) -> np.ndarray:
    """Compress a reconciled key to ``length`` secret bits with the Toeplitz hash of ``seed``."""
    return toeplitz_hash(key, seed, length)
