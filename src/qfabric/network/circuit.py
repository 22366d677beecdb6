"""One circuit: a path through the network and the protocol that turns its link pairs into end-to-end pairs.

Positions ``0 .. N`` are the path's nodes (0 the head end); segment ``s`` is the link between positions
``s`` and ``s + 1``. Repeaters swap according to the circuit's scheme (swap-asap, nested, sequential); a
failed swap loses both inputs. Optional purification (BBPSSW or DEJMPS, symmetric recurrence) of the pairs
of chosen spans before they are swapped or delivered; cut-offs discard pairs that wait too long.

Pairs decohere in their two memories for exactly as long as they are stored. Classical messages (swap
outcomes, Pauli-frame updates, purification outcomes, failures) travel along the path, hop by hop, with
each link's latency, jitter and loss. With ``swap-asap`` and ``sequential`` a repeater swaps whatever it
holds without waiting to learn who the far ends are; when a swap fails, the far ends learn it only when
the failure message reaches them, and until then may swap the dead halves further (the doom travels with
the product and every end discards its half when the news arrives). With ``nested`` a node waits for the
swap message before swapping again. End-to-end pairs are delivered once every swap record has reached
both ends. With ``swap_handshake`` a repeater first confirms each swap with both far ends and holds its
four qubits for that round trip.

``regenerate_covered`` (default on) lets a segment keep generating while a longer pair spans it;
``defer_swaps`` runs the swaps of one tick after all its heralds, node by node from the head end, which
the discrete chain model of :mod:`qfabric.network.analysis` needs to be exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from qfabric.errors import ParameterError
from qfabric.network.models import (
    LinkAge,
    Multiplexing,
    Protocol,
    PurificationProtocol,
    QubitSelection,
    SwapScheme,
    SwapTiming,
    Weights,
    nesting_levels,
    required_capacity,
)
from qfabric.sim import Event
from qfabric.states import BellDiagonal, bbpssw, compose, dejmps, depolarising_probabilities

if TYPE_CHECKING:
    from qfabric.network.engine import Generator, Link, MemoryPool, Network

PRIORITY_HERALD = 0
PRIORITY_PURIFY = 1
PRIORITY_SWAP = 10  # + node position: swaps at one tick run from the head end, after all heralds
PRIORITY_DELIVER = 1_000_000
PRIORITY_CUTOFF = 2_000_000  # after swaps at the same tick: waiting exactly the cut-off is allowed
PRIORITY_NEWS = 2_500_000

_MIXED: Weights = (0.25, 0.25, 0.25, 0.25)
_NEVER = 1 << 62  # a tick no run reaches (2^62 ps is 53 days)


class Pair:
    """An entangled pair; bound to a circuit, its ends are path positions ``left < right``.

    ``weights`` hold at tick ``t_state``; ``known_l`` / ``known_r`` are when each end has every swap record of
    its history (records travel hop by hop, relayed by the swapping nodes), ``ready`` the later; ``since`` is
    when it became available for swapping (the qubit-selection rule's age), ``born`` when its oldest part did (the
    ``oldest`` cut-off convention's age); ``pool_l`` / ``pool_r`` are the
    memory pools of its two halves (``None`` once that end has discarded it); ``doom_l`` / ``doom_r`` are
    the ticks at which each end learns that a failed swap made it garbage.
    """

    __slots__ = ("left", "right", "weights", "t_state", "known_l", "known_r", "pool_l", "pool_r", "born", "since",
                 "rounds", "circuit", "link", "timer", "alive", "doom_l", "doom_r")

    def __init__(self, left: int, right: int, weights: Weights, t_state: int, known_l: int, known_r: int,
                 pool_l: MemoryPool | None, pool_r: MemoryPool | None, born: int):
        self.left, self.right, self.weights, self.t_state = left, right, weights, t_state
        self.known_l, self.known_r = known_l, known_r
        self.pool_l, self.pool_r, self.born, self.since = pool_l, pool_r, born, born
        self.rounds = 0
        self.circuit: Circuit | None = None
        self.link: Link | None = None
        self.timer: Event | None = None
        self.alive = True
        self.doom_l = self.doom_r = _NEVER

    @property
    def span(self) -> int:
        return self.right - self.left

    @property
    def ready(self) -> int:
        return max(self.known_l, self.known_r)

    @property
    def doomed(self) -> bool:
        return self.doom_l < _NEVER or self.doom_r < _NEVER

    def decay_to(self, now: int, seconds_per_tick: float) -> None:
        """Apply both memories' noise from ``t_state`` to ``now``.

        Pauli noise on either half multiplies the Fourier components of the Bell-diagonal weights (over the
        Klein group, the basis in which :func:`~qfabric.states.compose` is a product) by ``exp(-t * rate)``,
        so both memories' channels are applied at once (see ``Memory.decay_rates``).
        """
        dt = now - self.t_state
        if dt <= 0:
            return
        self.t_state = now
        pl, pr = self.pool_l, self.pool_r
        if pl is None:
            if pr is None:
                return
            r1, r2, r3 = pr.rates
        elif pr is None:
            r1, r2, r3 = pl.rates
        else:
            a, b = pl.rates, pr.rates
            r1, r2, r3 = a[0] + b[0], a[1] + b[1], a[2] + b[2]
        if r1 == 0.0 and r2 == 0.0 and r3 == 0.0:
            return
        t = -dt * seconds_per_tick
        w0, w1, w2, w3 = self.weights
        f0 = w0 + w1 + w2 + w3
        f1 = (w0 - w1 + w2 - w3) * math.exp(t * r1)
        f2 = (w0 + w1 - w2 - w3) * math.exp(t * r2)
        f3 = (w0 - w1 - w2 + w3) * math.exp(t * r3)
        self.weights = ((f0 + f1 + f2 + f3) / 4, (f0 - f1 + f2 - f3) / 4, (f0 + f1 - f2 - f3) / 4,
                        (f0 - f1 - f2 + f3) / 4)

    def __repr__(self) -> str:
        return f"Pair({self.left}-{self.right}, F={self.weights[0]:.4f}, alive={self.alive})"


@dataclass
class CircuitStats:
    """Plain counters and records of one circuit (``observe`` reads them)."""

    swaps: int = 0
    swaps_failed: int = 0
    purifications: int = 0
    purifications_failed: int = 0
    cutoff_discards: int = 0
    doomed_discards: int = 0  # pairs whose ends learned of a failed swap upstream of them
    below_fidelity: int = 0  # end-to-end pairs discarded for fidelity under fidelity_min
    delivery_ticks: list[int] = field(default_factory=list)
    delivered_weights: list[Weights] = field(default_factory=list)
    waiting_ticks: list[int] = field(default_factory=list)


class Circuit:
    """A path with its protocol, run by a :class:`~qfabric.network.engine.Network`."""

    def __init__(self, network: Network, name: str, nodes: list[str], protocol: Protocol, *,
                 consumer: Callable[[Circuit, Pair, int], None] | None = None, stream: str | None = None):
        self.network, self.sim, self.name, self.nodes, self.protocol = network, network.sim, name, nodes, protocol
        self.consumer = consumer
        n = len(nodes) - 1
        if n < 1:
            raise ParameterError("path", nodes, "at least two nodes")
        self.n = n
        self.links: list[Link] = [network.link_between(a, b) for a, b in zip(nodes, nodes[1:], strict=False)]
        self.segment_of = {link: s for s, link in enumerate(self.links)}
        self.forward = [link.a == a for link, a in zip(self.links, nodes, strict=False)]
        self.node_models = [network.nodes[x] for x in nodes]
        self.scheme = SwapScheme(protocol.scheme)
        self.cutoffs = protocol.cutoffs_for(n)
        self.regenerate_covered = protocol.regenerate_covered
        self.defer_swaps = protocol.defer_swaps
        self.link_age = LinkAge(protocol.link_age)
        self.simultaneous = protocol.swap_timing is SwapTiming.SIMULTANEOUS
        self._phase_pending = False
        self._in_phase = False
        self.swap_handshake = protocol.swap_handshake
        self.mesh_delay = protocol.mesh_delay
        self.fidelity_min = protocol.fidelity_min
        self.seconds_per_tick = network.seconds_per_tick
        self.selection = network.qubit_selection
        self.statistical = network.multiplexing is Multiplexing.STATISTICAL

        # the swap tree of the nested scheme: node i swaps the pair (lo_i .. i) with (i .. hi_i)
        self.lo = list(range(-1, n)) + [n]
        self.hi = list(range(1, n + 2))
        self.level = [0] * (n + 1)
        spans = {1, n}
        if self.scheme is SwapScheme.NESTED:
            self._build_tree(0, n, spans)
        self.purification_rounds = protocol.purification_rounds
        self.purification_spans = frozenset(protocol.purification_spans) if self.purification_rounds else frozenset()
        if not self.purification_spans <= spans:
            raise ParameterError("purification_spans", sorted(self.purification_spans),
                                 f"spans among {sorted(spans)} for {self.scheme.value} over {n} links")
        needed = required_capacity(self.purification_rounds, len(self.purification_spans))
        short = [link.name for link in self.links if min(link.pool_a.capacity, link.pool_b.capacity) < needed]
        if short:
            raise ParameterError("capacity", short, f"at least {needed} memories per side for "
                                 f"{self.purification_rounds} purification round(s) at "
                                 f"{len(self.purification_spans)} span(s)")
        self._purify = dejmps if protocol.purification_protocol is PurificationProtocol.DEJMPS else bbpssw
        self._purifies_links = 1 in self.purification_spans
        self._single_lane = all(link.pool_a.capacity == 1 and link.pool_b.capacity == 1 for link in self.links)

        stream = stream or f"circuit/{name}"
        self.swap_rng = self.sim.rng(f"{stream}/swaps")
        self.purification_rng = self.sim.rng(f"{stream}/purification")
        self.classical_rng = self.sim.rng(f"{stream}/classical")
        self.stats = CircuitStats()

        # memories: the link pools, or (buffer-space) private shares made on activation
        self.pool_right: list[MemoryPool | None] = [self._link_pool(s, s) for s in range(n)] + [None]
        self.pool_left: list[MemoryPool | None] = [None] + [self._link_pool(s - 1, s) for s in range(1, n + 1)]
        self.generators: list[Generator] = [link.generator for link in self.links]
        self._private = False

        self.holding_left: list[list[Pair]] = [[] for _ in range(n + 1)]  # swappable pairs ending at node i
        self.holding_right: list[list[Pair]] = [[] for _ in range(n + 1)]  # swappable pairs starting at i
        self.waiting_purification: dict[tuple[int, int], list[Pair]] = {}
        self.covered = [0] * n  # live pairs spanning each segment (kept only without regenerate_covered)
        self.in_flight: dict[Pair, None] = {}  # alive pairs held by no node's list: messages or handshakes pending
        self._swap_check_pending = [False] * (n + 1)
        self.active = False
        self.last_delivery = 0
        self.last_shared = -1  # when it last took a shared link pair (statistical ties go to the longest ago)
        self.weight = 1.0  # its share of contended memories relative to the other circuits on a link
        self.no_memory_share: set[str] = set()  # buffer-space: links where its share of an end's qubits is zero

        hops = [link.hop for link in self.links]
        self._hops = hops
        self._jittery = any(not h.deterministic for h in hops)
        position = [0]
        for h in hops:
            position.append(position[-1] + h.delay)
        self._position = position
        if self.simultaneous and (position[-1] or self._jittery or self.mesh_delay):
            raise ParameterError("swap_timing", "simultaneous", "a chain without classical delays (the discrete model)")

    def __repr__(self) -> str:
        return f"Circuit({self.name!r}, {' > '.join(self.nodes)})"

    def _build_tree(self, lo: int, hi: int, spans: set[int]) -> None:
        spans.add(hi - lo)
        if hi - lo < 2:
            return
        mid = (lo + hi) // 2
        self.lo[mid], self.hi[mid] = lo, hi
        self.level[mid] = nesting_levels(hi - lo) - 1
        self._build_tree(lo, mid, spans)
        self._build_tree(mid, hi, spans)

    def _link_pool(self, s: int, position: int) -> MemoryPool:
        return self.links[s].pool_at(self.nodes[position])

    # ---- memories under buffer-space multiplexing ----------------------------------------------------

    def make_private_pools(self) -> None:
        """Buffer-space: this circuit's own share of each link end (sized by the network), and generators."""
        from qfabric.network.engine import Generator, MemoryPool

        if self._private:
            return
        self._private = True
        for s, link in enumerate(self.links):
            left_node, right_node = self.nodes[s], self.nodes[s + 1]
            pl = MemoryPool(self.sim, left_node, link, link.pool_at(left_node).memory, 0)
            pr = MemoryPool(self.sim, right_node, link, link.pool_at(right_node).memory, 0)
            self.pool_right[s], self.pool_left[s + 1] = pl, pr
            pool_a, pool_b = (pl, pr) if self.forward[s] else (pr, pl)
            self.generators[s] = Generator(self.network, link, pool_a, pool_b, owner=self, segment=s)

    def private_pools(self) -> list[MemoryPool]:
        if not self._private:
            return []
        return [p for p in self.pool_right[:-1] + self.pool_left[1:] if p is not None]

    # ---- from the links -------------------------------------------------------------------------------

    def herald(self, pair: Pair, s: int, decayed: bool = False) -> None:
        """A pair heralded on segment ``s`` is now this circuit's."""
        if pair.circuit is None:
            self._orient(pair, s)
        if not self.regenerate_covered:
            self.covered[s] += 1
        if not decayed:
            pair.decay_to(self.sim.now, self.seconds_per_tick)
        self._route(pair)

    def _orient(self, pair: Pair, s: int) -> None:
        pair.circuit = self
        pair.left, pair.right = s, s + 1
        if not self.forward[s]:
            pair.pool_l, pair.pool_r = pair.pool_r, pair.pool_l

    def bind(self, pair: Pair, link: Link) -> None:
        """Take a shared (statistical) link pair for this circuit."""
        if pair.timer is not None:
            self.sim.cancel(pair.timer)
            pair.timer = None
        if pair in link.unbound:
            link.unbound.remove(pair)
        self._orient(pair, self.segment_of[link])

    def unbound_cutoff(self) -> int | None:
        """How long a shared pair on one of this circuit's links may wait for this circuit."""
        return self.cutoffs[0]

    def waiting_since(self, link: Link) -> float | None:
        """For a pair just heralded on shared ``link``: since when a use of it has waited in this circuit
        (a swap partner, a purification partner, a one-link delivery), ``inf`` if only a new purification
        could start with it, ``None`` if this circuit cannot use it now."""
        s = self.segment_of[link]
        if self._purifies_links:
            for p in self.waiting_purification.get((s, s + 1), ()):
                if p.rounds == 0:
                    return p.since
            return math.inf
        if self.n == 1:
            return self.last_delivery
        best = None
        # node s takes it as its right-hand pair, node s + 1 as its left-hand pair
        for k, partner_on_left in ((s, True), (s + 1, False)):
            if not 0 < k < self.n or not self._accepts_elementary(k, not partner_on_left):
                continue
            held = self.holding_left[k] if partner_on_left else self.holding_right[k]
            partner = next((p for p in held if self._fits(k, p, partner_on_left)), None)
            other = self.links[k - 1 if partner_on_left else k]
            if other.unbound and self._accepts_elementary(k, partner_on_left):
                shared = self._usable_shared(other, QubitSelection.OLDEST)
                if shared is not None and (partner is None or shared.since < partner.since):
                    partner = shared
            if partner is not None and (best is None or partner.since < best):
                best = partner.since
        return best

    def offer_unbound(self, s: int) -> None:
        """On activation, use shared pairs already waiting on segment ``s`` (statistical)."""
        link = self.links[s]
        if not link.unbound:
            return
        if self.n == 1:
            while link.unbound and self.active:
                pair = link.unbound[0]
                self.bind(pair, link)
                self.herald(pair, s)
            return
        for k in (s, s + 1):
            if 0 < k < self.n:
                self._request_swap_check(k)

    # ---- purification -----------------------------------------------------------------------------

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

    def _offer_for_purification(self, pair: Pair) -> None:
        queue = self.waiting_purification.setdefault((pair.left, pair.right), [])
        partner = next((p for p in queue if p.rounds == pair.rounds), None)
        if partner is None:
            pair.since = self.sim.now
            queue.append(pair)
            return
        queue.remove(partner)
        now = self.sim.now
        partner.decay_to(now, self.seconds_per_tick)
        for p in (pair, partner):
            self._disarm(p)
        p_ok, out = self._purify(BellDiagonal(pair.weights), BellDiagonal(partner.weights))
        stats = self.stats
        stats.purifications += 1
        link_stats = self.links[pair.left].stats if pair.span == 1 else None
        if link_stats is not None:
            link_stats.purifications += 1
        self._release(partner)  # the sacrificed pair is measured now
        ok = self.purification_rng.random() < p_ok
        if not ok:
            stats.purifications_failed += 1
            if link_stats is not None:
                link_stats.purifications_failed += 1
        pair.weights, pair.t_state = out.weights, now
        pair.born = min(pair.born, partner.born)
        delay = self._delay(pair.left, pair.right)  # both ends exchange their parity outcomes
        self.in_flight[pair] = None
        self.sim.schedule(delay, self._purification_result, pair, ok, priority=PRIORITY_PURIFY)

    def _purification_result(self, pair: Pair, ok: bool) -> None:
        self.in_flight.pop(pair, None)
        if not pair.alive:
            return
        if not ok or not self.active:
            self._release(pair)
            return
        pair.rounds += 1
        pair.known_l = max(pair.known_l, self.sim.now)  # each end has the other's parity outcome now
        pair.known_r = max(pair.known_r, self.sim.now)
        self._route(pair)

    # ---- swapping -----------------------------------------------------------------------------------

    def _make_available(self, pair: Pair) -> None:
        if pair.left == 0 and pair.right == self.n:
            self._schedule_delivery(pair)
            return
        pair.since = self.sim.now
        left, right = pair.left, pair.right
        held_left = left > 0 and pair.pool_l is not None
        held_right = right < self.n and pair.pool_r is not None
        if held_left:
            self.holding_right[left].append(pair)
        if held_right:
            self.holding_left[right].append(pair)
        if held_left:
            self._request_swap_check(left)
        if held_right and pair.alive:  # an inline swap at the left end may have used it
            self._request_swap_check(right)
        if pair.alive and self.scheme is not SwapScheme.NESTED:  # still waiting: its cut-off runs from now
            self._arm_creation_cutoff(pair)

    def _request_swap_check(self, node: int) -> None:
        """Swap at ``node`` now, or (``defer_swaps``) after every herald of this tick: node by node from the head
        end, or (``simultaneous``) every ready node at once."""
        if not self.defer_swaps:
            self._swap_check(node)
        elif self.simultaneous:
            if not self._phase_pending and not self._in_phase:
                self._phase_pending = True
                self.sim.schedule(0, self._swap_phase, priority=PRIORITY_SWAP)
        elif not self._swap_check_pending[node]:
            self._swap_check_pending[node] = True
            self.sim.schedule(0, self._swap_check, node, priority=PRIORITY_SWAP + node)

    def _ready_swaps(self) -> list[tuple[int, Pair, Pair]]:
        """Every swap the nodes can make now: (node, left pair, right pair), each pair at most once per side."""
        swaps = []
        for k in range(1, self.n):
            lefts = [p for p in self.holding_left[k] if self._fits(k, p, True)]
            rights = [p for p in self.holding_right[k] if self._fits(k, p, False)]
            if self.selection is QubitSelection.YOUNGEST:
                lefts.reverse()
                rights.reverse()
            swaps += [(k, a, b) for a, b in zip(lefts, rights, strict=False)]
        return swaps

    def _swap_phase(self) -> None:
        """Simultaneous swapping: adjacent swaps chain into runs; a run makes one pair if every swap in it succeeds
        and loses all its pairs if one fails (the discrete model: no classical delays)."""
        self._phase_pending = False
        swaps = self._ready_swaps() if self.active else []
        if not swaps:
            return
        now, spt = self.sim.now, self.seconds_per_tick
        runs: list[list[tuple[int, Pair, Pair]]] = []
        for swap in swaps:  # in node order: a swap continues the run whose last right pair is its left pair
            if runs and runs[-1][-1][2] is swap[1]:
                runs[-1].append(swap)
            else:
                runs.append([swap])
        self._in_phase = True
        touched: set[int] = set()
        for run in runs:
            parts = [run[0][1]] + [b for _, _, b in run]
            for p in parts:
                self._disarm(p)
                self._unhold(p)
                p.decay_to(now, spt)
                p.alive = False
            ok = True
            for k, _, _ in run:
                self.stats.swaps += 1
                model = self.node_models[k]
                if model.swap_success_probability < 1 and self.swap_rng.random() >= model.swap_success_probability:
                    self.stats.swaps_failed += 1
                    ok = False
            for k, a, b in run:  # the swapping nodes' qubits are measured
                for pool in (a.pool_r, b.pool_l):
                    if pool is not None:
                        pool.give()
                touched.update((k - 1, k))
            first, last = parts[0], parts[-1]
            if not ok:  # every pair of the run is lost
                for pool in (first.pool_l, last.pool_r):
                    if pool is not None:
                        pool.give()
                self._uncover_span(first.left, last.right)
                touched.update(range(first.left, last.right))
                continue
            weights = first.weights
            for (k, _, _), part in zip(run, parts[1:], strict=True):
                weights = compose(weights, part.weights)
                if self.node_models[k].swap_depolarising:
                    weights = compose(weights, depolarising_probabilities(self.node_models[k].swap_depolarising))
            known = max(max(p.known_l, p.known_r) for p in parts)
            pair = Pair(first.left, last.right, weights, now, max(known, now), max(known, now), first.pool_l,
                        last.pool_r, min(p.born for p in parts))
            pair.circuit = self
            self._route(pair)
        self._in_phase = False
        for s in sorted(touched):
            self._refill(s)
        if self._ready_swaps():  # one round per step: what is left swaps at the next step
            self._phase_pending = True
            self.sim.schedule(1, self._swap_phase, priority=PRIORITY_SWAP)

    def _accepts_elementary(self, k: int, on_left: bool) -> bool:
        """Whether node ``k`` may swap a fresh link pair on its left (``on_left``) or right side."""
        if self._purifies_links and self.purification_rounds:
            return False
        if self.scheme is SwapScheme.NESTED:
            return self.lo[k] == k - 1 if on_left else self.hi[k] == k + 1
        if self.scheme is SwapScheme.SEQUENTIAL:
            return k == 1 if on_left else True
        return True

    def _fits(self, k: int, pair: Pair, left_side: bool) -> bool:
        if self.scheme is SwapScheme.SWAP_ASAP:
            return True
        if self.scheme is SwapScheme.NESTED:
            return pair.left == self.lo[k] if left_side else pair.right == self.hi[k]
        return pair.left == 0 if left_side else pair.right == k + 1

    def _pick(self, held: list[Pair], k: int, left_side: bool) -> Pair | None:
        """The pair node ``k`` swaps on one side: among those it holds and (statistical) shared link pairs."""
        candidates = held if self.scheme is SwapScheme.SWAP_ASAP else [p for p in held if self._fits(k, p, left_side)]
        choice = None
        if candidates:
            selection = self.selection
            if selection is QubitSelection.OLDEST:
                choice = candidates[0]
            elif selection is QubitSelection.YOUNGEST:
                choice = candidates[-1]
            else:
                choice = candidates[int(self.network.selection_rng.integers(len(candidates)))]
        link = self.links[k - 1 if left_side else k]
        if link.unbound and self.statistical and self._accepts_elementary(k, left_side):
            shared = self._usable_shared(link, self.selection)
            if shared is not None and (choice is None or self._prefer(shared, choice)):
                choice = shared
        return choice

    def _usable_shared(self, link: Link, selection: QubitSelection) -> Pair | None:
        cutoff = self.cutoffs[0]
        now = self.sim.now
        usable = [p for p in link.unbound if cutoff is None or now - p.since <= cutoff]
        if not usable:
            return None
        if selection is QubitSelection.YOUNGEST:
            return usable[-1]
        if selection is QubitSelection.RANDOM:
            return usable[int(self.network.selection_rng.integers(len(usable)))]
        return usable[0]

    def _prefer(self, shared: Pair, held: Pair) -> bool:
        if self.selection is QubitSelection.YOUNGEST:
            return shared.since > held.since
        return shared.since < held.since

    def _swap_check(self, node: int) -> None:
        self._swap_check_pending[node] = False
        if not self.active:
            return
        left, right = self.holding_left[node], self.holding_right[node]
        while True:
            a = self._pick(left, node, True)
            if a is None:
                break
            b = self._pick(right, node, False)
            if b is None:
                break
            for p, s in ((a, node - 1), (b, node)):
                if p.circuit is None:
                    self.bind(p, self.links[s])
                    if not self.regenerate_covered:
                        self.covered[s] += 1
                    p.decay_to(self.sim.now, self.seconds_per_tick)
            self._begin_swap(node, a, b)
        if self.scheme is SwapScheme.NESTED:
            cutoff = self.cutoffs[self.level[node]]
            if cutoff is not None:
                for p in left + right:
                    if p.timer is None and self._fits(node, p, p.right == node):
                        p.timer = self.sim.schedule(cutoff, self._nested_cutoff, p, node, priority=PRIORITY_CUTOFF)

    def _begin_swap(self, node: int, a: Pair, b: Pair) -> None:
        """Swap now, or (``swap_handshake``) after confirming with both far ends: one round trip to the farther."""
        if not self.swap_handshake:
            self._swap(node, a, b)
            return
        for p in (a, b):
            self._unhold(p)
            self._disarm(p)
        self.in_flight[a] = self.in_flight[b] = None
        round_trip = 2 * max(self._delay(node, a.left), self._delay(node, b.right))
        self.sim.schedule(round_trip, self._handshake_done, node, a, b, priority=PRIORITY_HERALD)

    def _handshake_done(self, node: int, a: Pair, b: Pair) -> None:
        for p in (a, b):
            self.in_flight.pop(p, None)
        if a.alive and b.alive and self.active:
            self._swap(node, a, b)
            return
        for p in (a, b):  # the other was discarded meanwhile: back to waiting
            if p.alive:
                if self.active:
                    self._route(p)
                else:
                    self._release(p)

    def _swap(self, node: int, a: Pair, b: Pair) -> None:
        now = self.sim.now
        spt = self.seconds_per_tick
        for p in (a, b):
            self._disarm(p)
            self._unhold(p)
            p.decay_to(now, spt)
            if p.doomed:
                self.in_flight.pop(p, None)
        measured_a, measured_b = a.pool_r, b.pool_l  # the swapping node's two qubits are measured
        assert measured_a is not None and measured_b is not None  # it holds both (pairs are held where they are)
        measured_a.give()
        measured_b.give()
        self.stats.swaps += 1
        model = self.node_models[node]
        a.alive = b.alive = False
        to_left, to_right = self._delay(node, a.left), self._delay(node, b.right)
        doom_l = min(a.doom_l, b.doom_l + to_left)
        doom_r = min(b.doom_r, a.doom_r + to_right)
        failed = model.swap_success_probability < 1 and self.swap_rng.random() >= model.swap_success_probability
        if failed:
            self.stats.swaps_failed += 1
            doom_l = min(doom_l, now + to_left)
            doom_r = min(doom_r, now + to_right)
        if failed and to_left == 0 and to_right == 0:
            self._free_far_ends(a, b)
        else:
            if failed:
                weights = _MIXED
            else:
                weights = compose(a.weights, b.weights)
                if model.swap_depolarising:
                    weights = compose(weights, depolarising_probabilities(model.swap_depolarising))
            message = max(to_left, to_right)
            # each far end gets this swap's record, and the records the swapping node relays once it has them
            relay_l = (now if now > b.known_l else b.known_l) + to_left
            relay_r = (now if now > a.known_r else a.known_r) + to_right
            known_l = a.known_l if a.known_l > relay_l else relay_l
            known_r = b.known_r if b.known_r > relay_r else relay_r
            pair = Pair(a.left, b.right, weights, now, known_l, known_r, a.pool_l, b.pool_r, min(a.born, b.born))
            pair.circuit = self
            pair.doom_l, pair.doom_r = doom_l, doom_r
            if pair.doomed:
                pair.known_l = max(known_l, doom_l if doom_l < _NEVER else 0)
                pair.known_r = max(known_r, doom_r if doom_r < _NEVER else 0)
                self._schedule_news(pair)
            if self.scheme is SwapScheme.NESTED and (message > 0 or failed):
                # the next level's node swaps only once the message tells it who its memory now shares a pair with
                if not failed:
                    self.in_flight[pair] = None
                    self.sim.schedule(message, self._swap_message_arrived, pair, priority=PRIORITY_HERALD)
                else:
                    self.in_flight[pair] = None  # held until the ends learn of the failure
            else:
                self._route(pair)
        self._refill(node - 1)
        self._refill(node)

    def _swap_message_arrived(self, pair: Pair) -> None:
        self.in_flight.pop(pair, None)
        if not pair.alive:
            return
        if self.active:
            self._route(pair)
        else:
            self._release(pair)

    def _delay(self, i: int, j: int) -> int:
        """One-way classical delay from position ``i`` to ``j``: hop by hop along the path, or one mesh hop; a
        message that must cross a cut link never arrives (:data:`_NEVER`)."""
        lo, hi = (i, j) if i < j else (j, i)
        if self.network.links_down:
            for link in self.links[lo:hi]:
                if not link.up:
                    return _NEVER
        if self.mesh_delay is not None:
            return self.mesh_delay if i != j else 0
        if not self._jittery:
            return abs(self._position[i] - self._position[j])
        rng = self.classical_rng
        total = 0
        for hop in self._hops[lo:hi]:
            total += hop.delay
            if hop.jitter:
                total += int(rng.integers(0, hop.jitter + 1))
            if hop.loss_probability:
                total += (int(rng.geometric(1 - hop.loss_probability)) - 1) * hop.retransmit_timeout
        return total

    # ---- failures learned by message -----------------------------------------------------------------

    def _schedule_news(self, pair: Pair) -> None:
        now = self.sim.now
        for side, at in (("l", pair.doom_l), ("r", pair.doom_r)):
            if at < _NEVER:
                self.sim.schedule_at(max(at, now), self._news, pair, side, priority=PRIORITY_NEWS)

    def _news(self, pair: Pair, side: str) -> None:
        """One end learns that ``pair`` is garbage and discards its half."""
        if not pair.alive:
            return
        if side == "l" and pair.pool_l is not None:
            if pair.left > 0 and pair in self.holding_right[pair.left]:
                self.holding_right[pair.left].remove(pair)
            pair.pool_l.give()
            pair.pool_l = None
            self._refill(pair.left)
        elif side == "r" and pair.pool_r is not None:
            if pair.right < self.n and pair in self.holding_left[pair.right]:
                self.holding_left[pair.right].remove(pair)
            pair.pool_r.give()
            pair.pool_r = None
            self._refill(pair.right - 1)
        queue = self.waiting_purification.get((pair.left, pair.right))
        if queue and pair in queue:
            queue.remove(pair)
        if pair.pool_l is None and pair.pool_r is None:
            pair.alive = False
            self._disarm(pair)
            self.in_flight.pop(pair, None)
            self.stats.doomed_discards += 1
            self._uncover(pair)
        else:
            self.in_flight[pair] = None  # tracked until its other end learns too

    # ---- cut-offs ---------------------------------------------------------------------------------

    def _cutoff_for_span(self, span: int) -> int | None:
        if self.scheme is not SwapScheme.NESTED:
            return self.cutoffs[0]
        return self.cutoffs[min(nesting_levels(span), len(self.cutoffs) - 1)]

    def _arm_creation_cutoff(self, pair: Pair) -> None:
        cutoff = self.cutoffs[0]
        if cutoff is not None:
            self._disarm(pair)
            now = self.sim.now
            expiry = (pair.born if self.link_age is LinkAge.OLDEST else pair.since) + cutoff
            pair.timer = self.sim.schedule_at(expiry if expiry > now else now, self._discard_expired, pair,
                                              priority=PRIORITY_CUTOFF)

    def _discard_expired(self, pair: Pair) -> None:
        pair.timer = None
        if not pair.alive:
            return
        self.stats.cutoff_discards += 1
        queue = self.waiting_purification.get((pair.left, pair.right))
        if queue and pair in queue:
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
        lo, hi = (node, self.hi[node]) if pair.right == node else (self.lo[node], node)
        for s in range(lo, hi):  # the partner half: cancel its generation, drop its pairs
            gen = self.generators[s]
            if gen.owner is self or len(self.links[s].circuits) == 1:
                for proc in list(gen.processes):
                    gen.cancel(proc)
        for p in self._pairs_within(lo, hi):
            self._unhold(p)
            self._disarm(p)
            self._release(p)
        span = hi - lo
        for s in range(max(0, lo - span), min(self.n, hi + span)):
            self._refill(s)

    def _pairs_within(self, lo: int, hi: int) -> list[Pair]:
        found = {id(p): p for p in self.in_flight if lo <= p.left and p.right <= hi}
        for i in range(lo, hi + 1):
            for p in self.holding_left[i] + self.holding_right[i]:
                if lo <= p.left and p.right <= hi:
                    found[id(p)] = p
        return list(found.values())

    # ---- delivery and bookkeeping -------------------------------------------------------------------

    def _schedule_delivery(self, pair: Pair) -> None:
        self._disarm(pair)
        if pair.ready <= self.sim.now and not self.defer_swaps and not pair.doomed:
            self._deliver(pair)
        else:
            self.in_flight[pair] = None
            self.sim.schedule_at(max(pair.ready, self.sim.now), self._deliver, pair, True, priority=PRIORITY_DELIVER)

    def _deliver(self, pair: Pair, scheduled: bool = False) -> None:
        if scheduled:
            self.in_flight.pop(pair, None)
        if not pair.alive:
            return
        if pair.doomed or not self.active:
            if pair.doomed:
                self.stats.doomed_discards += 1
            self._release(pair)
            return
        now = self.sim.now
        pair.decay_to(now, self.seconds_per_tick)
        if self.fidelity_min is not None and pair.weights[0] < self.fidelity_min:
            self.stats.below_fidelity += 1
            self._release(pair)
            return
        stats = self.stats
        stats.delivery_ticks.append(now)
        stats.delivered_weights.append(pair.weights)
        stats.waiting_ticks.append(now - self.last_delivery)
        self.last_delivery = now
        if self.consumer is not None:
            self.consumer(self, pair, now)
        self._release(pair)

    def _disarm(self, pair: Pair) -> None:
        if pair.timer is not None:
            self.sim.cancel(pair.timer)
            pair.timer = None

    def _unhold(self, pair: Pair) -> None:
        if pair.left > 0:
            held = self.holding_right[pair.left]
            if pair in held:
                held.remove(pair)
        if pair.right < self.n:
            held = self.holding_left[pair.right]
            if pair in held:
                held.remove(pair)

    def _release(self, pair: Pair) -> None:
        """Free both end memories of a pair that is gone (measured, discarded, delivered)."""
        pair.alive = False
        self._disarm(pair)
        if pair.doomed:
            self.in_flight.pop(pair, None)
        if pair.pool_l is not None:
            pair.pool_l.give()
        if pair.pool_r is not None:
            pair.pool_r.give()
        self._uncover(pair)
        self._refill(pair.left)
        self._refill(pair.right - 1)
        if not self.regenerate_covered:
            for s in range(pair.left + 1, pair.right - 1):
                self._refill(s)

    def _free_far_ends(self, a: Pair, b: Pair) -> None:
        """A failed swap whose far ends learn it at once (no message delay): free their qubits now."""
        for pool in (a.pool_l, b.pool_r):
            if pool is not None:
                pool.give()
        self._uncover_span(a.left, b.right)
        self._refill(a.left)
        self._refill(b.right - 1)
        if not self.regenerate_covered:
            for s in range(a.left + 1, b.right - 1):
                self._refill(s)

    def _uncover(self, pair: Pair) -> None:
        self._uncover_span(pair.left, pair.right)

    def _uncover_span(self, left: int, right: int) -> None:
        if self.regenerate_covered:
            return
        covered = self.covered
        for s in range(left, right):
            covered[s] -= 1

    def _refill(self, s: int) -> None:
        if 0 <= s < self.n:
            self.generators[s].refill()

    # ---- activation, inspection ---------------------------------------------------------------------

    def drop_everything(self) -> int:
        """Deactivation: cancel this circuit's own generation and discard every pair it holds or waits on (its
        pending messages find them gone); returns how many pairs were lost."""
        for gen in self.generators:
            if gen.owner is self:
                for proc in list(gen.processes):
                    gen.cancel(proc)
        pairs = self.tracked_pairs()
        for pair in pairs:
            self.drop(pair, refill=False)
        return len(pairs)

    def drop(self, pair: Pair, refill: bool = True) -> None:
        """Discard a pair this circuit tracks, wherever it is (held, purifying, awaiting a message)."""
        if not pair.alive:
            return
        self._unhold(pair)
        queue = self.waiting_purification.get((pair.left, pair.right))
        if queue and pair in queue:
            queue.remove(pair)
        self.in_flight.pop(pair, None)
        pair.alive = False
        self._disarm(pair)
        for pool in (pair.pool_l, pair.pool_r):
            if pool is not None:
                pool.give()
        self._uncover(pair)
        if refill:
            self._refill(pair.left)
            self._refill(pair.right - 1)

    def tracked_pairs(self) -> list[Pair]:
        tracked: dict[int, Pair] = {id(p): p for p in self.in_flight}
        for lists in (self.holding_left, self.holding_right, list(self.waiting_purification.values())):
            for held in lists:
                tracked.update((id(p), p) for p in held)
        return list(tracked.values())

    def has_pending_work(self) -> bool:
        """Whether any generation, message or timer can still change this circuit's state."""
        if self.in_flight or any(gen.processes for gen in self.generators):
            return True
        return any(p.timer is not None for p in self.tracked_pairs())
