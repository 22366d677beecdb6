"""The batch engine: compiled Monte Carlo of the standard discrete chain model, 0.4-4 million trials/s per core.

The model is the one :mod:`qfabric.network.analysis` solves exactly and :mod:`qfabric.network.discrete` runs on
the event engine (Brand, Coopmans, Elkouss, IEEE JSAC 38, 619 (2020)): time counts attempts, a segment without a
pair attempts once per step and succeeds with ``p_gen`` (a Werner pair ``w0``), swaps succeed with ``p_swap``,
a stored pair decays as ``w -> w exp(-1 / t_coh)`` per step, with cut-offs in the same conventions
(swap-asap: a pair of age ``cutoff`` that was not used is discarded, ``swap_timing`` sequential or simultaneous,
``link_age`` reset or oldest; nested: per-level cut-offs on the age difference of the two halves).

Each trial runs from an empty chain to its first end-to-end pair, compiled with numba. Failed attempts cost
nothing: a free segment's next success is one geometric draw, and the trial jumps from one step where
something happens (a success, a cut-off) to the next, so the cost does not grow as ``p_gen`` falls. The cost
is about 45 ns per such step on one core, so a chain with many steps per delivery (high ``p_gen``, tight cut-offs)
runs fewer trials per second than a sparse one (docs/BENCHMARKS.md, "Batch engine and sweeps").

The trials run in chunks of :data:`CHUNK`, each chunk with its own generator seeded from
``SeedSequence(seed).spawn(...)``, on ``threads`` Python threads (the compiled kernels release the GIL): a seed
gives the same trials whatever the number of threads. Python threads rather than numba's ``prange``: they start
and stop with each call (no thread pool left running when a sweep forks its worker processes, which GNU OpenMP does
not survive), any number of callers may run at once (numba's workqueue layer refuses concurrent callers), and
each finished chunk reports progress.

This belongs to the ``network`` layer (DESIGN.md: "exact and batch analysis of chains"), beside the exact
analysis it is held to; ``plan`` (sweeps) calls it.

>>> r = batch_chain(segments=2, p_gen=0.5, trials=200_000, seed=3)
>>> abs(r.mean_waiting_time - 8 / 3) < 4 * r.waiting_time_stderr      # (3 - 2p) / (p (2 - p))
True
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numba
import numpy as np
from numba import njit

from qfabric.errors import ParameterError
from qfabric.network.analysis import SampledWerner, check_chain_parameters

CHUNK = 1 << 16  # trials per compiled call, each chunk with its own generator (the unit of work of a thread)
MAX_STEPS = 1 << 62  # a longer wait than any run reaches (the step counter stays far from int64 overflow)


@dataclass(frozen=True)
class BatchChain(SampledWerner):
    """Sample means with standard errors over ``trials`` independent deliveries (95 %: mean +- 1.96 stderr);
    times in attempts (one step each)."""

    scheme: str
    segments: int
    trials: int
    mean_waiting_time: float
    waiting_time_stderr: float
    waiting_time_p99: float
    mean_werner: float
    werner_stderr: float
    seconds: float  # wall time of the Monte Carlo

    @property
    def trials_per_second(self) -> float:
        return self.trials / self.seconds if self.seconds > 0 else math.inf

    def to_dict(self) -> dict:
        return asdict(self) | {"mean_fidelity": self.mean_fidelity, "fidelity_stderr": self.fidelity_stderr,
                               "trials_per_second": self.trials_per_second,
                               "time_unit": "attempts (one time step each)"}


# ---- compiled kernels -------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _geometric(rng, scale):  # pragma: no cover - compiled
    """Attempts up to and including the first success, ``scale = -1 / log(1 - p_gen)`` (0 when ``p_gen = 1``).

    Exact inversion of one exponential draw (numpy's own method for small ``p_gen``, with the logarithm taken once
    per run): ``P(ceil(E scale) > k) = exp(-k / scale) = (1 - p_gen)^k``. Capped at ``MAX_STEPS``."""
    if scale == 0.0:
        return 1
    x = rng.standard_exponential() * scale
    if x >= MAX_STEPS:
        return MAX_STEPS
    return max(1, math.ceil(x))


@njit(cache=True, nogil=True, inline="always")  # inlined: about 5 % faster on dense chains
def _free(seg_of, nxt, lo, hi, t, rng, scale):  # pragma: no cover - compiled
    """Segments ``lo..hi`` lose their pair at step ``t``: each attempts again from ``t + 1``."""
    for s in range(lo, hi + 1):
        seg_of[s] = -1
        nxt[s] = t + _geometric(rng, scale)


@njit(cache=True, nogil=True)
def _swap_asap_trials(rng, trials, n, scale, p_swap, cutoff, simultaneous, oldest,
                      waits, stored):  # pragma: no cover - compiled
    """Fill ``waits[i]`` (steps to delivery) and ``stored[i]`` (steps its parts spent in memory, added up) for
    ``trials`` swap-asap deliveries (``cutoff < 0``: none)."""
    seg_of = np.empty(n, np.int64)  # left end of the pair covering each segment, -1: free
    nxt = np.empty(n, np.int64)  # a free segment's next success step
    right = np.empty(n, np.int64)  # pairs keyed by their left segment: right end (-1: no pair starts here)
    acc = np.empty(n, np.int64)  # storage steps its parts had accumulated at step tw
    tw = np.empty(n, np.int64)
    born = np.empty(n, np.int64)  # the step its cut-off age counts from
    run = np.empty(n, np.int64)
    all_swaps = np.empty(n, np.float64)  # all_swaps[k]: probability that k swaps all succeed
    for k in range(n):
        all_swaps[k] = p_swap ** k
    for i in range(trials):
        for s in range(n):
            seg_of[s] = -1
            right[s] = -1
            nxt[s] = _geometric(rng, scale)
        t = 0
        while True:
            soonest = t + 1  # the next step where something happens: nothing can come sooner than this
            t = np.iinfo(np.int64).max
            for s in range(n):
                if seg_of[s] < 0 and nxt[s] < t:
                    t = nxt[s]
                if cutoff >= 0 and right[s] >= 0 and born[s] + cutoff < t:
                    t = born[s] + cutoff
                if t == soonest:
                    break
            for s in range(n):  # new elementary pairs
                if seg_of[s] < 0 and nxt[s] == t:
                    seg_of[s] = s
                    right[s] = s
                    acc[s] = 0
                    tw[s] = t
                    born[s] = t
            # swaps: pieces left to right
            s = 0
            last = -1  # the last surviving piece (sequential), or the run being collected (simultaneous)
            m = 0
            while s <= n:
                here = s < n and right[s] >= 0
                if simultaneous:
                    if here and m > 0 and right[run[m - 1]] + 1 == s:
                        run[m] = s
                        m += 1
                    else:
                        if m > 1:  # close the run: all its swaps succeed, or all its pairs are lost
                            first = run[0]
                            end = right[run[m - 1]]
                            if p_swap >= 1.0 or rng.random() < all_swaps[m - 1]:
                                value = 0
                                start = born[first]
                                for k in range(m):
                                    q = run[k]
                                    value += acc[q] + t - tw[q]
                                    start = min(start, born[q])
                                    if k > 0:
                                        right[q] = -1
                                right[first] = end
                                for u in range(first, end + 1):
                                    seg_of[u] = first
                                acc[first] = value
                                tw[first] = t
                                born[first] = start if oldest else t
                            else:
                                for k in range(m):
                                    right[run[k]] = -1
                                _free(seg_of, nxt, first, end, t, rng, scale)
                        m = 0
                        if here:
                            run[0] = s
                            m = 1
                else:
                    if here:
                        if last >= 0 and right[last] + 1 == s:
                            if p_swap >= 1.0 or rng.random() < p_swap:
                                acc[last] = acc[last] + t - tw[last] + acc[s] + t - tw[s]
                                tw[last] = t
                                born[last] = min(born[last], born[s]) if oldest else t
                                right[last] = right[s]
                                right[s] = -1
                                for u in range(last, right[last] + 1):
                                    seg_of[u] = last
                                s = right[last] + 1
                                continue
                            end = right[s]
                            right[last] = -1
                            right[s] = -1
                            _free(seg_of, nxt, last, end, t, rng, scale)
                            last = -1
                            s = end + 1
                            continue
                        last = s
                if here:
                    s = right[s] + 1
                else:
                    s += 1
            if right[0] == n - 1:
                waits[i] = t
                stored[i] = acc[0] + t - tw[0]
                break
            if cutoff >= 0:
                for s in range(n):
                    if right[s] >= 0 and t - born[s] >= cutoff:
                        end = right[s]
                        right[s] = -1
                        _free(seg_of, nxt, s, end, t, rng, scale)


@njit(cache=True, nogil=True)
def _nested_trials(rng, trials, levels, scale, p_swap, cutoffs, waits, stored):  # pragma: no cover - compiled
    """Fill ``waits`` and ``stored`` for ``trials`` nested deliveries over ``2^levels`` segments.

    A pair at level ``k`` joins two level ``k - 1`` pairs made one after the other, retried until the swap succeeds
    within the cut-off, drawn depth first without recursion: ``first_t[k], first_d[k]`` (steps, storage steps) of a
    finished first half waiting at level ``k`` (``waiting[k]``), ``spent[k]`` the steps of level ``k``'s failed
    attempts so far."""
    spent = np.zeros(levels + 1, np.int64)
    first_t = np.zeros(levels + 1, np.int64)
    first_d = np.zeros(levels + 1, np.int64)
    waiting = np.zeros(levels + 1, np.bool_)
    for i in range(trials):
        while True:
            t = _geometric(rng, scale)  # a new elementary pair, then up the levels as far as it completes
            d = 0
            k = 1
            while k <= levels:
                if not waiting[k]:
                    waiting[k] = True
                    first_t[k] = t
                    first_d[k] = d
                    break
                waiting[k] = False
                ta = first_t[k]
                gap = abs(ta - t)
                c = cutoffs[k - 1]
                if c >= 0 and gap > c:  # the earlier half waited too long: both restart
                    spent[k] += min(ta, t) + c
                    break
                if p_swap < 1.0 and rng.random() >= p_swap:
                    spent[k] += max(ta, t)
                    break
                t = spent[k] + max(ta, t)
                d = first_d[k] + d + gap
                spent[k] = 0
                k += 1
            if k > levels:
                break
        waits[i] = t
        stored[i] = d


# ---- the public functions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainTrials:
    """Raw trials: ``waits[i]`` steps from an empty chain to the ``i``-th trial's end-to-end pair, ``stored[i]``
    the steps its elementary pairs (and the pairs swapped from them) spent in memory, added up pair by pair.

    Memory noise and swaps multiply the Bell-diagonal Fourier components of a pair, so a delivered pair is fixed
    by these two numbers: its Werner parameter is ``w0 ** segments * exp(-stored / t_coh)`` (:meth:`werner`)."""

    scheme: str
    segments: int
    waits: np.ndarray
    stored: np.ndarray
    seconds: float

    def werner(self, w0: float = 1.0, t_coh: float = math.inf) -> np.ndarray:
        """Werner parameter of each delivered pair."""
        decay = 0.0 if not math.isfinite(t_coh) else 1.0 / t_coh
        return w0**self.segments * np.exp(-decay * self.stored)


def chunk_seeds(seed: int | np.random.SeedSequence, chunks: int) -> list[np.random.SeedSequence]:
    """The seed of each chunk of trials: ``SeedSequence(seed).spawn(chunks)``, without advancing a ``seed`` that is
    already a ``SeedSequence`` (so the same object gives the same trials each time).

    >>> [s.spawn_key for s in chunk_seeds(7, 2)]
    [(0,), (1,)]
    """
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return [np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, k), pool_size=root.pool_size)
            for k in range(chunks)]


def chain_trials(
    segments: int,
    p_gen: float,
    p_swap: float = 1.0,
    cutoffs: list[int | None] | int | None = None,
    scheme: str = "swap-asap",
    trials: int = 1_000_000,
    seed: int | np.random.SeedSequence = 0,
    swap_timing: str = "sequential",
    link_age: str = "reset",
    progress: Callable[[int], None] | None = None,
    threads: int | None = None,
) -> ChainTrials:
    """``trials`` independent deliveries of the chain (each from empty to its first end-to-end pair).

    Arguments as :func:`~qfabric.network.discrete.simulate_chain`: ``cutoffs`` is one whole number of steps for
    swap-asap (or a one-element list) and one per nesting level for nested (``None`` entries: no cut-off).
    ``seed`` (an int or a ``SeedSequence``) fixes every draw, whatever the number of ``threads`` (default
    ``numba.get_num_threads()``, the cores): the trials run in chunks of :data:`CHUNK`, each with its own generator
    (:func:`chunk_seeds`), the chunks spread over the threads. ``progress(done)`` is called after each chunk.

    >>> r = chain_trials(1, 0.25, trials=10, seed=1)
    >>> r.waits.shape, int(r.stored.max())      # one segment: delivered at once, never stored
    ((10,), 0)
    """
    check_chain_parameters(segments, p_gen, p_swap, 1.0, math.inf)
    if not isinstance(trials, int | np.integer) or trials < 2:
        raise ParameterError("trials", trials, "a whole number of trials >= 2")
    if scheme not in ("swap-asap", "nested"):
        raise ParameterError("scheme", scheme, "swap-asap or nested")
    if swap_timing not in ("sequential", "simultaneous"):
        raise ParameterError("swap_timing", swap_timing, "sequential or simultaneous")
    if link_age not in ("reset", "oldest"):
        raise ParameterError("link_age", link_age, "reset or oldest")
    levels = segments.bit_length() - 1
    if scheme == "nested":
        if segments & (segments - 1):
            raise ParameterError("segments", segments, "a power of two for the nested scheme")
        per_level = [None] * levels if cutoffs is None else [cutoffs] if isinstance(cutoffs, int) else list(cutoffs)
        if len(per_level) != levels:
            raise ParameterError("cutoffs", cutoffs, f"one cut-off per nesting level ({levels})")
    else:
        per_level = [cutoffs] if cutoffs is None or isinstance(cutoffs, int) else list(cutoffs)
        if len(per_level) != 1:
            raise ParameterError("cutoffs", cutoffs, "one cut-off for swap-asap (a pair's maximum age in steps)")
    if any(c is not None and (not isinstance(c, int | np.integer) or c < 0) for c in per_level):
        raise ParameterError("cutoffs", cutoffs, "whole numbers of steps >= 0 (or none)")
    coded = np.array([-1 if c is None else int(c) for c in per_level] or [-1], dtype=np.int64)
    if not isinstance(seed, np.random.SeedSequence) and (not isinstance(seed, int | np.integer) or seed < 0):
        raise ParameterError("seed", seed, "a whole number >= 0 or a numpy SeedSequence")
    if threads is None:
        threads = numba.get_num_threads()
    if not isinstance(threads, int | np.integer) or threads < 1:
        raise ParameterError("threads", threads, "a whole number of threads >= 1")
    scale = 0.0 if p_gen >= 1 else -1.0 / math.log1p(-p_gen)
    waits = np.empty(trials, dtype=np.int64)
    stored = np.empty(trials, dtype=np.int64)
    bounds = list(range(0, trials, CHUNK)) + [trials]
    seeds = chunk_seeds(seed, len(bounds) - 1)

    def run_chunk(k: int) -> int:
        lo, hi = bounds[k], bounds[k + 1]
        rng = np.random.Generator(np.random.PCG64(seeds[k]))
        if scheme == "nested":
            _nested_trials(rng, hi - lo, levels, scale, p_swap, coded, waits[lo:hi], stored[lo:hi])
        else:
            _swap_asap_trials(rng, hi - lo, segments, scale, p_swap, int(coded[0]), swap_timing == "simultaneous",
                              link_age == "oldest", waits[lo:hi], stored[lo:hi])
        return hi

    def run_all(mapper: Callable) -> None:
        for done in mapper(run_chunk, range(len(seeds))):  # in chunk order: progress only grows
            if progress is not None:
                progress(done)

    start = time.perf_counter()
    workers = min(threads, len(seeds))
    if workers == 1:
        run_all(map)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            run_all(pool.map)
    return ChainTrials(scheme, segments, waits, stored, time.perf_counter() - start)


def batch_chain(
    segments: int,
    p_gen: float,
    p_swap: float = 1.0,
    w0: float = 1.0,
    t_coh: float = math.inf,
    cutoffs: list[int | None] | int | None = None,
    scheme: str = "swap-asap",
    trials: int = 1_000_000,
    seed: int | np.random.SeedSequence = 0,
    swap_timing: str = "sequential",
    link_age: str = "reset",
    progress: Callable[[int], None] | None = None,
    threads: int | None = None,
) -> BatchChain:
    """Mean waiting time and Werner parameter of the chain from ``trials`` deliveries (:func:`chain_trials`),
    with the same arguments as :func:`~qfabric.network.discrete.simulate_chain`.

    >>> batch_chain(1, 0.25, w0=0.9, trials=10, seed=1).mean_werner
    0.9
    """
    check_chain_parameters(segments, p_gen, p_swap, w0, t_coh)
    run = chain_trials(segments, p_gen, p_swap, cutoffs, scheme, trials, seed, swap_timing, link_age, progress,
                       threads)
    werner = run.werner(w0, t_coh)
    root_n = math.sqrt(trials)
    return BatchChain(
        scheme=scheme,
        segments=segments,
        trials=trials,
        mean_waiting_time=float(run.waits.mean()),
        waiting_time_stderr=float(run.waits.std(ddof=1) / root_n),
        waiting_time_p99=float(np.percentile(run.waits, 99)),
        mean_werner=float(werner.mean()),
        werner_stderr=float(werner.std(ddof=1) / root_n),
        seconds=run.seconds,
    )
