"""Fidelity negotiation: predict the rate and delivered fidelity of candidate plans, admit the fastest that meets
the request's floor, or refuse with the best the network can offer.

A *plan* is a path, a number of DEJMPS purification rounds on its elementary pairs (span 1) and a swap-asap
cut-off. :func:`predict` turns what the controller knows of the path (:class:`LinkFacts`, the nodes' ``NodeModel``,
read off a network by :func:`facts_from_network`) into a :class:`Prediction`; :func:`negotiate` evaluates plans
over the caller's candidate paths (the k shortest routes) and returns an :class:`Offer`.

>>> link = LinkFacts(success_probability=0.01, attempt_period_s=5e-5, herald_delay_s=5e-5,
...                  state=(0.95, 0.02, 0.02, 0.01), capacity=1, classical_delay_s=5e-5)
>>> node = NodeModel()
>>> p = predict([link, link], [node] * 3, Plan(("a", "r", "b")))
>>> round(p.rate_hz), round(p.fidelity, 4)   # 1 / (1.5 mean link times + the swap record's trip); no memory noise
(133, 0.9034)
>>> offer = negotiate([([link, link], [node] * 3, ("a", "r", "b"))], fidelity_min=0.95)
>>> offer.admit, offer.reason.split(" (")[0]
(False, 'best fidelity 0.903 < 0.95 wanted')

The model
---------

**Links.** A link attempts every ``attempt_period_s`` and heralds ``herald_delay_s`` after its successful attempt
starts: the time to a pair on one memory pair, ``h + (K - 1) tau`` with ``K`` geometric, is modelled as the dead
time ``h`` plus an exponential of mean ``(1/p - 1) tau``. A pair's Bell-diagonal state decays in both memories as
``exp(-t * rate)`` on its Fourier components (``Memory.decay_rates``), from ``stored_before_herald_s`` before the
herald. *Purification* (DEJMPS, span 1, ``r`` rounds, ``r + 1`` qubits per link end) makes a slower link: a round's
first pair waits for a partner made on the other free memories (an exponential wait cut off at the cut-off, which
loses the waiter with probability ``exp(-c / wait)``), decays meanwhile, is purified with the DEJMPS success
probability of the two states and waits one classical delay for the outcome. Counting the memory time each output
costs (generation, waiting, messages, losses, failures) gives the purified link's output rate over its memories;
an output takes many heralds, so its time is more regular than an exponential: a dead time plus an exponential
with the same mean and variance.

**The chain, one memory per link end.** Swap-asap on a path is a continuous-time Markov chain whose state is the
set of pairs alive, each an interval of links whose end memories it holds. Pairs may nest: a link under a longer
pair regenerates once both its nodes have swapped (the engine's ``regenerate_covered``). A link whose two memories
are free heralds at its rate; a new pair swaps at once with the pairs ending at its nodes. A failed swap (with
probability ``1 - swap_success_probability``) leaves a doomed pair that keeps swapping, its far ends unaware, until
the news reaches them and frees their memories (half the pair's classical span); without classical delays the
failure frees them at once. An end-to-end pair waits for the swap records to reach both ends, then is delivered.
The deterministic cut-off ``c`` of a pair whose neighbours herald at total rate ``nu`` becomes an exponential
expiry of rate ``nu e^{-nu c} / (1 - e^{-nu c})``, which keeps exact both the probability that the pair expires
before it is used and its mean time to either event; its decay rate is scaled so that the pairs that are used keep
their exact mean storage ``E[T | T < c]``. The chain has at most 103 states over 5 links and is solved exactly:
the throughput from its stationary distribution, and a delivered pair's mean decay factor per Fourier component
from flux equations over (state, set of pairs alive) unknowns, the expected product of the set's decay factors
(multilinear: swapping multiplies factors), as :func:`~qfabric.network.analysis.swap_asap_exact` does in discrete
time. Against it (small ``p``, covered links waiting, no delays) the waiting time agrees within 1 % for cut-offs
of half a mean link time or more and within 9 % at a fifth of one; the Werner parameter within 0.006, exactly
without a cut-off.

**Many memories per link end.** With ``L`` memories per end (the path's smallest capacity) each link heralds on
all of them: the chain above with every rate times ``L`` (a waiting pair's partner comes ``L`` times sooner, which
is what sets cut-off losses) gives the pooled rate ``R_p``; the bottleneck bound ``R_b`` is the slowest link on all
its memories for the pairs it makes per delivered pair (failed swaps and cut-offs waste some), the end links
holding their memories until delivery. ``1/R = 1/R_b + kappa_r (1/R_p - 1/R_b)``, where ``kappa_r`` makes the
formula exact for two links with ``L`` memories per end (the pairs waiting at the repeater form a birth-death
chain): 1 for one memory, 0.667 for two, 0.451 for four at equal rates, less when the rates differ (computed for
the path's two slowest links). By Little's law the birth-death chain also gives the storage per delivered pair
relative to one memory, ``kappa_s`` (for the path's slowest and fastest links): the pooled chain's memory
rates are scaled by ``L kappa_s``.

**Fidelity.** A delivered pair holds one pair of every link and one swap per repeater, so its Fourier components
are the product of the links' (after purification), the swaps' ``1 - swap_depolarising``, the storage decay
factor above and the decay while the records travel. Every storage time is stretched by :data:`STORAGE_MARGIN` so
that the prediction is a floor.

Measured against the event engine (near-term and NV profiles, 1-4 links, cut-offs, 0-2 rounds; the 30 km
workload links with failed swaps over 1-5 links; memories of 5-20 ms): rates within 8 % except two purification
rounds with a cut-off far under the purified pair's production time (25-35 % high over 3-4 links); fidelity
never above the engine's mean, 0.000-0.002 below it with weak memory decay, 0.001-0.03 below with strong decay.

Not offered: plans over three or more links where some link has a single memory lane (after purification) and
another has more. Two pairs of the roomier link swap with different neighbours and cross: the two longer pairs
overlap, cannot be swapped together and hold the single lanes until the cut-off. The chain model has no such
state, and the engine delivers a tenth of its prediction with a 100 ms cut-off (a third with 10 ms).

Not modelled: classical jitter and loss (their means are added to the delays), other circuits sharing the links
(the facts describe an idle network), schemes other than swap-asap and the ``oldest`` cut-off convention.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from qfabric.errors import ParameterError
from qfabric.network.models import NodeModel
from qfabric.states import BellDiagonal, dejmps

__all__ = [
    "DEFAULT_CUTOFFS_S",
    "LinkFacts",
    "Offer",
    "Plan",
    "Prediction",
    "facts_from_network",
    "negotiate",
    "predict",
]

Rates = tuple[float, float, float]
Weights = tuple[float, float, float, float]

DEFAULT_CUTOFFS_S: tuple[float | None, ...] = (None, 0.001, 0.003, 0.01, 0.03, 0.1)
"""Cut-offs :func:`negotiate` tries unless told otherwise (``None``: no cut-off)."""

STORAGE_MARGIN = 1.1
"""Factor on every predicted storage time, so that the fidelity prediction stays a floor: without it the model's
delivered fidelity is within 0.01 of the engine's in every case measured, on either side."""

FIDELITY_RESOLUTION = 1e-3
"""Offers whose fidelities differ by less than this are the same service: a refusal offers the fastest of those
with the best fidelity (the model's fidelity is within about this of the engine's with weak memory decay)."""

MAX_LINKS = 5
"""Longest path the controller predicts: the chain's states grow about threefold per link (103 at 5 links with
failed swaps learned by message, 303 at 6), and so does the time to solve it (1 ms at 5 links, 18 ms at 6)."""


@dataclass(frozen=True)
class LinkFacts:
    """What the controller knows of one link along a path (times in seconds, rates in 1/s).

    ``state``: Bell-diagonal weights ``(Phi+, Psi+, Phi-, Psi-)`` of a heralded pair before storage;
    ``stored_before_herald_s``: how long its memories already held it at the herald; ``capacity``: memory qubits
    at its less-equipped end; ``classical_delay_s``: one-way message delay between its ends (mean, with jitter
    and retransmissions); ``left_decay_rates`` / ``right_decay_rates``: ``Memory.decay_rates`` of the memories at
    its end nearer the path's head / tail.
    """

    success_probability: float
    attempt_period_s: float
    herald_delay_s: float
    state: Weights
    stored_before_herald_s: float = 0.0
    capacity: int = 1
    classical_delay_s: float = 0.0
    left_decay_rates: Rates = (0.0, 0.0, 0.0)
    right_decay_rates: Rates = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        if not 0 < self.success_probability <= 1:
            raise ParameterError("success_probability", self.success_probability, "a probability in (0, 1]")
        if not (self.attempt_period_s > 0 and math.isfinite(self.attempt_period_s)):
            raise ParameterError("attempt_period_s", self.attempt_period_s, "a positive time")
        for name in ("herald_delay_s", "stored_before_herald_s", "classical_delay_s"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ParameterError(name, value, "a non-negative time")
        if not isinstance(self.capacity, int) or self.capacity < 1:
            raise ParameterError("capacity", self.capacity, "a whole number of qubits >= 1")
        if len(self.state) != 4 or abs(sum(self.state) - 1) > 1e-6 or min(self.state) < -1e-9:
            raise ParameterError("state", self.state, "four Bell-diagonal weights summing to 1")
        for name in ("left_decay_rates", "right_decay_rates"):
            rates = getattr(self, name)
            if len(rates) != 3 or any(not (r >= 0 and math.isfinite(r)) for r in rates):
                raise ParameterError(name, rates, "three non-negative decay rates (1/s)")
        for name in ("state", "left_decay_rates", "right_decay_rates"):
            object.__setattr__(self, name, tuple(float(x) for x in getattr(self, name)))
        key = (self.success_probability, self.attempt_period_s, self.herald_delay_s, self.state,
               self.stored_before_herald_s, self.capacity, self.classical_delay_s, self.left_decay_rates,
               self.right_decay_rates)
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "_hash", hash(key))

    # facts are the prediction caches' keys: hash once, compare as one tuple
    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other or (isinstance(other, LinkFacts) and self._key == other._key)

    @property
    def mean_time_s(self) -> float:
        """Mean time from the first attempt to a heralded pair on one memory pair."""
        return (1.0 / self.success_probability - 1.0) * self.attempt_period_s + self.herald_delay_s


@dataclass(frozen=True)
class Plan:
    """A way to serve a request: its path, DEJMPS rounds on elementary pairs (span 1) and cut-off (s)."""

    path: tuple[str, ...]
    purification_rounds: int = 0
    cutoff_s: float | None = None
    scheme: str = "swap-asap"

    def __post_init__(self) -> None:
        if len(self.path) < 2:
            raise ParameterError("path", self.path, "at least two nodes")
        if self.purification_rounds not in (0, 1, 2):
            raise ParameterError("purification_rounds", self.purification_rounds, "0, 1 or 2")
        if self.cutoff_s is not None and not (self.cutoff_s > 0 and math.isfinite(self.cutoff_s)):
            raise ParameterError("cutoff_s", self.cutoff_s, "a positive time in seconds, or None")
        if self.scheme != "swap-asap":
            raise ParameterError("scheme", self.scheme, "swap-asap (the only scheme the controller predicts)")

    def describe(self) -> str:
        cut = "no cut-off" if self.cutoff_s is None else f"cut-off {self.cutoff_s * 1e3:g} ms"
        return f"{' > '.join(self.path)}, {self.purification_rounds} purification round(s), {cut}"


@dataclass(frozen=True)
class Prediction:
    """Predicted delivery rate (pairs/s) and mean fidelity at delivery of a plan; ``method`` says how."""

    plan: Plan
    rate_hz: float
    fidelity: float
    method: str


@dataclass(frozen=True)
class Offer:
    """The controller's answer: admit ``plan`` (``admit``), or refuse and offer it as the best it can do."""

    admit: bool
    plan: Plan | None
    prediction: Prediction | None
    reason: str


# ---- Bell-diagonal states as Fourier components ---------------------------------------------------------------


def _fourier(w: Sequence[float]) -> tuple[float, float, float]:
    """The components that memory noise and swapping multiply: over X, Z and Y (``Pair.decay_to``'s order)."""
    w0, w1, w2, w3 = w
    return (w0 - w1 + w2 - w3, w0 + w1 - w2 - w3, w0 - w1 - w2 + w3)


def _weights(f: Sequence[float]) -> Weights:
    f1, f2, f3 = f
    return ((1 + f1 + f2 + f3) / 4, (1 - f1 + f2 - f3) / 4, (1 + f1 - f2 - f3) / 4, (1 - f1 - f2 + f3) / 4)


def _decayed(f: Sequence[float], rates: Sequence[float], t: float) -> tuple[float, float, float]:
    return (f[0] * math.exp(-rates[0] * t), f[1] * math.exp(-rates[1] * t), f[2] * math.exp(-rates[2] * t))


def _valid(w: Weights) -> BellDiagonal:
    clipped = [max(0.0, x) for x in w]
    s = sum(clipped)
    return BellDiagonal(tuple(x / s for x in clipped))


# ---- one link, with purification -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Effective:
    """A link as the chain model sees it: ``lanes`` memory pairs, each making a pair after a dead time ``shift``
    plus an exponential time of rate ``rate``; its pairs' Fourier components when made (after purification); the
    decay rates of its memories at either end; the one-way classical delay between its ends."""

    rate: float
    shift: float
    lanes: int
    fourier: tuple[float, float, float]
    left_rates: Rates
    right_rates: Rates
    delay: float


def _exp_wait(mean: float, cutoff: float | None) -> tuple[float, float]:
    """An exponential wait of ``mean`` cut off at ``cutoff``: ``P(W < c)`` and ``E[min(W, c)]`` (the memory time it
    holds, and what the prediction lets the waiting pair decay for: at least its mean wait if it is used)."""
    if cutoff is None or cutoff > 50 * mean:
        return 1.0, mean
    ok = -math.expm1(-cutoff / mean)
    return ok, mean * ok


@lru_cache(maxsize=4096)
def _effective(link: LinkFacts, rounds: int, cutoff: float | None) -> _Effective:
    pair_rates = tuple(a + b for a, b in zip(link.left_decay_rates, link.right_decay_rates, strict=True))
    mean = link.mean_time_s
    fourier = _decayed(_fourier(link.state), pair_rates, link.stored_before_herald_s)
    if rounds == 0:
        shift = min(link.herald_delay_s, 0.999 * mean)
        return _Effective(1.0 / (mean - shift), shift, link.capacity, fourier, link.left_decay_rates,
                          link.right_decay_rates, link.classical_delay_s)
    lanes = link.capacity
    cost = mean  # memory-pair time per pair of the current round
    d = link.classical_delay_s
    m, v = 1.0, 1.0  # mean and variance of the time between pairs of the current round, in raw heralds
    for k in range(rounds):
        # the waiter's partner is made on the memories left free (higher rounds' waiters hold some of them)
        free = max(1.0, lanes - 1 - 0.5 * (rounds - 1 - k))
        ok, held = _exp_wait(cost / free, cutoff)
        state = _valid(_weights(fourier))
        waited = _valid(_weights(_decayed(fourier, pair_rates, STORAGE_MARGIN * held)))
        p_ok, out = dejmps(waited, state)
        attempt = (cost + held) / ok + cost + d  # waiter (lost ones too), partner, the outcome's message
        cost = attempt / p_ok
        fourier = _decayed(_fourier(out.weights), pair_rates, STORAGE_MARGIN * d)
        # a geometric number of attempts, each two pairs of the round below
        success = p_ok * ok
        m, v = 2 * m / success, 2 * v / success + (2 * m) ** 2 * (1 - success) / success**2
    # while purified pairs wait for a swap, the other memories carry on with lower rounds: the work in progress
    # buffers the output as well as the memories would. A purified pair takes several heralds, so its time is
    # more regular than an exponential: a dead time plus an exponential with the same mean and variance
    shift = cost * max(0.0, 1.0 - math.sqrt(v) / m)
    return _Effective(1.0 / (cost - shift), shift, lanes, fourier, link.left_decay_rates, link.right_decay_rates, d)


# ---- the single-memory swap-asap chain --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Structure:
    """The single-memory swap-asap chain over ``n`` links: its states (sets of pairs ``(a, b, doomed)`` covering
    links ``a..b``) and its transitions as arrays, kinds 0 (a herald), 1 (a cut-off), 2 (a delivery) and 3 (the
    ends of a doomed pair learn of the failed swap and free their memories)."""

    n: int
    states: tuple
    src: np.ndarray  # every transition's ends and kind
    tgt: np.ndarray
    kind: np.ndarray
    delivers: np.ndarray  # bool: the transition delivers an end-to-end pair
    never_fails: np.ndarray  # bool: no failed swap in it
    gen: np.ndarray  # the transitions of each kind
    exp: np.ndarray
    dlv: np.ndarray
    doom: np.ndarray
    gen_link: np.ndarray  # heralds: the link
    gen_succ: np.ndarray  # heralds: (T, n + 1), the swaps that must succeed for this outcome
    gen_fail: np.ndarray  # heralds: (T, n + 1), the swaps of which one (or, with delays, some) fails
    gen_fails: np.ndarray  # heralds: bool, the outcome has a failed swap
    exp_neigh: np.ndarray  # cut-offs: (T, n), the links whose herald would extend the expiring pair
    doom_lo: np.ndarray  # dooms: the doomed pair's first and last links
    doom_hi: np.ndarray
    # (state, good pair) couples: the pair's links, its neighbours, whether it is still waiting (not end-to-end)
    unknown_a: np.ndarray
    unknown_b: np.ndarray
    unknown_neigh: np.ndarray  # (U, n)
    unknown_waits: np.ndarray
    # (state, set of its good pairs) unknowns
    set_state: np.ndarray
    inc_set: np.ndarray  # incidence of sets and (state, pair) couples
    inc_pair: np.ndarray
    flow_trans: np.ndarray  # set unknowns fed by transitions from a set unknown
    flow_row: np.ndarray
    flow_col: np.ndarray
    seed_trans: np.ndarray  # set unknowns fed by transitions from the state alone (new pairs only)
    seed_row: np.ndarray
    out_trans: np.ndarray  # deliveries: transition, the set unknown that becomes the delivered pair
    out_col: np.ndarray
    out_seed: np.ndarray  # deliveries of a pair made entirely of new link pairs


@lru_cache(maxsize=64)
def _structure(n: int, instant: bool, pipelining: bool = True) -> _Structure:
    """Enumerate the chain from the empty path. ``instant``: no classical delays (a failed swap frees its far ends
    at once, an end-to-end pair is delivered at once); otherwise a failed swap leaves a doomed pair that still
    swaps on (the far ends do not know yet) until its ends learn of it, as in the engine. ``pipelining``: links
    under a longer pair regenerate once their nodes have swapped (off only to compare with the textbook model)."""
    good_full = (0, n - 1, False)
    states: list[tuple] = [()]
    index = {(): 0}
    rows: list[tuple] = []  # (src, tgt, kind, link, succ, fail, neigh, span, pmap, delivered)

    def add(pieces: list) -> int:
        key = tuple(sorted(pieces))
        if key not in index:
            index[key] = len(states)
            states.append(key)
        return index[key]

    k = 0
    while k < len(states):
        S = states[k]
        used = {(a, 0) for a, _, _ in S} | {(b + 1, 1) for _, b, _ in S}
        covered = {i for a, b, _ in S for i in range(a, b + 1)} if not pipelining else set()

        def free(j: int, used=used, covered=covered) -> bool:
            return 0 <= j < n and (j, 0) not in used and (j + 1, 1) not in used and j not in covered

        for j in range(n):
            if not free(j):
                continue
            left = next((i for i, p in enumerate(S) if p[1] == j - 1), None)
            right = next((i for i, p in enumerate(S) if p[0] == j + 1), None)
            carried = [(S[i], (i,), False) for i in range(len(S)) if i not in (left, right)]
            parts = [i for i in (left, right) if i is not None]
            nodes = tuple(x for x, i in ((j, left), (j + 1, right)) if i is not None)
            a = S[left][0] if left is not None else j
            b = S[right][1] if right is not None else j
            doomed = any(S[i][2] for i in parts)
            outcomes: list[tuple] = [(nodes, (), [*carried, ((a, b, doomed), tuple(parts), True)])]
            if nodes and instant:  # the engine swaps at the left node first; a failure loses both inputs
                if left is not None:
                    rest = carried if right is None else [*carried, (S[right], (right,), False)]
                    outcomes.append(((), (j,), rest))
                if left is not None and right is not None:
                    outcomes.append(((j,), (j + 1,), carried))
                elif right is not None:
                    outcomes.append(((), (j + 1,), carried))
            elif nodes:  # some swap fails: the far ends learn it only by message; meanwhile the pair swaps on
                outcomes.append(((), nodes, [*carried, ((a, b, True), tuple(parts), True)]))
            for succ, fail, pieces in outcomes:
                delivered = None
                if instant:
                    delivered = next(((cons, new) for p, cons, new in pieces if p == good_full), None)
                    pieces = [x for x in pieces if x[0] != good_full]
                target = add([p for p, _, _ in pieces])
                order = states[target]
                pmap = [((), False)] * len(order)
                for p, cons, new in pieces:
                    pmap[order.index(p)] = (cons, new)
                rows.append((k, target, 0, j, succ, fail, (), (0, 0), tuple(pmap), delivered))
        for i, piece in enumerate(S):
            target = add([p for p in S if p != piece])
            pmap = tuple(((S.index(p),), False) for p in states[target])
            if piece == good_full:
                rows.append((k, target, 2, -1, (), (), (), (0, 0), pmap, ((i,), False)))
                continue
            if piece[2]:
                rows.append((k, target, 3, -1, (), (), (), piece[:2], pmap, None))
            if piece[:2] != (0, n - 1):
                neigh = tuple(x for x in (piece[0] - 1, piece[1] + 1) if free(x))
                rows.append((k, target, 1, -1, (), (), neigh, (0, 0), pmap, None))
        k += 1

    unknown: dict[tuple[int, int], int] = {}
    u_a, u_b, u_full, u_neigh = [], [], [], []
    for s, S in enumerate(states):
        used = {(a, 0) for a, _, _ in S} | {(b + 1, 1) for _, b, _ in S}
        for i, (a, b, doomed) in enumerate(S):
            if doomed:
                continue  # never delivered: its storage does not matter
            unknown[(s, i)] = len(unknown)
            u_a.append(a)
            u_b.append(b)
            u_full.append((a, b) == (0, n - 1))
            mask = [0.0] * n
            for x in (a - 1, b + 1):
                if 0 <= x < n and (x, 0) not in used and (x + 1, 1) not in used:
                    mask[x] = 1.0
            u_neigh.append(mask)
    # E[product of the decay factors of a set of good pairs], jointly with the state: one unknown per state and
    # non-empty set of its good pairs (a set's factor is multilinear in its pairs' factors, which swaps multiply)
    sets: dict[tuple[int, int], int] = {}
    set_state, inc_set, inc_pair = [], [], []
    for s, S in enumerate(states):
        good = [i for i, p in enumerate(S) if not p[2]]
        for r in range(1, 1 << len(good)):
            members = [good[b] for b in range(len(good)) if r >> b & 1]
            u = sets[(s, sum(1 << i for i in members))] = len(sets)
            set_state.append(s)
            for i in members:
                inc_set.append(u)
                inc_pair.append(unknown[(s, i)])
    by_state: dict[int, list[tuple[int, int]]] = {}
    for (state, mask), u in sets.items():
        by_state.setdefault(state, []).append((mask, u))
    flow_t, flow_r, flow_c, seed_t, seed_r, out_t, out_c, out_seed = [], [], [], [], [], [], [], []
    for t, row in enumerate(rows):
        src, tgt, pmap, delivered = row[0], row[1], row[8], row[9]
        for mask, u in by_state.get(tgt, ()):
            before = 0
            for i in range(len(pmap)):
                if mask >> i & 1:
                    for c in pmap[i][0]:
                        before |= 1 << c
            if before:
                flow_t.append(t)
                flow_r.append(u)
                flow_c.append(sets[(src, before)])
            else:  # only new link pairs: their factor is 1
                seed_t.append(t)
                seed_r.append(u)
        if delivered is not None:
            before = sum(1 << c for c in delivered[0])
            if before:
                out_t.append(t)
                out_c.append(sets[(src, before)])
            else:
                out_seed.append(t)
    T = len(rows)
    succ = np.zeros((T, n + 1))
    fail = np.zeros((T, n + 1))
    neigh = np.zeros((T, n))
    for t, row in enumerate(rows):
        succ[t, list(row[4])] = 1.0
        fail[t, list(row[5])] = 1.0
        neigh[t, list(row[6])] = 1.0
    ints = np.int64
    kind = np.array([r[2] for r in rows], ints)
    gen, exp, dlv, doom = (np.flatnonzero(kind == k) for k in range(4))
    span = np.array([r[7] for r in rows], ints).reshape(T, 2)
    fails = fail.sum(axis=1) > 0
    return _Structure(
        n=n, states=tuple(states), src=np.array([r[0] for r in rows], ints),
        tgt=np.array([r[1] for r in rows], ints), kind=kind,
        delivers=np.array([r[9] is not None for r in rows], bool), never_fails=~fails,
        gen=gen, exp=exp, dlv=dlv, doom=doom, gen_link=np.array([rows[t][3] for t in gen], ints),
        gen_succ=succ[gen], gen_fail=fail[gen], gen_fails=fails[gen], exp_neigh=neigh[exp],
        doom_lo=span[doom, 0], doom_hi=span[doom, 1],
        unknown_a=np.array(u_a, ints), unknown_b=np.array(u_b, ints),
        unknown_neigh=np.array(u_neigh).reshape(len(u_a), n), unknown_waits=~np.array(u_full, bool),
        set_state=np.array(set_state, ints), inc_set=np.array(inc_set, ints), inc_pair=np.array(inc_pair, ints),
        flow_trans=np.array(flow_t, ints), flow_row=np.array(flow_r, ints), flow_col=np.array(flow_c, ints),
        seed_trans=np.array(seed_t, ints), seed_row=np.array(seed_r, ints),
        out_trans=np.array(out_t, ints), out_col=np.array(out_c, ints), out_seed=np.array(out_seed, ints),
    )


def _expiry(nu: np.ndarray, cutoff: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Exponential stand-in for a deterministic cut-off ``c`` against merges at rate ``nu``: its rate, and the factor
    on the decay rate that gives used pairs their exact mean storage ``E[T | T < c]`` (``nu = 0``: rate ``1/c``)."""
    if cutoff is None:
        return np.zeros_like(nu), np.ones_like(nu)
    x = np.clip(nu * cutoff, 1e-6, 700.0)
    ok = -np.expm1(-x)
    tail = x * np.exp(-x) / ok  # c * nu * P(T > c) / P(T < c)
    rate = tail / cutoff  # nu e^-x / (1 - e^-x); 1/c as nu -> 0
    scale = (1.0 - tail) / ok  # E[T | T < c] / E[min(T, c)]; 1/2 as nu -> 0
    return rate, scale


@dataclass(frozen=True)
class _Live:
    """The part of a chain's structure that can happen when failed swaps and cut-offs can or cannot: the states
    reachable from the empty chain, in local numbering, and the transitions and unknowns among them."""

    states: np.ndarray  # reachable states (global numbers)
    trans: np.ndarray  # transitions out of them
    src: np.ndarray  # their ends, local numbers
    tgt: np.ndarray
    sets: np.ndarray  # (state, set of good pairs) unknowns of reachable states (global numbers)
    set_state: np.ndarray  # their states, local numbers
    flow_row: np.ndarray  # set flows among them, local numbers, and the transition carrying each
    flow_col: np.ndarray
    flow_trans: np.ndarray
    seed_row: np.ndarray
    seed_trans: np.ndarray
    inc_set: np.ndarray  # incidence of local sets and (state, pair) couples
    inc_pair: np.ndarray


@lru_cache(maxsize=256)
def _live(n: int, instant: bool, pipelining: bool, failures: bool, expiries: bool) -> _Live:
    st = _structure(n, instant, pipelining)
    possible = np.ones(len(st.kind), bool)
    if not failures:
        possible &= st.never_fails
    if not expiries:
        possible &= st.kind != 1
    reach = np.zeros(len(st.states), bool)
    reach[0] = True
    while True:
        grown = reach.copy()
        grown[st.tgt[possible & reach[st.src]]] = True
        if grown.sum() == reach.sum():
            break
        reach = grown
    local = np.cumsum(reach) - 1
    trans = np.flatnonzero(reach[st.src])
    kept = reach[st.set_state]
    set_local = np.cumsum(kept) - 1
    flows = kept[st.flow_row] & kept[st.flow_col]
    seeds = kept[st.seed_row]
    inc = kept[st.inc_set]
    return _Live(
        states=np.flatnonzero(reach), trans=trans, src=local[st.src[trans]], tgt=local[st.tgt[trans]],
        sets=np.flatnonzero(kept), set_state=local[st.set_state[kept]],
        flow_row=set_local[st.flow_row[flows]], flow_col=set_local[st.flow_col[flows]],
        flow_trans=st.flow_trans[flows], seed_row=set_local[st.seed_row[seeds]], seed_trans=st.seed_trans[seeds],
        inc_set=set_local[st.inc_set[inc]], inc_pair=st.inc_pair[inc],
    )


_THREADS = None


def _one_blas_thread():
    """A context in which BLAS runs on one thread: the chain's small dense solves are 10-100 times slower when
    OpenBLAS spreads them over busy cores."""
    global _THREADS
    if _THREADS is None:
        try:
            from threadpoolctl import ThreadpoolController

            _THREADS = ThreadpoolController()
        except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
            _THREADS = False
    return _THREADS.limit(limits=1, user_api="blas") if _THREADS else contextlib.nullcontext()


def _solve_chain(rates: np.ndarray, q: np.ndarray, cutoff: float | None, positions: np.ndarray, delivery_s: float,
                 left_rates: np.ndarray, right_rates: np.ndarray, partner_rates: np.ndarray | None = None,
                 decay_scale: float = 1.0, pipelining: bool = True):
    """Throughput, mean decay factor of a delivered pair's three Fourier components from storage before the last
    swap (memory rates scaled by ``decay_scale``) and pairs made per link per delivered pair.

    ``rates``: each link's herald rate; ``partner_rates``: the rates a waiting pair's cut-off competes with (default
    ``rates``; one over the mean time when a link's time has a dead part); ``positions``: cumulative classical delay
    along the path (s); ``delivery_s``: wait from the last swap to delivery (0: no classical delays)."""
    partner_rates = rates if partner_rates is None else partner_rates
    n = len(rates)
    instant = delivery_s <= 0
    st = _structure(n, instant, pipelining)
    failures = bool((q < 1).any())
    lv = _live(n, instant, pipelining, failures, cutoff is not None)
    rate = np.zeros(len(st.kind))
    log_q = np.log(q)
    prob = np.exp(st.gen_succ @ log_q)
    if failures:
        # instant: the named swap fails (the others of the outcome succeed); else some swap of the outcome fails
        fail = np.exp(st.gen_fail @ np.log(np.maximum(1.0 - q, 1e-300))) if instant \
            else -np.expm1(st.gen_fail @ log_q)
        prob = prob * np.where(st.gen_fails, fail, 1.0)
    else:
        prob = prob * ~st.gen_fails
    rate[st.gen] = rates[st.gen_link] * prob
    if cutoff is not None:
        rate[st.exp] = _expiry(st.exp_neigh @ partner_rates, cutoff)[0]
    if not instant:
        rate[st.dlv] = 1.0 / delivery_s
        news = (positions[st.doom_hi + 1] - positions[st.doom_lo]) / 2
        rate[st.doom] = 1.0 / np.maximum(news, 1e-3 / rates.max())
    live_rate = rate[lv.trans]
    N = len(lv.states)
    Q = np.bincount(lv.src * N + lv.tgt, weights=live_rate, minlength=N * N).reshape(N, N)
    out = Q.sum(axis=1)
    A = Q.T - np.diag(out)
    A[-1, :] = 1.0
    b = np.zeros(N)
    b[-1] = 1.0
    # decay: z[u] = pi(s) E[product of the decay factors of the set u of good pairs | s]. Each waiting pair's factor
    # falls at its two memories' rate (scaled for the cut-off stand-in); swaps multiply factors, so a set's
    # product flows into the set of its parts; new link pairs bring a factor 1 (their state is counted apart)
    scale = _expiry(st.unknown_neigh @ partner_rates, cutoff)[1] * st.unknown_waits * decay_scale
    g = (left_rates[st.unknown_a] + right_rates[st.unknown_b]) * scale[:, None]
    S = len(lv.sets)
    flows = np.bincount(lv.flow_row * S + lv.flow_col, weights=rate[lv.flow_trans], minlength=S * S).reshape(S, S)
    base = out[lv.set_state]
    pi = np.zeros(len(st.states))
    factor = np.ones(3)
    with _one_blas_thread():
        pi[lv.states] = np.linalg.solve(A, b)
        flux = pi[st.src] * rate
        throughput = float(flux[st.delivers].sum())
        made = np.bincount(st.gen_link, weights=flux[st.gen], minlength=n) / throughput
        seed = np.bincount(lv.seed_row, weights=rate[lv.seed_trans] * pi[st.src[lv.seed_trans]], minlength=S)
        delivered_seed = (rate[st.out_seed] * pi[st.src[st.out_seed]]).sum()
        solved: dict[bytes, float] = {}
        for k in range(3):
            g_set = np.bincount(lv.inc_set, weights=g[lv.inc_pair, k], minlength=S)
            key = g_set.tobytes()
            if key not in solved:
                if not g_set.any():
                    solved[key] = 1.0  # no decay on this component
                else:
                    z = np.zeros(len(st.set_state))
                    z[lv.sets] = np.linalg.solve(np.diag(base + g_set) - flows, seed)
                    solved[key] = float((rate[st.out_trans] * z[st.out_col]).sum() + delivered_seed) / throughput
            factor[k] = solved[key]
    return throughput, factor, made


def _two_links(a: float, b: float, lanes: int) -> tuple[float, float]:
    """Two links heralding at ``a`` and ``b`` per memory pair, ``lanes`` memories per end, swaps at once: the pairs
    waiting at the repeater (``k > 0``: the first link's) form a birth-death chain over ``-lanes .. lanes``.
    Returns its throughput and, by Little's law, the storage time per delivered pair."""
    weights = {0: 1.0}
    for k in range(lanes):
        weights[k + 1] = weights[k] * a * (lanes - k) / (b * lanes)
        weights[-k - 1] = weights[-k] * b * (lanes - k) / (a * lanes)
    total = sum(weights.values())
    rate = sum(w * (b * lanes if k > 0 else a * lanes if k < 0 else 0.0) for k, w in weights.items()) / total
    waiting = sum(w * abs(k) for k, w in weights.items()) / total
    return rate, waiting / rate


def _kappas(a: float, b: float, lanes: int) -> tuple[float, float]:
    """How far ``lanes`` memories per end move two links from one memory per end toward their bottleneck:
    ``kappa_r`` in ``1/R = 1/R_inf + kappa_r (1/(lanes R_1) - 1/R_inf)`` and ``kappa_s``, the ratio of storage
    times per delivered pair. Both are 1 for one memory; for equal rates both are ``0.667`` for two memories and
    ``0.451`` for four; with unequal rates ``kappa_r`` falls (the slow link sets the pace) and ``kappa_s`` rises
    (the fast link's pairs wait for the slow one's whatever the memories)."""
    if lanes == 1:
        return 1.0, 1.0
    one, store_one = _two_links(a, b, 1)
    many, store_many = _two_links(a, b, lanes)
    bound = lanes * min(a, b)
    span = 1.0 / (lanes * one) - 1.0 / bound
    kappa_r = (1.0 / many - 1.0 / bound) / span if span > 1e-12 / bound else 0.0
    return min(1.0, max(0.0, kappa_r)), min(1.0, store_many / store_one)


def _delivery_delay(delays: Sequence[float]) -> float:
    """Mean wait from the last swap until both ends hold every swap record: the last link to herald is about
    equally likely to be any; its nodes swap last and their records travel to the farther end."""
    n = len(delays)
    if n == 1:
        return 0.0
    pos = [0.0]
    for d in delays:
        pos.append(pos[-1] + d)
    total = 0.0
    for j in range(n):
        total += max(max(pos[k], pos[n] - pos[k]) for k in (j, j + 1) if 0 < k < n)
    return total / n


# ---- prediction ------------------------------------------------------------------------------------------------

_CACHE: dict[tuple, tuple[float, float, str]] = {}
_CACHE_SIZE = 100_000


def predict(links: list[LinkFacts], nodes: list[NodeModel], plan: Plan) -> Prediction:
    """Rate (pairs/s) and mean fidelity at delivery of swap-asap along ``plan.path`` with its cut-off and
    purification (see the module's docstring for the model). ``nodes`` has one entry per path node (the end nodes'
    are not used). Results are cached by the path's facts and the plan's numbers."""
    n = len(links)
    if n != len(plan.path) - 1:
        raise ParameterError("links", n, f"one LinkFacts per hop of the path ({len(plan.path) - 1})")
    if len(nodes) != n + 1:
        raise ParameterError("nodes", len(nodes), f"one NodeModel per path node ({n + 1})")
    if n > MAX_LINKS:
        raise ParameterError("path", plan.path, f"at most {MAX_LINKS} links for the controller's model")
    key = (tuple(links), tuple(nodes), plan.purification_rounds, plan.cutoff_s)
    hit = _CACHE.get(key)
    if hit is None:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.clear()
        hit = _CACHE[key] = _predict(links, nodes, plan.purification_rounds, plan.cutoff_s)
    return Prediction(plan, hit[0], hit[1], hit[2])


def _predict(links: Sequence[LinkFacts], nodes: Sequence[NodeModel], rounds: int,
             cutoff: float | None) -> tuple[float, float, str]:
    short = [i for i, link in enumerate(links) if link.capacity < rounds + 1]
    if short:
        raise ParameterError("purification_rounds", rounds, f"at most capacity - 1 on every link (link {short[0]} "
                             f"has {links[short[0]].capacity} qubits per end)")
    eff = [_effective(link, rounds, cutoff) for link in links]
    n = len(eff)
    inner = nodes[1:-1]
    static = [1.0, 1.0, 1.0]
    for e in eff:
        static = [s * f for s, f in zip(static, e.fourier, strict=True)]
    for node in inner:
        static = [s * (1.0 - node.swap_depolarising) for s in static]
    delivery = _delivery_delay([e.delay for e in eff])
    end_rates = np.asarray(eff[0].left_rates) + np.asarray(eff[-1].right_rates)
    lanes = min(e.lanes for e in eff)
    if n == 1:
        e = eff[0]
        rate = e.lanes / (1.0 / e.rate + e.shift)
        factor = np.ones(3)
        method = "one link: its memories in parallel"
    else:
        rates = np.array([e.rate for e in eff])
        q = np.array([1.0] + [node.swap_success_probability for node in inner] + [1.0])
        left = np.array([e.left_rates for e in eff])
        right = np.array([e.right_rates for e in eff])
        per_lane = sorted(1.0 / (1.0 / e.rate + e.shift) for e in eff)
        kappa_r, _ = _kappas(per_lane[0], per_lane[1], lanes)  # the two slowest links set the pace
        _, kappa_s = _kappas(per_lane[0], per_lane[-1], lanes)  # the fastest link's pairs wait the longest
        # the lanes pooled: each link heralds on all of them, so a waiting pair's partner comes L times sooner; the
        # pooled chain's storage times are 1/L of one lane's, the lanes' kappa_s of it
        positions = np.concatenate([[0.0], np.cumsum([e.delay for e in eff])])
        partners = np.array([1.0 / (1.0 / e.rate + e.shift) for e in eff])
        pooled, factor, made = _solve_chain(lanes * rates, q, cutoff, positions, delivery, left, right,
                                            lanes * partners, STORAGE_MARGIN * kappa_s * lanes)
        pooled = 1.0 / (1.0 / pooled + max(e.shift for e in eff) / lanes)
        # the bottleneck: the slowest link on all its memories, for the pairs it makes per delivered pair; the end
        # links hold their memories until delivery
        bound = min(e.lanes / ((1.0 / e.rate + e.shift) * m + (delivery if j in (0, n - 1) else 0.0))
                    for j, (e, m) in enumerate(zip(eff, made, strict=True)))
        rate = min(bound, 1.0 / (1.0 / bound + kappa_r * (1.0 / pooled - 1.0 / bound)))
        method = f"swap-asap Markov chain over {n} links ({lanes} lane(s))"
    # after the last swap the pair waits for the records to reach its ends
    fourier = [s * f * math.exp(-STORAGE_MARGIN * delivery * r)
               for s, f, r in zip(static, factor, end_rates, strict=True)]
    fidelity = min((1.0 + sum(fourier)) / 4.0, (1.0 + sum(static)) / 4.0)
    ceiling = min(e.lanes / (1.0 / e.rate + e.shift) for e in eff)
    if not (math.isfinite(rate) and rate > 1e-9 * ceiling and math.isfinite(fidelity)):
        return 0.0, 0.0, method + ": delivers next to nothing (cut-off far below the links' times)"
    if rounds:
        method += f", {rounds} DEJMPS round(s) per link"
    return float(rate), float(fidelity), method


# ---- negotiation -----------------------------------------------------------------------------------------------


_BOUNDS: dict[tuple, tuple[float, float]] = {}


def _bounds(links: Sequence[LinkFacts], nodes: Sequence[NodeModel], plan: Plan) -> tuple[float, float]:
    """Upper bounds on a plan's rate (its slowest link on all its memories) and fidelity (no storage after the
    link pairs are made), cheap enough to order and prune the plans before predicting any."""
    rounds, cutoff = plan.purification_rounds, plan.cutoff_s
    key = (tuple(links), tuple(nodes), rounds, cutoff)
    hit = _BOUNDS.get(key)
    if hit is None:
        if len(_BOUNDS) >= _CACHE_SIZE:
            _BOUNDS.clear()
        hit = _BOUNDS[key] = _compute_bounds(links, nodes, rounds, cutoff)
    return hit


def _compute_bounds(links: Sequence[LinkFacts], nodes: Sequence[NodeModel], rounds: int,
                    cutoff: float | None) -> tuple[float, float]:
    static = [1.0, 1.0, 1.0]
    rate = math.inf
    for link in links:
        e = _effective(link, rounds, cutoff)
        static = [s * x for s, x in zip(static, e.fourier, strict=True)]
        rate = min(rate, e.lanes / (1.0 / e.rate + e.shift))
    for node in nodes[1:-1]:
        static = [s * (1.0 - node.swap_depolarising) for s in static]
    return rate, (1.0 + sum(static)) / 4.0


def _groups(candidates, cutoffs_s, rounds):
    """The plans to consider, grouped by path and purification rounds; each group's cut-offs run from the loosest
    (``None``) to the tightest. Yields ``(rate bound, fidelity bound, links, nodes, plans)``."""
    order = sorted(cutoffs_s, key=lambda c: -math.inf if c is None else -c)
    for links, nodes, path in candidates:
        path = tuple(path)
        n = len(links)
        if n > MAX_LINKS:
            continue
        for r in rounds:
            if any(link.capacity < r + 1 for link in links):
                continue  # purification needs r + 1 qubits per link end
            lanes = [link.capacity - r for link in links]
            if n >= 3 and min(lanes) == 1 and max(lanes) > 1:
                continue  # crossing pairs: two pairs of a link with spare lanes swap with different neighbours and
                # hold the single lanes until the cut-off (the engine: 35/s where this model says 364/s)
            plans = [Plan(path, r, c) for c in order
                     if c is not None or not (r > 0 or (n >= 3 and min(link.capacity for link in links) >= 2))]
            if not plans:  # purification, or swap-asap over 3+ links with 2+ qubits per end, can deadlock
                continue
            bounds = [_bounds(links, nodes, plan) for plan in plans]
            yield max(b[0] for b in bounds), max(b[1] for b in bounds), links, nodes, plans


def _tightest(links, nodes, plans: list[Plan]) -> tuple[int, Prediction] | None:
    """The tightest cut-off of a group that still delivers (a cut-off far under the links' times delivers nothing)."""
    for i in range(len(plans) - 1, -1, -1):
        p = predict(links, nodes, plans[i])
        if p.rate_hz > 0:
            return i, p
    return None


def _loosest(links, nodes, plans: list[Plan], floor: float) -> Prediction | None:
    """The loosest cut-off of a group whose fidelity meets ``floor``, by bisection: tightening the cut-off trades
    rate for fidelity (the model is monotone in it up to rounding)."""
    loose = predict(links, nodes, plans[0])
    if loose.fidelity >= floor and loose.rate_hz > 0:
        return loose
    found = _tightest(links, nodes, plans)
    if found is None or found[1].fidelity < floor:
        return None
    lo, (hi, best) = 0, found  # plans[lo] misses the floor, plans[hi] meets it
    while hi - lo > 1:
        mid = (lo + hi) // 2
        p = predict(links, nodes, plans[mid])
        if p.fidelity >= floor and p.rate_hz > 0:
            hi, best = mid, p
        else:
            lo = mid
    return best


def negotiate(
    candidates: list[tuple[list[LinkFacts], list[NodeModel], tuple[str, ...]]],
    *,
    fidelity_min: float | None,
    rate_hz: float | None = None,
    cutoffs_s: tuple[float | None, ...] = DEFAULT_CUTOFFS_S,
    rounds: tuple[int, ...] = (0, 1, 2),
) -> Offer:
    """Admit the plan with the highest predicted rate whose predicted fidelity meets ``fidelity_min`` (and whose
    rate meets ``rate_hz``), over every candidate path (``(links, nodes, path)``, e.g. the k shortest routes),
    purification round count and cut-off; otherwise refuse, offering the best plan: the fastest that meets the
    fidelity if one does (reason ``"best rate 120/s < 400/s wanted"``), else the one with the highest fidelity,
    then rate (``"best fidelity 0.87 < 0.9 wanted"``; fidelities within :data:`FIDELITY_RESOLUTION` count as
    equal).

    Plans are skipped when they cannot run safely: purification needs ``rounds + 1`` qubits per link end and a
    cut-off; swap-asap without a cut-off over three or more links with two or more qubits per end can deadlock
    (``docs/network.md``); paths longer than :data:`MAX_LINKS` links are not predicted. The search predicts few
    plans: per path and round count, a tighter cut-off gives a lower rate and a higher fidelity, so the fastest
    plan meeting the floor is the loosest cut-off that meets it (bisection) and the best fidelity is the tightest
    cut-off's; groups are visited by decreasing upper bounds on rate (or fidelity) and dropped once their bound
    cannot beat what was found.
    """
    if fidelity_min is not None and not 0 <= fidelity_min <= 1:
        raise ParameterError("fidelity_min", fidelity_min, "a fidelity in [0, 1]")
    if rate_hz is not None and not rate_hz > 0:
        raise ParameterError("rate_hz", rate_hz, "a positive rate")
    floor = fidelity_min if fidelity_min is not None else -1.0
    groups = list(_groups(candidates, cutoffs_s, rounds))
    if not groups:
        return Offer(False, None, None, "no plan can run on the candidate paths (too long, or too little memory)")
    # the fastest plan that meets the floor: groups by decreasing rate bound, until no bound can beat it
    fastest: Prediction | None = None
    for bound, fid_bound, links, nodes, plans in sorted(groups, key=lambda g: (-g[0], -g[1])):
        if fid_bound < floor:
            continue
        if fastest is not None and bound < fastest.rate_hz:
            break
        p = _loosest(links, nodes, plans, floor)
        if p is not None and (fastest is None or (p.rate_hz, p.fidelity) > (fastest.rate_hz, fastest.fidelity)):
            fastest = p
    if fastest is not None:
        if rate_hz is None or fastest.rate_hz >= rate_hz:
            return Offer(True, fastest.plan, fastest, f"admitted: {_numbers(fastest)} ({fastest.plan.describe()})")
        wanted = f" at fidelity >= {fidelity_min:g}" if fidelity_min is not None else ""
        return Offer(False, fastest.plan, fastest, f"best rate {_rate(fastest.rate_hz)} < {_rate(rate_hz)} wanted"
                     f"{wanted} ({fastest.plan.describe()})")
    # nothing meets the floor: the highest fidelity is a group's tightest cut-off; among the groups within
    # FIDELITY_RESOLUTION of it, the fastest plan that stays within it
    tightest: list[tuple[Prediction, tuple]] = []
    top = -math.inf
    for group in sorted(groups, key=lambda g: (-g[1], -g[0])):
        if group[1] < top - FIDELITY_RESOLUTION:
            break
        found = _tightest(group[2], group[3], group[4])
        if found is not None:
            tightest.append((found[1], group))
            top = max(top, found[1].fidelity)
    if not tightest:
        return Offer(False, None, None, "no plan delivers on the candidate paths (the cut-offs are too tight)")
    best: Prediction | None = None
    for p, (_, _, links, nodes, plans) in tightest:
        if p.fidelity >= top - FIDELITY_RESOLUTION:
            q = _loosest(links, nodes, plans, top - FIDELITY_RESOLUTION)
            if q is not None and (best is None or (q.rate_hz, q.fidelity) > (best.rate_hz, best.fidelity)):
                best = q
    assert best is not None
    return Offer(False, best.plan, best, f"best fidelity {best.fidelity:.3g} < {fidelity_min:g} wanted "
                 f"({_numbers(best)}: {best.plan.describe()})")


def _rate(value: float) -> str:
    return f"{value:.3g}/s"


def _numbers(p: Prediction) -> str:
    return f"rate {_rate(p.rate_hz)}, fidelity {p.fidelity:.3g}"


# ---- facts from a network --------------------------------------------------------------------------------------


_FACTS: dict[tuple, LinkFacts] = {}


def facts_from_network(network, path: Sequence[str]) -> tuple[list[LinkFacts], list[NodeModel]]:
    """What :func:`predict` needs, read off a :class:`~qfabric.network.Network` for ``path``: each link's model
    (ticks converted with ``network.seconds_per_tick``; the classical delay with its mean jitter and
    retransmissions), its two memory pools (decay rates, the smaller capacity) and each node's Bell-state
    measurement. Equal facts come back as the same objects, which makes the prediction caches' lookups cheap."""
    spt = network.seconds_per_tick
    if len(_FACTS) >= _CACHE_SIZE:
        _FACTS.clear()
    links: list[LinkFacts] = []
    for a, b in zip(path, path[1:], strict=False):
        link = network.link_between(a, b)
        model = link.model
        near, far = link.pool_at(a), link.pool_at(b)
        delay = model.classical_delay + model.classical_jitter / 2
        if model.classical_loss_probability:
            delay += model.classical_loss_probability / (1 - model.classical_loss_probability) \
                * model.retransmit_timeout
        values = (model.success_probability, model.attempt_period * spt, model.herald_delay * spt,
                  tuple(model.state), model.stored_before_herald * spt, max(1, min(near.capacity, far.capacity)),
                  delay * spt, tuple(near.rates), tuple(far.rates))
        facts = _FACTS.get(values)
        if facts is None:
            facts = _FACTS[values] = LinkFacts(*values)
        links.append(facts)  # type: ignore[arg-type]
    nodes: list[NodeModel] = [network.nodes[x] for x in path]
    return links, nodes
