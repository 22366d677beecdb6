"""The QRNG: entropy source -> continuous health tests -> Toeplitz extraction -> random bytes, and a numpy
``BitGenerator`` over it.

Every block of ``block_samples`` raw ADC codes passes the SP 800-90B health tests (:mod:`.health`, with the
source's total min-entropy as the claim) before it is used; then its ``n = block_samples * adc_bits`` raw
bits are compressed to ``m = floor(block_samples * H_quantum - 2 log2(1 / epsilon))`` bits with the
Toeplitz hash of the QKD privacy amplification (:func:`qfabric.qkd.postprocess.steps.toeplitz_hash`),
``H_quantum`` being the min-entropy conditioned on the electronic noise and ``epsilon`` the distance from
uniform (leftover hash lemma). The Toeplitz seed (``n + m - 1`` bits) is drawn once per generator.

A failed health test stops the output: this block and every later request raise
:class:`~qfabric.apps.qrng.health.HealthTestFailure` until :meth:`Qrng.reset`.

``seed`` makes the whole simulation (the source's noise and the Toeplitz seed) reproducible; without it,
the operating system's entropy seeds it.

>>> q = Qrng(seed=7)
>>> len(q.random_bytes(32)), q.random_bytes(4) == Qrng(seed=7).random_bytes(36)[32:]
(32, True)
"""

from __future__ import annotations

import math
import threading

import numpy as np

from qfabric.apps.qrng.health import HealthTestFailure, HealthTests
from qfabric.apps.qrng.source import HomodyneSource
from qfabric.errors import ParameterError
from qfabric.qkd.postprocess.steps import toeplitz_hash


class Qrng:
    """Health-tested, extracted random bits from a :class:`HomodyneSource` (made from ``source_options``)."""

    def __init__(self, seed: int | None = None, block_samples: int = 4096, epsilon: float = 2.0**-64,
                 alpha: float = 2.0**-30, source: HomodyneSource | None = None, **source_options):
        if not isinstance(block_samples, int) or block_samples < 1024:
            raise ParameterError("block_samples", block_samples, "a whole number >= 1024 of raw samples per block")
        if not 0 < epsilon < 1:
            raise ParameterError("epsilon", epsilon, "a distance from uniform in (0, 1)")
        seeds = np.random.SeedSequence(seed).spawn(2)
        self.source = source or HomodyneSource(seed=seeds[0], **source_options)
        self.block_samples, self.epsilon, self.alpha = block_samples, epsilon, alpha
        self.raw_bits = block_samples * self.source.adc_bits
        self.h_total = self.source.min_entropy_total()
        self.h_quantum = self.source.min_entropy_quantum()
        self.out_bits = math.floor(block_samples * self.h_quantum - 2 * math.log2(1 / epsilon))
        if self.out_bits < 1:
            raise ParameterError("block_samples", block_samples, f"more samples: {block_samples} x "
                                 f"{self.h_quantum:.3f} bits leave nothing after 2 log2(1/epsilon)")
        self.health = HealthTests(self.h_total, alpha, binary=self.source.adc_bits == 1)
        self.toeplitz_seed = np.random.default_rng(seeds[1]).integers(0, 2, self.raw_bits + self.out_bits - 1,
                                                                      dtype=np.uint8)
        self._buffer = b""
        self._lock = threading.Lock()
        self.blocks = 0

    @property
    def failed(self) -> str | None:
        """The health-test failure that stopped the output, or ``None``."""
        return self.health.failure

    def reset(self) -> None:
        """Restart the health tests after a failure (an operator's decision: the source was fixed)."""
        self.health = HealthTests(self.h_total, self.alpha, binary=self.source.adc_bits == 1)
        self._buffer = b""

    def summary(self) -> dict:
        """The model and its numbers, for reports."""
        s = self.source
        return {"source": "vacuum homodyne", "adc_bits": s.adc_bits, "clearance_db": s.clearance_db,
                "range_sigmas": s.range_sigmas, "min_entropy_total_bits": self.h_total,
                "min_entropy_quantum_bits": self.h_quantum, "block_samples": self.block_samples,
                "raw_bits_per_block": self.raw_bits, "extracted_bits_per_block": self.out_bits,
                "extraction_ratio": self.out_bits / self.raw_bits, "epsilon": self.epsilon,
                "alpha": self.alpha, "rct_cutoff": self.health.rct_cutoff, "apt_cutoff": self.health.apt_cutoff,
                "apt_window": self.health.window}

    def block(self) -> np.ndarray:
        """One extracted block of ``out_bits`` bits (``uint8`` 0/1); raises if the health tests fail."""
        codes = self.source.read(self.block_samples)
        self.health.check(codes)  # raises before anything of this block is used
        shifts = np.arange(self.source.adc_bits - 1, -1, -1, dtype=np.uint16)
        raw = ((codes[:, None] >> shifts) & 1).astype(np.uint8).ravel()
        self.blocks += 1
        return toeplitz_hash(raw, self.toeplitz_seed, self.out_bits)

    def random_bytes(self, n: int) -> bytes:
        """``n`` random bytes (thread-safe)."""
        if not isinstance(n, int) or n < 0:
            raise ParameterError("n", n, "a whole number of bytes >= 0")
        with self._lock:
            if self.failed is not None:
                raise HealthTestFailure(f"output stopped: {self.failed}")
            chunks = [self._buffer]
            have = len(self._buffer)
            while have < n:
                data = np.packbits(self.block()).tobytes()[: self.out_bits // 8]
                chunks.append(data)
                have += len(data)
            data = b"".join(chunks)
            self._buffer = data[n:]
            return data[:n]

    def random_bits(self, n: int) -> np.ndarray:
        """``n`` random bits as ``uint8`` 0/1."""
        return np.unpackbits(np.frombuffer(self.random_bytes((n + 7) // 8), dtype=np.uint8))[:n]


class QrngGenerator(np.random.Generator):
    """A ``numpy.random.Generator`` drawing from a :class:`Qrng` through :func:`bit_generator`; after a health-test
    failure every draw raises :class:`HealthTestFailure` instead of returning numbers (a ``BitGenerator``
    callback cannot raise, so the check is here, after the draw)."""

    def __init__(self, qrng: Qrng, buffer_words: int = 1 << 10):
        self.qrng = qrng
        super().__init__(bit_generator(qrng, buffer_words))

    def __getattribute__(self, name: str):
        attr = super().__getattribute__(name)
        if name.startswith("_") or not callable(attr) or name in ("qrng", "bit_generator", "spawn"):
            return attr
        qrng = super().__getattribute__("qrng")

        def checked(*args, **kwargs):
            if qrng.failed is not None:
                raise HealthTestFailure(f"output stopped: {qrng.failed}")
            result = attr(*args, **kwargs)
            if qrng.failed is not None:  # failed during this draw: discard what it made
                raise HealthTestFailure(f"output stopped: {qrng.failed}")
            return result

        return checked


def bit_generator(qrng: Qrng, buffer_words: int = 1 << 10):
    """A ``numpy.random.BitGenerator`` (randomgen's ``UserBitGenerator``) of 64-bit words from ``qrng``.

    On its own it returns zeros after a health-test failure (its callback cannot raise): use it through
    :class:`QrngGenerator` or :func:`generator`, which raise instead.
    """
    try:
        from randomgen import UserBitGenerator
    except ImportError:  # pragma: no cover - the qml extra is missing
        from qfabric.errors import QfabricError

        raise QfabricError("the QRNG BitGenerator needs randomgen: pip install 'qfabric[qml]'") from None
    words = np.empty(0, dtype=np.uint64)
    position = [0]

    def next_raw(_state) -> int:
        nonlocal words
        if position[0] >= len(words):
            try:
                words = np.frombuffer(qrng.random_bytes(8 * buffer_words), dtype=np.uint64)
            except HealthTestFailure:
                words = np.zeros(buffer_words, dtype=np.uint64)
            position[0] = 0
        value = int(words[position[0]])
        position[0] += 1
        return value

    return UserBitGenerator(next_raw, 64)


def generator(seed: int | None = None, **options) -> QrngGenerator:
    """A ``numpy.random.Generator`` over a new :class:`Qrng` (``seed``: reproducible simulation).

    >>> g = generator(seed=3)
    >>> x = g.random(3); bool(((0 <= x) & (x < 1)).all()), bool((generator(seed=3).random(3) == x).all())
    (True, True)
    """
    return QrngGenerator(Qrng(seed=seed, **options))
