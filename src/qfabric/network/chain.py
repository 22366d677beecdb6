"""Linear repeater chains on the event kernel: heralded links, swapping, purification, cut-offs, delivery.

Nodes ``0 .. N`` are joined by ``N`` segments; segment ``s`` joins nodes ``s`` and ``s + 1``.
Each segment generates pairs on every free memory pair it has, one event per success (the
number of attempts to the next success is drawn from the geometric distribution). Repeater
nodes then swap:

* ``swap-asap``: a node swaps as soon as it holds a pair on each side (oldest first);
* ``nested``: (``N = 2^n``) node ``i`` swaps only the two pairs of span ``2^k`` that meet there,
  ``k`` the number of trailing zero bits of ``i`` (the doubling scheme of Briegel et al.).

A failed swap loses both inputs. Cut-offs: with ``swap-asap`` a pair not used within the
cut-off of its creation is discarded; with ``nested`` (cut-off per nesting level, as in Brand,
Coopmans, Elkouss, IEEE JSAC 38, 619 (2020)) a pair that waits at its swap node longer than
the cut-off is discarded and, when every link has one memory pair, the partner half is restarted.
A pair waiting for a purification partner is discarded after its span's cut-off as well: without
cut-offs, purification with few memories can deadlock (every memory waiting for a partner).
Optional purification (BBPSSW or DEJMPS, symmetric recurrence) of the pairs of chosen spans
before they are swapped or delivered: span 1 purifies elementary pairs, span ``N`` end-to-end
pairs, span ``2^k`` the nested scheme's level k.

Pairs decohere in their two memories for exactly as long as they are stored. End-to-end pairs
are delivered when the classical messages of every swap that made them have reached both
ends. With ``swap-asap`` a node swaps whatever it holds without waiting to learn who the far ends
are (Pauli frames are tracked); with ``nested`` a node must know that its memory now shares a pair
with the right far node, so a swapped pair is usable only once the swap's messages reach its
ends. With ``swap_handshake`` a node first confirms the swap with both far ends (as reservation-based
control planes do) and holds the four memories for that round trip. Failures and discards are seen
by every node at once (an optimistic simplification).

With ``regenerate_covered`` (the default) a segment keeps generating while a longer pair spans it,
so the next pair is pipelined. ``defer_swaps`` runs the swaps of one tick after all its heralds,
node by node from left to right, which the discrete model needs to be exact.

The same engine runs the discrete chain model (one tick = one attempt) that
:mod:`qfabric.network.analysis` computes exactly; the tests hold the two to each other.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from qfabric.errors import ParameterError
from qfabric.hardware import Memory
from qfabric.sim import Event, Simulator
from qfabric.states import BellDiagonal, bbpssw, compose, dejmps, depolarising_probabilities

PRIORITY_HERALD = 0
PRIORITY_PURIFY = 1
PRIORITY_SWAP = 10  # + node index: swaps at one tick run left to right, after all heralds
PRIORITY_DELIVER = 1_000_000
PRIORITY_CUTOFF = 2_000_000  # after swaps at the same tick: waiting exactly the cut-off is allowed

Weights = tuple[float, float, float, float]


class SwapScheme(StrEnum):
    SWAP_ASAP = "swap-asap"
    NESTED = "nested"


class PurificationProtocol(StrEnum):
    BBPSSW = "bbpssw"
    DEJMPS = "dejmps"


@dataclass(frozen=True)
class SegmentModel:
    """What the chain needs to know of one elementary link (all times in kernel ticks).

    ``herald_delay`` is the time from the successful attempt's start to the herald reaching
    both nodes; ``stored_before_herald`` is how long the memories already held the pair then.
    """

    success_probability: float
    attempt_period: int
    herald_delay: int
    state: Weights
    capacity: int = 1
    stored_before_herald: int = 0
    classical_delay: int = 0  # one-way message delay between the segment's two nodes

    def __post_init__(self) -> None:
        if not 0 < self.success_probability <= 1:
            raise ParameterError("success_probability", self.success_probability, "a probability in (0, 1]")
        if self.attempt_period < 1 or self.herald_delay < 0 or self.stored_before_herald < 0:
            raise ParameterError("attempt_period", self.attempt_period, "a positive number of ticks")
        if self.capacity < 1:
            raise ParameterError("capacity", self.capacity, "at least one memory per side")


@dataclass(frozen=True)
class NodeModel:
    """A repeater node: its memories facing left and right, and its Bell-state measurement."""

    memory_left: Memory = field(default_factory=Memory)
    memory_right: Memory = field(default_factory=Memory)
    swap_success_probability: float = 1.0
    swap_depolarising: float = 0.0


@dataclass(eq=False)  # identity: two pairs heralded at one tick are still two pairs
class Pair:
    """An entangled pair between nodes ``left < right``; ``weights`` hold at tick ``t_state``."""

    left: int
    right: int
    weights: Weights
    t_state: int
    ready: int  # tick at which both ends know the Pauli frame
    rounds: int = 0
    timer: Event | None = None
    alive: bool = True

    @property
    def span(self) -> int:
        return self.right - self.left


@dataclass
class SegmentStats:
    attempts: int = 0
    successes: int = 0
    purifications: int = 0
    purifications_failed: int = 0


@dataclass
class ChainStats:
    """Plain counters and records of a run (``observe`` reads them)."""

    segments: list[SegmentStats]
    swaps: int = 0
    swaps_failed: int = 0
    purifications: int = 0
    purifications_failed: int = 0
    cutoff_discards: int = 0
    delivery_ticks: list[int] = field(default_factory=list)
    delivered_weights: list[Weights] = field(default_factory=list)
    waiting_ticks: list[int] = field(default_factory=list)


@dataclass(eq=False)  # identity: two pairs heralded at one tick are still two pairs
class _Process:
    """A memory pair of one segment trying to generate (one pending herald event)."""

    segment: int
    started: int
    attempts: int
    event: Event | None = None


def required_capacity(purification_rounds: int, purified_spans: int) -> int:
    """Memories per side that recurrence purification needs to never deadlock.

    At an end node, each purified span can hold one waiting pair per round done plus the one being
    made: ``rounds * spans + 1``.

    >>> required_capacity(1, 1), required_capacity(2, 1), required_capacity(1, 2)
    (2, 3, 3)
    """
    return purification_rounds * purified_spans + 1 if purification_rounds else 1


class RepeaterChain:
    """Runs generation, purification, swapping and delivery on a :class:`~qfabric.sim.Simulator`.

    >>> sim = Simulator(seed=1)
    >>> seg = SegmentModel(success_probability=0.5, attempt_period=1, herald_delay=1,
    ...                    state=BellDiagonal.werner(0.9).weights)
    >>> chain = RepeaterChain(sim, [seg, seg], scheme="swap-asap")
    >>> chain.start()
    >>> _ = sim.run(until=1000)
    >>> len(chain.stats.delivery_ticks) > 100
    True
    >>> round(chain.stats.delivered_weights[0][0], 4)   # F of w = 0.81 (no memory noise)
    0.8575
    """

    def __init__(
        self,
        sim: Simulator,
        segments: Sequence[SegmentModel],
        nodes: Sequence[NodeModel] | None = None,
        *,
        scheme: SwapScheme | str = SwapScheme.SWAP_ASAP,
        cutoffs: Sequence[int | None] | int | None = None,
        purification_rounds: int = 0,
        purification_protocol: PurificationProtocol | str = PurificationProtocol.DEJMPS,
        purification_spans: Sequence[int] = (1,),
        seconds_per_tick: float = 1e-12,
        regenerate_covered: bool = True,
        defer_swaps: bool = False,
        swap_handshake: bool = False,
        mesh_delay: int | None = None,
        on_delivery: Callable[[Pair, int], None] | None = None,
        name: str = "chain",
    ):
        self.sim = sim
        self.segments = list(segments)
        n = len(self.segments)
        if n < 1:
            raise ParameterError("segments", n, "at least one segment")
        self.n = n
        self.nodes = list(nodes) if nodes is not None else [NodeModel() for _ in range(n + 1)]
        if len(self.nodes) != n + 1:
            raise ParameterError("nodes", len(self.nodes), f"{n + 1} node models for {n} segments")
        self.scheme = SwapScheme(scheme)
        if self.scheme is SwapScheme.NESTED and n & (n - 1):
            raise ParameterError("segments", n, "a power of two for the nested scheme")
        levels = int(math.log2(n)) if self.scheme is SwapScheme.NESTED else 1
        if cutoffs is None or isinstance(cutoffs, int):
            cutoffs = [cutoffs] * max(levels, 1)
        self.cutoffs = list(cutoffs)
        if self.scheme is SwapScheme.NESTED and levels and len(self.cutoffs) != levels:
            raise ParameterError("cutoffs", self.cutoffs, f"one cut-off per nesting level ({levels})")
        if any(c is not None and c < 0 for c in self.cutoffs):
            raise ParameterError("cutoffs", self.cutoffs, "non-negative tick counts")
        # nested cut-offs restart the partner half only when each link has a single memory pair (one lane)
        self._single_lane = all(s.capacity == 1 for s in self.segments)
        if purification_rounds < 0:
            raise ParameterError("purification_rounds", purification_rounds, "a non-negative integer")
        self.purification_rounds = purification_rounds
        self.purification_spans = frozenset(purification_spans) if purification_rounds else frozenset()
        needed = required_capacity(purification_rounds, len(self.purification_spans))
        if any(s.capacity < needed for s in self.segments):
            raise ParameterError("capacity", [s.capacity for s in self.segments],
                                 f"at least {needed} memories per side for {purification_rounds} purification "
                                 f"round(s) at {len(self.purification_spans)} span(s)")
        allowed = {1, n} if self.scheme is SwapScheme.SWAP_ASAP else {2**k for k in range(levels + 1)}
        if not self.purification_spans <= allowed:
            raise ParameterError("purification_spans", sorted(self.purification_spans),
                                 f"spans among {sorted(allowed)} for {self.scheme.value}")
        self._purify = dejmps if PurificationProtocol(purification_protocol) is PurificationProtocol.DEJMPS \
            else bbpssw
        self.seconds_per_tick = seconds_per_tick
        self.regenerate_covered = regenerate_covered
        self.defer_swaps = defer_swaps
        self.swap_handshake = swap_handshake
        if mesh_delay is not None and mesh_delay < 0:
            raise ParameterError("mesh_delay", mesh_delay, "a non-negative number of ticks")
        self.mesh_delay = mesh_delay
        self.on_delivery = on_delivery
        self.rngs = [sim.rng(f"{name}/segment-{s}") for s in range(n)]
        self.swap_rng = sim.rng(f"{name}/swaps")
        self.purification_rng = sim.rng(f"{name}/purification")
        self.stats = ChainStats(segments=[SegmentStats() for _ in range(n)])

        self.free_right = [s.capacity for s in self.segments] + [0]  # node i's memories facing segment i
        self.free_left = [0] + [s.capacity for s in self.segments]  # node i's memories facing segment i-1
        self.holding_left: list[list[Pair]] = [[] for _ in range(n + 1)]  # swappable pairs ending at node i
        self.holding_right: list[list[Pair]] = [[] for _ in range(n + 1)]  # swappable pairs starting at i
        self.waiting_purification: dict[tuple[int, int], list[Pair]] = {}
        self.processes: list[list[_Process]] = [[] for _ in range(n)]
        self.covered = [0] * n  # live pairs spanning each segment
        self.in_flight: list[Pair] = []  # alive pairs held by no node's list: swap messages or handshakes pending
        self._swap_check_pending = [False] * (n + 1)
        self._last_delivery = 0
        self._running = False
        # classical delay from node i to node j (sum of segment delays)
        offsets = np.concatenate([[0], np.cumsum([s.classical_delay for s in self.segments])])
        self._position = [int(x) for x in offsets]

    # ---- public -------------------------------------------------------------------------------

    def start(self) -> None:
        """Begin generating on every segment at the current tick."""
        self._running = True
        self._last_delivery = self.sim.now
        for s in range(self.n):
            self._refill(s)

    def finish(self) -> None:
        """Count the attempts made so far by generation still in progress (call once, at the end)."""
        for s, procs in enumerate(self.processes):
            for proc in procs:
                self.stats.segments[s].attempts += self._attempts_so_far(proc)
            procs.clear()
        self._running = False

    def audit(self) -> list[str]:
        """Memory accounting problems (none in a correct run): every memory in use must belong to a
        generation attempt or to a pair the engine still tracks."""
        tracked: dict[int, Pair] = {id(p): p for p in self.in_flight}
        for lists in (self.holding_left, self.holding_right, list(self.waiting_purification.values())):
            for held in lists:
                tracked.update((id(p), p) for p in held)
        problems = [f"pair {p.left}-{p.right} is tracked but dead" for p in tracked.values() if not p.alive]
        for node in range(self.n + 1):
            for side, free, capacity, attempts, ends in (
                ("right", self.free_right[node], self.segments[node].capacity if node < self.n else 0,
                 len(self.processes[node]) if node < self.n else 0, lambda p, x=node: p.left == x),
                ("left", self.free_left[node], self.segments[node - 1].capacity if node > 0 else 0,
                 len(self.processes[node - 1]) if node > 0 else 0, lambda p, x=node: p.right == x),
            ):
                used = capacity - free
                accounted = attempts + sum(1 for p in tracked.values() if ends(p))
                if used != accounted:
                    problems.append(f"node {node} {side}: {used} memories in use, {accounted} accounted for")
        return problems

    # ---- generation ---------------------------------------------------------------------------

    def _refill(self, s: int) -> None:
        if not self._running:
            return
        seg = self.segments[s]
        while self.free_right[s] > 0 and self.free_left[s + 1] > 0:
            if not self.regenerate_covered and self.covered[s] + len(self.processes[s]) >= seg.capacity:
                return
            self.free_right[s] -= 1
            self.free_left[s + 1] -= 1
            k = int(self.rngs[s].geometric(seg.success_probability))
            proc = _Process(segment=s, started=self.sim.now, attempts=k)
            herald_at = self.sim.now + (k - 1) * seg.attempt_period + seg.herald_delay
            proc.event = self.sim.schedule_at(herald_at, self._herald, proc, priority=PRIORITY_HERALD)
            self.processes[s].append(proc)

    def _attempts_so_far(self, proc: _Process) -> int:
        period = self.segments[proc.segment].attempt_period
        return min(proc.attempts, (self.sim.now - proc.started) // period)

    def _cancel_process(self, proc: _Process) -> None:
        self.sim.cancel(proc.event)
        self.stats.segments[proc.segment].attempts += self._attempts_so_far(proc)
        self.processes[proc.segment].remove(proc)
        self.free_right[proc.segment] += 1
        self.free_left[proc.segment + 1] += 1

    def _herald(self, proc: _Process) -> None:
        s = proc.segment
        self.processes[s].remove(proc)
        stats = self.stats.segments[s]
        stats.attempts += proc.attempts
        stats.successes += 1
        self.covered[s] += 1
        seg = self.segments[s]
        now = self.sim.now
        pair = Pair(left=s, right=s + 1, weights=seg.state, t_state=now - seg.stored_before_herald, ready=now)
        self._decay(pair, now)
        self._route(pair)

    def _route(self, pair: Pair) -> None:
        """A new pair goes to purification if its span is purified and rounds remain, else on to swapping."""
        if pair.rounds < self.purification_rounds and pair.span in self.purification_spans:
            cutoff = self._cutoff_for_span(pair.span)
            if cutoff is not None:  # a pair waiting for a purification partner is discarded after the cut-off
                self._disarm(pair)
                pair.timer = self.sim.schedule(cutoff, self._discard_expired, pair, priority=PRIORITY_CUTOFF)
            self._offer_for_purification(pair)
        else:
            self._make_available(pair)

    # ---- purification -------------------------------------------------------------------------

    def _offer_for_purification(self, pair: Pair) -> None:
        queue = self.waiting_purification.setdefault((pair.left, pair.right), [])
        partner = next((p for p in queue if p.rounds == pair.rounds), None)
        if partner is None:
            queue.append(pair)
            return
        queue.remove(partner)
        now = self.sim.now
        self._decay(partner, now)
        for p in (pair, partner):
            self._disarm(p)
        p_ok, out = self._purify(BellDiagonal(pair.weights), BellDiagonal(partner.weights))
        stats = self.stats
        stats.purifications += 1
        if pair.span == 1:
            stats.segments[pair.left].purifications += 1
        self._release(partner)  # the sacrificed pair is measured now
        ok = self.purification_rng.random() < p_ok
        if not ok:
            stats.purifications_failed += 1
            if pair.span == 1:
                stats.segments[pair.left].purifications_failed += 1
        pair.weights, pair.t_state = out.weights, now
        delay = self._delay(pair.left, pair.right)  # both ends exchange their parity outcomes
        self.in_flight.append(pair)
        self.sim.schedule(delay, self._purification_result, pair, ok, priority=PRIORITY_PURIFY)

    def _purification_result(self, pair: Pair, ok: bool) -> None:
        self.in_flight.remove(pair)
        if not pair.alive:
            return
        if not ok:
            self._release(pair)
            return
        pair.rounds += 1
        pair.ready = max(pair.ready, self.sim.now)
        self._route(pair)

    # ---- swapping -----------------------------------------------------------------------------

    def _make_available(self, pair: Pair) -> None:
        if pair.left == 0 and pair.right == self.n:
            self._schedule_delivery(pair)
            return
        if self.scheme is SwapScheme.SWAP_ASAP:
            self._arm_creation_cutoff(pair)
        if pair.left > 0:
            self.holding_right[pair.left].append(pair)
        if pair.right < self.n:
            self.holding_left[pair.right].append(pair)
        if pair.left > 0:
            self._request_swap_check(pair.left)
        if pair.right < self.n and pair.alive:  # an inline swap at the left end may have used it
            self._request_swap_check(pair.right)

    def _request_swap_check(self, node: int) -> None:
        """Swap at ``node`` now, or (``defer_swaps``) after every herald of this tick, nodes left to right."""
        if not self.defer_swaps:
            self._swap_check(node)
        elif not self._swap_check_pending[node]:
            self._swap_check_pending[node] = True
            self.sim.schedule(0, self._swap_check, node, priority=PRIORITY_SWAP + node)

    def _swap_check(self, node: int) -> None:
        self._swap_check_pending[node] = False
        left, right = self.holding_left[node], self.holding_right[node]
        if self.scheme is SwapScheme.NESTED:
            span = node & -node  # 2^(trailing zeros)
            lefts = [p for p in left if p.span == span]
            rights = [p for p in right if p.span == span]
            while lefts and rights:
                self._begin_swap(node, lefts.pop(0), rights.pop(0))
            cutoff = self.cutoffs[span.bit_length() - 1]
            if cutoff is not None:
                for p in lefts + rights:
                    if p.timer is None:
                        p.timer = self.sim.schedule(cutoff, self._nested_cutoff, p, node, priority=PRIORITY_CUTOFF)
            return
        while left and right:
            self._begin_swap(node, left[0], right[0])

    def _begin_swap(self, node: int, a: Pair, b: Pair) -> None:
        """Swap now, or (``swap_handshake``) after confirming with both far ends: one round trip to the farther."""
        if not self.swap_handshake:
            self._swap(node, a, b)
            return
        for p in (a, b):
            self._unhold(p)
            self._disarm(p)
        self.in_flight.extend((a, b))
        round_trip = 2 * max(self._delay(node, a.left), self._delay(node, b.right))
        self.sim.schedule(round_trip, self._handshake_done, node, a, b, priority=PRIORITY_HERALD)

    def _handshake_done(self, node: int, a: Pair, b: Pair) -> None:
        for p in (a, b):
            self.in_flight.remove(p)
        if a.alive and b.alive:
            self._swap(node, a, b)
            return
        for p in (a, b):  # the other was discarded meanwhile: back to waiting
            if p.alive:
                self._route(p)

    def _swap(self, node: int, a: Pair, b: Pair) -> None:
        now = self.sim.now
        for p in (a, b):
            self._disarm(p)
            self._unhold(p)
            self._decay(p, now)
        model = self.nodes[node]
        self.free_left[node] += 1
        self.free_right[node] += 1
        self.stats.swaps += 1
        if model.swap_success_probability < 1 and self.swap_rng.random() >= model.swap_success_probability:
            self.stats.swaps_failed += 1
            a.alive = b.alive = False
            self._free_far_ends(a.left, b.right)
        else:
            weights = compose(a.weights, b.weights)
            if model.swap_depolarising:
                weights = compose(weights, depolarising_probabilities(model.swap_depolarising))
            a.alive = b.alive = False
            message = max(self._delay(node, a.left), self._delay(node, b.right))
            pair = Pair(left=a.left, right=b.right, weights=weights, t_state=now,
                        ready=max(a.ready, b.ready, now + message))
            if self.scheme is SwapScheme.NESTED and message > 0:
                # the next level's node swaps only once the message tells it who its memory now shares a pair with
                self.in_flight.append(pair)
                self.sim.schedule(message, self._swap_message_arrived, pair, priority=PRIORITY_HERALD)
            else:
                self._route(pair)
        self._refill(node - 1)
        self._refill(node)

    def _swap_message_arrived(self, pair: Pair) -> None:
        self.in_flight.remove(pair)
        if pair.alive:
            self._route(pair)

    def _delay(self, i: int, j: int) -> int:
        """One-way classical message delay: along the chain's fibre, or one mesh hop (``mesh_delay``)."""
        if self.mesh_delay is not None:
            return self.mesh_delay if i != j else 0
        return abs(self._position[i] - self._position[j])

    # ---- cut-offs -----------------------------------------------------------------------------

    def _cutoff_for_span(self, span: int) -> int | None:
        if self.scheme is SwapScheme.SWAP_ASAP:
            return self.cutoffs[0]
        return self.cutoffs[min(span.bit_length() - 1, len(self.cutoffs) - 1)]

    def _arm_creation_cutoff(self, pair: Pair) -> None:
        cutoff = self.cutoffs[0]
        if cutoff is not None:
            self._disarm(pair)
            pair.timer = self.sim.schedule(cutoff, self._discard_expired, pair, priority=PRIORITY_CUTOFF)

    def _discard_expired(self, pair: Pair) -> None:
        pair.timer = None
        if not pair.alive:
            return
        self.stats.cutoff_discards += 1
        queue = self.waiting_purification.get((pair.left, pair.right), [])
        if pair in queue:
            queue.remove(pair)
        self._unhold(pair)
        self._release(pair)

    def _nested_cutoff(self, pair: Pair, node: int) -> None:
        """``pair`` waited its level's cut-off at ``node``: discard it and (one lane) restart the partner half."""
        pair.timer = None
        if not pair.alive:
            return
        self.stats.cutoff_discards += 1
        self._unhold(pair)
        self._release(pair)
        if not self._single_lane:
            return
        span = pair.span
        lo, hi = (node, node + span) if pair.right == node else (node - span, node)
        for s in range(lo, hi):  # the partner half: cancel its generation, drop its pairs
            for proc in list(self.processes[s]):
                self._cancel_process(proc)
        for p in self._pairs_within(lo, hi):
            self._unhold(p)
            self._disarm(p)
            self._release(p)
        for s in range(max(0, lo - span), min(self.n, hi + span)):
            self._refill(s)

    def _pairs_within(self, lo: int, hi: int) -> list[Pair]:
        found = {id(p): p for p in self.in_flight if lo <= p.left and p.right <= hi}
        for i in range(lo, hi + 1):
            for p in self.holding_left[i] + self.holding_right[i]:
                if lo <= p.left and p.right <= hi:
                    found[id(p)] = p
        return list(found.values())

    # ---- delivery and bookkeeping -------------------------------------------------------------

    def _schedule_delivery(self, pair: Pair) -> None:
        self._disarm(pair)
        if pair.ready <= self.sim.now and not self.defer_swaps:
            self._deliver(pair)
        else:
            self.in_flight.append(pair)
            self.sim.schedule_at(max(pair.ready, self.sim.now), self._deliver, pair, True, priority=PRIORITY_DELIVER)

    def _deliver(self, pair: Pair, scheduled: bool = False) -> None:
        if scheduled:
            self.in_flight.remove(pair)
        now = self.sim.now
        self._decay(pair, now)
        stats = self.stats
        stats.delivery_ticks.append(now)
        stats.delivered_weights.append(pair.weights)
        stats.waiting_ticks.append(now - self._last_delivery)
        self._last_delivery = now
        if self.on_delivery is not None:
            self.on_delivery(pair, now)
        self._release(pair)

    def _decay(self, pair: Pair, now: int) -> None:
        dt = now - pair.t_state
        if dt <= 0:
            return
        seconds = dt * self.seconds_per_tick
        left_memory = self.nodes[pair.left].memory_right
        right_memory = self.nodes[pair.right].memory_left
        w = pair.weights
        if not left_memory.is_ideal:
            w = compose(w, left_memory.pauli_probabilities(seconds))
        if not right_memory.is_ideal:
            w = compose(w, right_memory.pauli_probabilities(seconds))
        pair.weights, pair.t_state = w, now

    def _disarm(self, pair: Pair) -> None:
        if pair.timer is not None:
            self.sim.cancel(pair.timer)
            pair.timer = None

    def _unhold(self, pair: Pair) -> None:
        for holding in (self.holding_right[pair.left], self.holding_left[pair.right]):
            if pair in holding:
                holding.remove(pair)

    def _release(self, pair: Pair) -> None:
        """Free both end memories of a pair that is gone (measured, discarded, delivered)."""
        pair.alive = False
        self._disarm(pair)
        self._free_far_ends(pair.left, pair.right)

    def _free_far_ends(self, left: int, right: int) -> None:
        """The pair (or the two swap inputs) covering ``left .. right`` is gone: free memories, uncover."""
        self.free_right[left] += 1
        self.free_left[right] += 1
        for s in range(left, right):
            self.covered[s] -= 1
        self._refill(left)
        self._refill(right - 1)
        if not self.regenerate_covered:
            for s in range(left + 1, right - 1):
                self._refill(s)
