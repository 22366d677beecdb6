"""Exact waiting time and fidelity of homogeneous repeater chains in the standard discrete-time model.

The model (Brand, Coopmans, Elkouss, IEEE JSAC 38, 619 (2020); Li et al., npj Quantum Inf. 7,
160 (2021)): time counts attempts; each segment without a pair attempts once per step and
succeeds with ``p_gen``, giving a Werner pair ``w0``; a swap happens as soon as its two input pairs
exist and succeeds with ``p_swap`` (a failure loses both inputs); a pair that waits for its
partner decays as ``w -> w exp(-wait / t_coh)``; with the nested scheme, an optional cut-off per
nesting level: when the two inputs' ages differ by more than it, the round fails at the earlier
one's time plus the cut-off and both halves restart.

* :func:`nested_exact` computes the waiting-time distribution level by level with generating
  functions evaluated by FFT (exact up to the stated truncation ``horizon``; the neglected tail
  mass is reported).
* :func:`swap_asap_exact` solves the Markov chain over the pairs alive (which segments each covers and,
  with a cut-off, its age). Its state also carries the expected-fidelity coefficients of each subset of
  the pairs alive, which is what makes the mean fidelity exact with probabilistic swaps.

>>> round(nested_exact(segments=2, p_gen=0.5, p_swap=1.0).mean_waiting_time, 6)   # (3-2p)/(p(2-p))
2.666667
>>> round(swap_asap_exact(segments=2, p_gen=0.5, p_swap=1.0).mean_waiting_time, 6)
2.666667
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from itertools import combinations

import numpy as np
from scipy import sparse
from scipy.signal import lfilter
from scipy.sparse.linalg import spsolve

from qfabric.errors import ParameterError


class SampledWerner:
    """Fidelity of Monte Carlo results that carry a mean Werner parameter ``w`` and its standard error:
    ``F = (1 + 3 w) / 4`` (mixed into the event engine's and the batch engine's result classes)."""

    mean_werner: float
    werner_stderr: float

    @property
    def mean_fidelity(self) -> float:
        return (1.0 + 3.0 * self.mean_werner) / 4.0

    @property
    def fidelity_stderr(self) -> float:
        return 0.75 * self.werner_stderr


@dataclass(frozen=True)
class ChainResult:
    """Mean waiting time (attempts) and mean Werner parameter / fidelity of delivered pairs."""

    scheme: str
    segments: int
    mean_waiting_time: float
    mean_werner: float
    truncation_error: float = 0.0
    method: str = ""

    @property
    def mean_fidelity(self) -> float:
        return (1.0 + 3.0 * self.mean_werner) / 4.0

    def to_dict(self) -> dict:
        return asdict(self) | {"mean_fidelity": self.mean_fidelity, "time_unit": "attempts (one time step each)"}


def two_link_waiting_time(p: float) -> float:
    """Expected attempts until two independent links both succeed: ``(3 - 2p) / (p (2 - p))``."""
    _check("p", p)
    return (3.0 - 2.0 * p) / (p * (2.0 - p))


def _check(name: str, p: float) -> None:
    if not (0 < p <= 1):
        raise ParameterError(name, p, "a probability in (0, 1]")


def check_chain_parameters(segments: int, p_gen: float, p_swap: float, w0: float, t_coh: float) -> float:
    """Validate the chain model's parameters; returns the per-step decay factor ``exp(-1/t_coh)``."""
    if not isinstance(segments, int) or segments < 1:
        raise ParameterError("segments", segments, "a whole number >= 1")
    _check("p_gen", p_gen)
    _check("p_swap", p_swap)
    if not -1 / 3 <= w0 <= 1:
        raise ParameterError("w0", w0, "a Werner parameter in [-1/3, 1]")
    if not t_coh > 0:
        raise ParameterError("t_coh", t_coh, "a positive coherence time in attempts (inf: no decay)")
    return math.exp(-1.0 / t_coh) if math.isfinite(t_coh) else 1.0


# ---- nested (doubling) scheme ---------------------------------------------------------------


def _window_sum(x: np.ndarray, decay: float, cutoff: int | None) -> np.ndarray:
    """``G[t] = sum_{d=0}^{min(cutoff, t)} x[t-d] decay^d`` (a linear filter, O(n))."""
    if cutoff is None:
        return lfilter([1.0], [1.0, -decay], x)
    b = np.zeros(cutoff + 2)
    b[0], b[-1] = 1.0, -(decay ** (cutoff + 1))
    return lfilter(b, [1.0, -decay], x)


def _nested_levels(levels, p_gen, p_swap, w0, decay, cutoffs, horizon):
    t = np.arange(horizon)
    P = np.where(t >= 1, p_gen * (1.0 - p_gen) ** np.maximum(t - 1, 0), 0.0)
    W = w0 * P
    for level in range(levels):
        c = cutoffs[level]
        both = 2.0 * P * _window_sum(P, 1.0, c) - P * P  # P(max(a,b) = t and |a-b| <= c)
        both_w = 2.0 * W * _window_sum(W, decay, c) - W * W
        fail = (1.0 - p_swap) * both
        if c is not None:  # a = m, b > m + c: fails at m + c (twice: either half first)
            tail = np.clip(1.0 - np.cumsum(P), 0.0, None)
            fail_cut = np.zeros(horizon)
            fail_cut[c:] = 2.0 * P[: horizon - c] * tail[c:]
            fail = fail + fail_cut
        F = np.fft.rfft(fail)
        P = np.fft.irfft(np.fft.rfft(p_swap * both) / (1.0 - F), n=horizon)
        W = np.fft.irfft(np.fft.rfft(p_swap * both_w) / (1.0 - F), n=horizon)
    return P, W


def nested_exact(
    segments: int,
    p_gen: float,
    p_swap: float = 1.0,
    w0: float = 1.0,
    t_coh: float = math.inf,
    cutoffs: list[int | None] | None = None,
    tolerance: float = 1e-10,
    max_horizon: int = 2**24,
) -> ChainResult:
    """Mean waiting time and Werner parameter of the nested scheme over ``segments = 2^n`` segments.

    The horizon (number of time steps kept) doubles until the probability mass in its upper
    half is below ``tolerance``; that mass bounds the relative error (``truncation_error``).
    """
    decay = check_chain_parameters(segments, p_gen, p_swap, w0, t_coh)
    if segments & (segments - 1):
        raise ParameterError("segments", segments, "a power of two for the nested scheme")
    levels = segments.bit_length() - 1
    cutoffs = list(cutoffs) if cutoffs is not None else [None] * levels
    if len(cutoffs) != levels:
        raise ParameterError("cutoffs", cutoffs, f"one cut-off per nesting level ({levels})")
    if any(c is not None and (not isinstance(c, int) or c < 0) for c in cutoffs):
        raise ParameterError("cutoffs", cutoffs, "whole numbers of attempts >= 0")
    horizon = 1024
    while True:
        P, W = _nested_levels(levels, p_gen, p_swap, w0, decay, cutoffs, horizon)
        tail = float(np.abs(P[horizon // 2 :]).sum())
        if tail < tolerance or horizon >= max_horizon:
            break
        horizon *= 2
    mass = P.sum()
    t = np.arange(horizon)
    return ChainResult(
        scheme="nested",
        segments=segments,
        mean_waiting_time=float((t * P).sum() / mass),
        mean_werner=float(W.sum() / mass),
        truncation_error=tail,
        method=f"generating functions by FFT, horizon {horizon} steps",
    )


# ---- swap-as-soon-as-possible ---------------------------------------------------------------


MAX_UNKNOWNS = 400_000  # the sparse solve of larger swap-asap chains takes minutes and gigabytes


def _sequential_branches(pieces, p_swap, merge):
    """Swaps left to right between adjacent pieces; a failed swap loses its two inputs. Yields (probability,
    surviving pieces)."""
    out = []

    def walk(done, rest, prob):
        if not rest:
            out.append((prob, done))
            return
        head = rest[0]
        if done and done[-1][1] + 1 == head[0]:
            walk(done[:-1] + [merge(done[-1], head)], rest[1:], prob * p_swap)
            if p_swap < 1:
                walk(done[:-1], rest[1:], prob * (1 - p_swap))
        else:
            walk(done + [head], rest[1:], prob)

    walk([], pieces, 1.0)
    return out


def _simultaneous_branches(pieces, p_swap, merge):
    """All ready nodes swap at once: each run of adjacent pieces becomes one piece if its ``len - 1`` swaps all
    succeed, and is lost otherwise."""
    runs: list[list] = []
    for piece in pieces:
        if runs and runs[-1][-1][1] + 1 == piece[0]:
            runs[-1].append(piece)
        else:
            runs.append([piece])
    out = [(1.0, [])]
    for run in runs:
        if len(run) == 1:
            out = [(prob, done + run) for prob, done in out]
            continue
        merged = run[0]
        for piece in run[1:]:
            merged = merge(merged, piece)
        ok = p_swap ** (len(run) - 1)
        nxt = [(prob * ok, done + [merged]) for prob, done in out]
        if ok < 1:
            nxt += [(prob * (1 - ok), done) for prob, done in out]
        out = nxt
    return out


def swap_asap_exact(
    segments: int, p_gen: float, p_swap: float = 1.0, w0: float = 1.0, t_coh: float = math.inf,
    cutoff: int | None = None, swap_timing: str = "sequential", link_age: str = "reset",
) -> ChainResult:
    """Mean waiting time and Werner parameter of swap-ASAP by solving the chain's Markov chain.

    The state is the set of pairs alive after a step: the segments each covers and, with a ``cutoff``, its age
    in steps. Each step: segments no pair covers attempt (``p_gen``); adjacent pairs swap, node by node from the
    left (``sequential``: a failed swap loses its two inputs) or all at once (``simultaneous``: a run of adjacent
    swaps succeeds whole or loses all its pairs); a swapped pair's age restarts (``link_age="reset"``) or is its
    oldest part's (``"oldest"``, Iñesta et al. npj QI 9, 46 (2023)); pairs of age ``cutoff`` that were not used
    are discarded. The expected final Werner parameter is multilinear in the factors of the pairs alive, so each
    state keeps one unknown per subset of its pairs; a pair decays by ``exp(-1/t_coh)`` per step it waits.
    """
    decay = check_chain_parameters(segments, p_gen, p_swap, w0, t_coh)
    if cutoff is not None and (not isinstance(cutoff, int) or cutoff < 0):
        raise ParameterError("cutoff", cutoff, "a whole number of steps >= 0 (or none)")
    if swap_timing not in ("sequential", "simultaneous"):
        raise ParameterError("swap_timing", swap_timing, "sequential or simultaneous")
    if link_age not in ("reset", "oldest"):
        raise ParameterError("link_age", link_age, "reset or oldest")
    n = segments
    branches = _sequential_branches if swap_timing == "sequential" else _simultaneous_branches
    oldest = link_age == "oldest"

    def merge(left, right):  # piece: (start, end, old pair indices, new segments, age)
        age = max(left[4], right[4]) if oldest else 0
        return (left[0], right[1], left[2] + right[2], left[3] + right[3], age)

    # enumerate the reachable states from the empty chain, then build the two linear systems
    empty: tuple = ()
    states, transitions = {empty: 0}, {}
    frontier = [empty]
    unknowns = 1
    while frontier:
        state = frontier.pop()
        covered = {i for a, b, _ in state for i in range(a, b + 1)}
        zeros = [i for i in range(n) if i not in covered]
        outcomes = []
        for m in range(len(zeros) + 1):
            p_g = p_gen**m * (1 - p_gen) ** (len(zeros) - m)
            if p_g == 0:
                continue
            for new in combinations(zeros, m):
                pieces = [(a, b, (j,), 0, age + 1) for j, (a, b, age) in enumerate(state)]
                pieces += [(i, i, (), 1, 0) for i in new]
                pieces.sort()
                for prob, survivors in branches(pieces, p_swap, merge):
                    prob *= p_g
                    if prob == 0:
                        continue
                    if any(piece[0] == 0 and piece[1] == n - 1 for piece in survivors):
                        outcomes.append((prob, None, survivors))
                        continue
                    kept = [piece for piece in survivors if cutoff is None or piece[4] < cutoff]
                    target = tuple((a, b, age if cutoff is not None else 0) for a, b, _, _, age in kept)
                    if target not in states:
                        states[target] = len(states)
                        unknowns += 1 + 2 ** len(target)
                        if unknowns > MAX_UNKNOWNS:
                            raise ParameterError("segments", segments, f"a chain whose exact swap-ASAP Markov chain "
                                                 f"stays under {MAX_UNKNOWNS:,} unknowns (this one has more; with a "
                                                 "cut-off every pair's age is part of the state): use 'qfabric "
                                                 "chain simulate'")
                        frontier.append(target)
                    outcomes.append((prob, target, kept))
        transitions[state] = outcomes

    order = list(states)
    time_index = {st: i for i, st in enumerate(order)}
    index: dict[tuple, int] = {}
    for st in order:
        for mask in range(2 ** len(st)):
            index[(st, mask)] = len(index)
    rows_t, cols_t, vals_t = [], [], []
    rhs_t = np.ones(len(order))
    rows_w, cols_w, vals_w = [], [], []
    rhs_w = np.zeros(len(index))
    for st, outcomes in transitions.items():
        for prob, target, survivors in outcomes:
            # factor each surviving pair carries: w0 per new segment, one step of decay per old pair
            coef = [w0 ** piece[3] * decay ** len(piece[2]) for piece in survivors]
            olds = [sum(1 << j for j in piece[2]) for piece in survivors]
            if target is None:
                rhs_w[index[(st, olds[0])]] += prob * coef[0]
                continue
            rows_t.append(time_index[st])
            cols_t.append(time_index[target])
            vals_t.append(-prob)
            for sub in range(2 ** len(survivors)):
                old_mask, c = 0, prob
                for r in range(len(survivors)):
                    if sub >> r & 1:
                        old_mask |= olds[r]
                        c *= coef[r]
                rows_w.append(index[(st, old_mask)])
                cols_w.append(index[(target, sub)])
                vals_w.append(-c)
    size_t, size_w = len(order), len(index)
    a_t = sparse.coo_matrix((vals_t, (rows_t, cols_t)), shape=(size_t, size_t)).tocsr() + sparse.eye(size_t)
    a_w = sparse.coo_matrix((vals_w, (rows_w, cols_w)), shape=(size_w, size_w)).tocsr() + sparse.eye(size_w)
    times = np.atleast_1d(spsolve(a_t.tocsc(), rhs_t))
    werner = np.atleast_1d(spsolve(a_w.tocsc(), rhs_w))
    rules = f"{swap_timing} swaps" + (f", cut-off {cutoff}, age {link_age}" if cutoff is not None else "")
    return ChainResult(
        scheme="swap-asap",
        segments=n,
        mean_waiting_time=float(times[time_index[empty]]),
        mean_werner=float(werner[index[(empty, 0)]]),
        method=f"Markov chain ({rules}), {size_t} states, {size_w} fidelity unknowns",
    )


# ---- quantum switch ---------------------------------------------------------------------------


def switch_capacity(users: int, p_gen: float, p_swap: float = 1.0) -> float:
    """End-to-end pairs per time step of a quantum switch serving every pair of ``users``, one qubit per link.

    The star of Vardoyan, Guha, Nain, Towsley ("On the stochastic analysis of a quantum entanglement switch",
    SIGMETRICS PER 2019; "On the capacity region of bipartite and tripartite entanglement switching", 2021):
    each user-hub link holds at most one pair (``B = 1``) and attempts once per step while free, succeeding
    with ``p_gen``; the hub swaps any two stored pairs at once (success ``p_swap``; either way both links
    restart). With one qubit per link at most one pair waits at the hub, so the state is 0 or 1 stored pairs.
    In a step, ``N`` links herald one after another (``N ~ Bin(k, p)`` from state 0, ``Bin(k - 1, p)`` from
    state 1, whose stored link is busy); they pair off as they arrive. With ``O(n) = P(Bin(n, p) odd) =
    (1 - (1 - 2p)^n) / 2``: from state 0, ``floor(N / 2)`` swaps and state ``N mod 2``; from state 1,
    ``ceil(N / 2)`` swaps and state 1 iff ``N`` is even. Hence ``pi_1 = O(k) / (O(k) + O(k - 1))`` and

        C = p_swap [ pi_0 (k p - O(k)) / 2 + pi_1 ((k - 1) p + O(k - 1)) / 2 ].

    For small ``p`` it tends to the continuous-time capacity ``p_swap k (k - 1) mu / (2k - 1)`` with ``mu = p``.

    >>> round(switch_capacity(3, 0.05), 6), round(3 * 2 * 0.05 / 5, 6)
    (0.060304, 0.06)
    """
    if not isinstance(users, int) or users < 2:
        raise ParameterError("users", users, "a whole number >= 2")
    _check("p_gen", p_gen)
    _check("p_swap", p_swap)
    k, p = users, p_gen

    def odd(n: int) -> float:
        return (1.0 - (1.0 - 2.0 * p) ** n) / 2.0

    pi1 = odd(k) / (odd(k) + odd(k - 1))
    return p_swap * ((1 - pi1) * (k * p - odd(k)) / 2 + pi1 * ((k - 1) * p + odd(k - 1)) / 2)
