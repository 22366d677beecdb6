"""NIST SP 800-90B continuous health tests (section 4.4): the repetition count test and the adaptive
proportion test, run on every raw sample before it is used; a failure latches and stops the output.

Cut-offs for a claimed min-entropy ``H`` bits per sample and a false-alarm probability ``alpha``
(SP 800-90B recommends ``2^-20 <= alpha <= 2^-40``):

* repetition count: ``C = 1 + ceil(-log2(alpha) / H)``; fails when a value repeats ``C`` times in a row.
* adaptive proportion: windows of ``W = 1024`` samples for binary sources, ``512`` otherwise;
  ``C = 1 + CRITBINOM(W, 2^-H, 1 - alpha)`` (the smallest ``k`` with ``P(Binomial <= k) >= 1 - alpha``);
  fails when the window's first value occurs ``C`` or more times in the window.

>>> rct_cutoff(6.0, 2**-20), apt_cutoff(6.0, 2**-20, 512)
(5, 25)
>>> rct_cutoff(1.0, 2**-20), apt_cutoff(1.0, 2**-20, 1024)
(21, 589)
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import binom

from qfabric.errors import ParameterError, QfabricError


class HealthTestFailure(QfabricError):
    """A continuous health test failed: the entropy source is not behaving as claimed, output has stopped."""


def _check(h: float, alpha: float) -> None:
    if not 0 < h <= 64:
        raise ParameterError("min_entropy", h, "bits per sample in (0, 64]")
    if not 2.0**-40 <= alpha <= 2.0**-20:
        raise ParameterError("alpha", alpha, "a false-alarm probability between 2^-40 and 2^-20 (SP 800-90B 4.4)")


def rct_cutoff(h: float, alpha: float) -> int:
    """Repetition count cut-off ``1 + ceil(-log2(alpha) / H)``."""
    _check(h, alpha)
    return 1 + math.ceil(-math.log2(alpha) / h - 1e-12)


def apt_cutoff(h: float, alpha: float, window: int) -> int:
    """Adaptive proportion cut-off ``1 + CRITBINOM(W, 2^-H, 1 - alpha)``."""
    _check(h, alpha)
    return 1 + int(binom.ppf(1 - alpha, window, 2.0**-h))


class HealthTests:
    """Both tests on a stream of samples, fed in batches of any size (state carries across batches).

    >>> t = HealthTests(min_entropy=6.0, alpha=2**-20)
    >>> t.check(np.arange(2048) % 200)       # varied samples pass
    >>> t.check(np.zeros(10, dtype=int))     # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    HealthTestFailure: repetition count test: ...
    """

    def __init__(self, min_entropy: float, alpha: float = 2.0**-20, binary: bool = False):
        self.min_entropy, self.alpha = min_entropy, alpha
        self.window = 1024 if binary else 512
        self.rct_cutoff = rct_cutoff(min_entropy, alpha)
        self.apt_cutoff = apt_cutoff(min_entropy, alpha, self.window)
        self.failure: str | None = None
        self._last: int | None = None
        self._run = 0
        self._pending = np.empty(0, dtype=np.int64)  # samples of the adaptive proportion window not yet complete
        self.samples_tested = 0

    def check(self, samples: np.ndarray) -> None:
        """Test a batch; raise :class:`HealthTestFailure` (and stay failed) if either test fails."""
        if self.failure is not None:
            raise HealthTestFailure(self.failure)
        samples = np.asarray(samples).astype(np.int64, copy=False).ravel()
        if len(samples):
            self._repetition_count(samples)
            self._adaptive_proportion(samples)
            self.samples_tested += len(samples)

    def _fail(self, message: str) -> None:
        self.failure = message
        raise HealthTestFailure(message)

    def _repetition_count(self, x: np.ndarray) -> None:
        starts = np.flatnonzero(np.diff(x)) + 1  # where a new run begins
        bounds = np.concatenate(([0], starts, [len(x)]))
        runs = np.diff(bounds)
        if self._last is not None and x[0] == self._last:
            runs[0] += self._run
        if runs.max() >= self.rct_cutoff:
            at = int(np.argmax(runs >= self.rct_cutoff))
            self._fail(f"repetition count test: value {int(x[bounds[at]])} repeated {int(runs[at])} times in a row "
                       f"(cut-off {self.rct_cutoff} for H = {self.min_entropy:.3f} bits/sample, "
                       f"alpha = 2^{math.log2(self.alpha):.0f})")
        self._last, self._run = int(x[-1]), int(runs[-1])

    def _adaptive_proportion(self, x: np.ndarray) -> None:
        x = np.concatenate((self._pending, x))
        full = len(x) // self.window
        if full:
            windows = x[: full * self.window].reshape(full, self.window)
            counts = (windows == windows[:, :1]).sum(axis=1)
            bad = np.flatnonzero(counts >= self.apt_cutoff)
            if len(bad):
                w = bad[0]
                self._fail(f"adaptive proportion test: value {int(windows[w, 0])} occurred {int(counts[w])} times "
                           f"in a window of {self.window} (cut-off {self.apt_cutoff} for H = "
                           f"{self.min_entropy:.3f} bits/sample, alpha = 2^{math.log2(self.alpha):.0f})")
        self._pending = x[full * self.window:].copy()
