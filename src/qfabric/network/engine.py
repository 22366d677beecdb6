"""The network engine: links that herald pairs on free memories, circuits that swap them into end-to-end pairs.

A :class:`Network` holds nodes and links (each link end has its own memory qubits) and the forwarding state
the control plane installs (:meth:`Network.install_route`). A :class:`~qfabric.network.circuit.Circuit` is
one path through it with its protocol (swap scheme, purification, cut-offs); many circuits share links,
repeaters and memories. Failed attempts cost nothing: each memory pair that generates draws its number of
attempts to the next success from the geometric distribution, and one event is scheduled per success.

How circuits share a link's memories is the :class:`~qfabric.network.models.Multiplexing` mode:
``statistical`` shares them (a pair heralded on a link that several active circuits use stays unbound
until one of them uses it, the longest-waiting partner first: with one hub and a circuit between every two
users this is the quantum switch); ``buffer-space`` splits them among the active circuits.

A two-link network serving one circuit (``tests/network/test_network.py`` runs this)::

    sim = Simulator(seed=1)
    net = Network(sim, seconds_per_tick=1.0)
    fresh = LinkModel(success_probability=0.5, attempt_period=1, herald_delay=1, state=(1.0, 0.0, 0.0, 0.0))
    for a, b in [("a", "r"), ("r", "b")]:
        net.add_link(f"{a}-{b}", a, b, fresh)
    net.install_route("a-to-b", ["a", "r", "b"])
    circuit = net.open_circuit("a-to-b", "a", Protocol(scheme="swap-asap"))
    net.activate(circuit)
    sim.run(until=1000)
    len(circuit.stats.delivery_ticks)      # about 375: one pair per 8/3 ticks, (3 - 2p) / (p (2 - p))

This module, :mod:`~qfabric.network.circuit` and :mod:`~qfabric.network.models` are compiled with mypyc when
qfabric is installed (``setup.py``): keep them fully typed (``mypy`` runs as part of the build), and keep
doctests out of them (a compiled module has none; their examples are tests).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from qfabric.errors import ParameterError
from qfabric.hardware import Memory
from qfabric.network.circuit import PRIORITY_HERALD, Circuit, Pair
from qfabric.network.models import LinkModel, Multiplexing, NodeModel, Protocol, QubitSelection, _enum
from qfabric.sim import Event, Simulator


class MemoryPool:
    """The memory qubits one node devotes to one link (or, under buffer-space multiplexing, one circuit's share).

    ``busy_ticks`` integrates the number of qubits in use over time (memory utilisation).
    """

    __slots__ = ("node", "link", "memory", "rates", "capacity", "free", "busy_ticks", "_last", "_sim", "generator")

    def __init__(self, sim: Simulator, node: str, link: Link | None, memory: Memory, capacity: int):
        self._sim = sim
        self.node, self.link, self.memory = node, link, memory
        self.rates = memory.decay_rates
        self.capacity = self.free = capacity
        self.busy_ticks = 0
        self._last = sim.now
        self.generator: Generator | None = None

    def _account(self) -> None:
        now = self._sim.now
        self.busy_ticks += (self.capacity - self.free) * (now - self._last)
        self._last = now

    def take(self) -> None:
        self._account()
        self.free -= 1

    def give(self) -> None:
        self._account()
        self.free += 1

    def resize(self, capacity: int) -> None:
        """Change the capacity; qubits in use stay in use (``free`` may go negative until they are freed)."""
        self._account()
        self.free += capacity - self.capacity
        self.capacity = capacity

    @property
    def in_use(self) -> int:
        return self.capacity - self.free


@dataclass
class LinkStats:
    attempts: int = 0
    successes: int = 0
    attempt_ticks: int = 0  # memory-pair time spent attempting
    purifications: int = 0
    purifications_failed: int = 0
    unbound_discards: int = 0  # shared pairs no circuit used before the cut-off


class Link:
    """An elementary link: its model, the memory pools at its two ends, its generation and statistics."""

    def __init__(self, network: Network, name: str, index: int, a: str, b: str, model: LinkModel,
                 pool_a: MemoryPool, pool_b: MemoryPool, stream: str):
        self.network, self.name, self.index, self.a, self.b, self.model = network, name, index, a, b, model
        self.pool_a, self.pool_b = pool_a, pool_b
        self.rng = network.sim.rng(stream)
        self.stats = LinkStats()
        self.hop = model.classical_hop
        self.circuits: list[Circuit] = []  # active circuits whose path crosses the link
        self.unbound: list[Pair] = []  # statistical multiplexing: pairs no circuit has used yet
        self.generator = Generator(network, self, pool_a, pool_b, owner=None)
        self.up = True  # a cut fibre: no generation, no classical messages across it

    def __repr__(self) -> str:
        return f"Link({self.name!r}, {self.a!r}-{self.b!r})"

    def pool_at(self, node: str) -> MemoryPool:
        return self.pool_a if node == self.a else self.pool_b

    def generators(self) -> list[Generator]:
        """The generators working on this link now: the shared one, or each active circuit's (buffer-space)."""
        if self.network.multiplexing is Multiplexing.STATISTICAL:
            return [self.generator]
        return [c.generators[c.segment_of[self]] for c in self.circuits]


class _Process:
    """A memory pair trying to generate: one pending herald event."""

    __slots__ = ("generator", "started", "attempts", "event")

    def __init__(self, generator: Generator, started: int, attempts: int):
        self.generator, self.started, self.attempts = generator, started, attempts
        self.event: Event | None = None


class Generator:
    """Heralded generation on one link over two memory pools; ``owner`` is the circuit it works for, if one."""

    __slots__ = ("network", "link", "pool_a", "pool_b", "owner", "processes", "_segment")

    def __init__(self, network: Network, link: Link, pool_a: MemoryPool, pool_b: MemoryPool,
                 owner: Circuit | None, segment: int = -1):
        self.network, self.link, self.pool_a, self.pool_b, self.owner = network, link, pool_a, pool_b, owner
        self._segment = segment
        self.processes: list[_Process] = []
        pool_a.generator = pool_b.generator = self

    def refill(self) -> None:
        """Start generating on every free memory pair while an active circuit wants pairs here."""
        pool_a, pool_b = self.pool_a, self.pool_b
        if pool_a.free <= 0 or pool_b.free <= 0:
            return
        link = self.link
        if not link.up:
            return
        owner = self.owner
        if owner is None:
            circuits = link.circuits
            if not circuits:
                return
            owner = circuits[0] if len(circuits) == 1 else None
            segment = owner.segment_of[link] if owner is not None else -1
        else:
            if not owner.active:
                return
            segment = self._segment
        sim = self.network.sim
        model = link.model
        p, period, delay = model.success_probability, model.attempt_period, model.herald_delay
        geometric = link.rng.geometric
        herald = self.network._herald
        while pool_a.free > 0 and pool_b.free > 0:
            if owner is not None and not owner.regenerate_covered \
                    and owner.covered[segment] + len(self.processes) >= min(pool_a.capacity, pool_b.capacity):
                return
            pool_a.take()
            pool_b.take()
            k = int(geometric(p))
            now = sim.now
            proc = _Process(self, now, k)
            proc.event = sim.schedule_at(now + (k - 1) * period + delay, herald, proc, priority=PRIORITY_HERALD)
            self.processes.append(proc)

    def attempts_so_far(self, proc: _Process) -> int:
        return min(proc.attempts, (self.network.sim.now - proc.started) // self.link.model.attempt_period)

    def cancel(self, proc: _Process, refill: bool = False) -> None:
        """Stop a generation in progress and free its memories (its attempts so far are counted)."""
        self.network.sim.cancel(proc.event)
        attempts = self.attempts_so_far(proc)
        stats = self.link.stats
        stats.attempts += attempts
        stats.attempt_ticks += attempts * self.link.model.attempt_period
        self.processes.remove(proc)
        self.pool_a.give()
        self.pool_b.give()
        if refill:
            self.refill()


def weighted_split(total: int, weights: list[float]) -> list[int]:
    """``total`` whole units split in proportion to ``weights`` by largest remainders (ties to the first):
    ``weighted_split(4, [3.0, 1.0])`` is ``[3, 1]``, ``weighted_split(2, [1.0, 1.0, 1.0])`` is ``[1, 1, 0]``."""
    if not weights:
        return []
    whole = sum(weights)
    exact = [total * w / whole for w in weights]
    shares = [math.floor(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - shares[i]), i))
    for i in order[:total - sum(shares)]:
        shares[i] += 1
    return shares


class Network:
    """Nodes, links with memories, forwarding state, and the circuits running over them."""

    def __init__(self, sim: Simulator, *, multiplexing: Multiplexing | str = Multiplexing.STATISTICAL,
                 qubit_selection: QubitSelection | str = QubitSelection.OLDEST, seconds_per_tick: float = 1e-12):
        self.sim = sim
        self.multiplexing = _enum(Multiplexing, multiplexing, "multiplexing")
        self.qubit_selection = _enum(QubitSelection, qubit_selection, "qubit_selection")
        self.seconds_per_tick = seconds_per_tick
        self.nodes: dict[str, NodeModel] = {}
        self.links: list[Link] = []
        self._link_at: dict[frozenset, Link] = {}
        self.forwarding: dict[str, dict[str, tuple[str | None, str | None]]] = {}
        self.circuits: list[Circuit] = []
        self.selection_rng = sim.rng("network/qubit-selection")
        self.links_down = 0

    # ---- building ---------------------------------------------------------------------------------

    def add_node(self, name: str, model: NodeModel | None = None) -> None:
        self.nodes[name] = model or NodeModel()
        self.forwarding.setdefault(name, {})

    def add_link(self, name: str, a: str, b: str, model: LinkModel, *, memory_a: Memory | None = None,
                 memory_b: Memory | None = None, capacity_a: int | None = None, capacity_b: int | None = None,
                 stream: str | None = None) -> Link:
        """A link between ``a`` and ``b`` (nodes are added if new); each end devotes ``capacity_*`` qubits
        (default ``model.capacity``) with that end's memory model (default: ideal)."""
        if a == b:
            raise ParameterError("link", (a, b), "two different nodes")
        key = frozenset((a, b))
        if key in self._link_at:
            raise ParameterError("link", name, f"one link between {a!r} and {b!r} (there is already "
                                 f"{self._link_at[key].name!r})")
        for node in (a, b):
            if node not in self.nodes:
                self.add_node(node)
        caps = [model.capacity if c is None else c for c in (capacity_a, capacity_b)]
        if any(not isinstance(c, int) or c < 0 for c in caps):
            raise ParameterError("capacity", caps, "whole numbers of memory qubits >= 0")
        pool_a = MemoryPool(self.sim, a, None, memory_a or Memory(), caps[0])
        pool_b = MemoryPool(self.sim, b, None, memory_b or Memory(), caps[1])
        link = Link(self, name, len(self.links), a, b, model, pool_a, pool_b, stream or f"link/{name}")
        pool_a.link = pool_b.link = link
        self.links.append(link)
        self._link_at[key] = link
        return link

    def link_between(self, a: str, b: str) -> Link:
        try:
            return self._link_at[frozenset((a, b))]
        except KeyError:
            raise ParameterError("path", (a, b), "consecutive nodes joined by a link") from None

    def install_route(self, circuit: str, path: list[str]) -> None:
        """Write forwarding entries ``circuit -> (upstream, downstream)`` at every node of ``path``."""
        if len(path) < 2 or len(set(path)) != len(path):
            raise ParameterError("path", path, "at least two distinct nodes")
        for a, b in zip(path, path[1:], strict=False):
            self.link_between(a, b)
        for i, node in enumerate(path):
            self.forwarding[node][circuit] = (path[i - 1] if i else None, path[i + 1] if i + 1 < len(path) else None)

    def route_of(self, circuit: str, head: str) -> list[str]:
        """The path a circuit follows from its head end, read hop by hop from the forwarding state."""
        path, node = [head], head
        while True:
            entry = self.forwarding.get(node, {}).get(circuit)
            if entry is None:
                raise ParameterError("circuit", circuit, f"forwarding state installed at {node!r}")
            downstream = entry[1]
            if downstream is None:
                return path
            node = downstream
            path.append(node)

    def open_circuit(self, name: str, head: str, protocol: Protocol, *,
                     consumer: Callable[[Circuit, Pair, int], None] | None = None,
                     stream: str | None = None, weight: float = 1.0) -> Circuit:
        """A circuit over the route installed for ``name`` (inactive until :meth:`activate`); ``weight`` is its
        share of contended memories against the other circuits on a link."""
        if not weight > 0:
            raise ParameterError("weight", weight, "a positive share")
        circuit = Circuit(self, name, self.route_of(name, head), protocol, consumer=consumer,
                          stream=stream or f"circuit/{name}")
        circuit.weight = weight
        self.circuits.append(circuit)
        return circuit

    # ---- running ----------------------------------------------------------------------------------

    def activate(self, circuit: Circuit) -> None:
        """Start serving a circuit: its links generate for it from now on."""
        if circuit.active:
            return
        circuit.active = True
        circuit.last_delivery = self.sim.now
        for link in circuit.links:
            link.circuits.append(circuit)
        if self.multiplexing is Multiplexing.BUFFER_SPACE:
            circuit.make_private_pools()
            for link in circuit.links:
                self._split_buffers(link)
        for s, gen in enumerate(circuit.generators):
            gen.refill()
            if self.multiplexing is Multiplexing.STATISTICAL:
                circuit.offer_unbound(s)

    def deactivate(self, circuit: Circuit) -> int:
        """Stop serving a circuit: its pairs are discarded and its memories go back to the others. Returns the
        pairs lost."""
        if not circuit.active:
            return 0
        circuit.active = False
        lost = circuit.drop_everything()
        for link in circuit.links:
            link.circuits.remove(circuit)
            if self.multiplexing is Multiplexing.STATISTICAL and not link.circuits:
                for proc in list(link.generator.processes):
                    link.generator.cancel(proc)
                for pair in list(link.unbound):
                    self.discard_unbound(pair)
        if self.multiplexing is Multiplexing.BUFFER_SPACE:
            for pool in circuit.private_pools():
                pool.resize(0)
            for link in circuit.links:
                self._split_buffers(link)
        for link in circuit.links:
            for gen in link.generators():
                gen.refill()
        return lost

    def _split_buffers(self, link: Link) -> None:
        """Buffer-space: each active circuit on ``link`` owns a share of each end's qubits in proportion to its
        weight (largest remainders, ties to the circuits activated first); a circuit left without a qubit notes
        the link in ``no_memory_share``."""
        for c in link.circuits:
            c.no_memory_share.discard(link.name)
        for pool in (link.pool_a, link.pool_b):
            shares = weighted_split(pool.capacity, [c.weight for c in link.circuits])
            for c, share in zip(link.circuits, shares, strict=True):
                s = c.segment_of[link]
                private = c.pool_right[s] if c.nodes[s] == pool.node else c.pool_left[s + 1]
                assert private is not None
                private.resize(share)
                if share == 0:
                    c.no_memory_share.add(link.name)

    def finish(self) -> None:
        """Count the attempts of generation still in progress and close the memory accounts (at the end)."""
        now = self.sim.now
        for gen in self._all_generators():
            for proc in gen.processes:
                attempts = gen.attempts_so_far(proc)
                gen.link.stats.attempts += attempts
                gen.link.stats.attempt_ticks += attempts * gen.link.model.attempt_period
                proc.attempts -= attempts
                proc.started = now
        for pool in self._all_pools():
            pool._account()

    def _all_generators(self) -> list[Generator]:
        if self.multiplexing is Multiplexing.STATISTICAL:
            return [link.generator for link in self.links]
        return [g for c in self.circuits if c.private_pools() for g in c.generators]

    def _herald(self, proc: _Process) -> None:
        gen = proc.generator
        gen.processes.remove(proc)
        link = gen.link
        stats = link.stats
        stats.attempts += proc.attempts
        stats.attempt_ticks += proc.attempts * link.model.attempt_period
        stats.successes += 1
        model = link.model
        now = self.sim.now
        pair = Pair(0, 1, model.state, now - model.stored_before_herald, now, now, gen.pool_a, gen.pool_b, now)
        owner = gen.owner
        if owner is None:
            circuits = link.circuits
            if len(circuits) == 1:
                owner = circuits[0]
            elif not circuits:
                self._release_unbound(pair)
                return
            else:
                self._offer(link, pair)
                return
        owner.herald(pair, owner.segment_of[link])

    # ---- faults: the physical plane changes under the circuits ---------------------------------------

    def set_link_up(self, link: Link, up: bool) -> None:
        """Cut (``up=False``) or repair a link's fibre. A cut stops its generation (the attempts made so far
        count) and every classical message that would cross it; pairs already stored stay where they are."""
        if link.up == up:
            return
        link.up = up
        self.links_down += -1 if up else 1
        if not up:
            self._stop_generation(link)
        else:
            for gen in link.generators():
                gen.refill()

    def set_link_model(self, link: Link, model: LinkModel) -> None:
        """New physics for a link (extra loss, a weaker detector): generation restarts with it (attempts are
        memoryless, so restarting is exact)."""
        self._stop_generation(link)
        link.model = model
        for gen in link.generators():
            gen.refill()

    def set_memory(self, node: str, memory: Memory) -> None:
        """New memories at ``node`` (a coherence drop or its repair): stored pairs decohere with the old ones
        up to now, with the new ones from now on."""
        now = self.sim.now
        for circuit in self.circuits:
            for pair in circuit.tracked_pairs():
                pair.decay_to(now, self.seconds_per_tick)
        for link in self.links:
            for pair in link.unbound:
                pair.decay_to(now, self.seconds_per_tick)
        for pool in self._all_pools() + [p for link in self.links for p in (link.pool_a, link.pool_b)]:
            if pool.node == node:
                pool.memory = memory
                pool.rates = memory.decay_rates

    def set_node_up(self, node: str, up: bool) -> int:
        """A node fails (``up=False``: its links are cut and every pair with a half in its memories is lost) or
        comes back. Returns the pairs lost."""
        lost = 0
        incident = [link for link in self.links if node in (link.a, link.b)]
        if not up:
            for circuit in self.circuits:
                for pair in circuit.tracked_pairs():
                    if any(pool is not None and pool.node == node for pool in (pair.pool_l, pair.pool_r)):
                        circuit.drop(pair)
                        lost += 1
            for link in incident:
                for pair in list(link.unbound):
                    self.discard_unbound(pair)
                    lost += 1
        for link in incident:
            self.set_link_up(link, up)
        return lost

    def _stop_generation(self, link: Link) -> None:
        gens = [link.generator] + [c.generators[c.segment_of[link]] for c in self.circuits if link in c.segment_of]
        for gen in {id(g): g for g in gens}.values():
            for proc in list(gen.processes):
                gen.cancel(proc)

    def uninstall_route(self, circuit: str) -> None:
        """Remove a circuit's forwarding entries from every node."""
        for table in self.forwarding.values():
            table.pop(circuit, None)

    # ---- statistical multiplexing: pairs shared by several circuits ---------------------------------

    def _offer(self, link: Link, pair: Pair) -> None:
        """A pair heralded on a link shared by several circuits: give it to the longest-waiting use (waits scaled
        by the circuits' weights), else keep it."""
        pair.link = link
        best: Circuit | None = None
        starter: Circuit | None = None
        best_key = (math.inf, math.inf)
        starter_key = math.inf
        now = float(self.sim.now)
        for circuit in link.circuits:
            since = circuit.waiting_since(link)
            if since is None:
                continue
            served = float(circuit.last_shared)
            if since == math.inf:  # it could only start a purification: the one served longest ago
                if served < starter_key:
                    starter, starter_key = circuit, served
            else:  # the longest weighted wait; ties to the one served longest ago
                key = ((since - now) * circuit.weight, served)
                if key < best_key:
                    best, best_key = circuit, key
        chosen = best if best is not None else starter
        pair.decay_to(self.sim.now, self.seconds_per_tick)
        if chosen is not None:
            chosen.last_shared = self.sim.now
            chosen.bind(pair, link)
            chosen.herald(pair, chosen.segment_of[link], decayed=True)
            return
        pair.since = self.sim.now
        link.unbound.append(pair)
        cutoffs = [c.unbound_cutoff() for c in link.circuits]
        cutoff = None if None in cutoffs else max(c for c in cutoffs if c is not None)
        if cutoff is not None:
            pair.timer = self.sim.schedule(cutoff, self._expire_unbound, pair, priority=3_000_000)

    def _expire_unbound(self, pair: Pair) -> None:
        pair.timer = None
        if pair.alive and pair.circuit is None:
            assert pair.link is not None
            pair.link.stats.unbound_discards += 1
            self.discard_unbound(pair)

    def discard_unbound(self, pair: Pair) -> None:
        link = pair.link
        assert link is not None
        link.unbound.remove(pair)
        if pair.timer is not None:
            self.sim.cancel(pair.timer)
            pair.timer = None
        self._release_unbound(pair)
        link.generator.refill()

    def _release_unbound(self, pair: Pair) -> None:
        pair.alive = False
        for pool in (pair.pool_l, pair.pool_r):
            if pool is not None:
                pool.give()

    # ---- inspection ---------------------------------------------------------------------------------

    def audit(self) -> list[str]:
        """Memory accounting problems (none in a correct run): every qubit in use belongs to a generation in
        progress or to a pair the engine still tracks."""
        users = {id(pool): 0 for pool in self._all_pools()}
        problems = []
        for gen in self._all_generators():
            for _ in gen.processes:
                users[id(gen.pool_a)] += 1
                users[id(gen.pool_b)] += 1
        for link in self.links:
            for pair in link.unbound:
                users[id(pair.pool_l)] += 1
                users[id(pair.pool_r)] += 1
        for c in self.circuits:
            for pair in c.tracked_pairs():
                if not pair.alive:
                    problems.append(f"{c.name}: pair {pair.left}-{pair.right} is tracked but dead")
                for pool in (pair.pool_l, pair.pool_r):
                    if pool is not None:
                        users[id(pool)] += 1
        for pool in self._all_pools():
            if pool.in_use != users[id(pool)]:
                problems.append(f"{pool.node} facing {pool.link and pool.link.name}: {pool.in_use} qubits in use, "
                                f"{users[id(pool)]} accounted for")
        return problems

    def _all_pools(self) -> list[MemoryPool]:
        pools = [p for link in self.links for p in (link.pool_a, link.pool_b)]
        if self.multiplexing is Multiplexing.BUFFER_SPACE:
            pools = [p for c in self.circuits for p in c.private_pools()]
        return pools

    def frozen_circuits(self) -> list[Circuit]:
        """Active circuits for which nothing is pending: no generation on their links, no message, no timer.

        Such a circuit can move again only if another circuit frees memory on its links; a network whose
        active circuits are all frozen has deadlocked."""
        return [c for c in self.circuits if c.active and not c.has_pending_work()]

    def memory_busy_ticks(self) -> dict[tuple[str, str], int]:
        """Integrated qubits in use per (node, link name), summed over circuits' shares."""
        out: dict[tuple[str, str], int] = {}
        for link in self.links:
            for pool in (link.pool_a, link.pool_b):
                out[(pool.node, link.name)] = pool.busy_ticks
        if self.multiplexing is Multiplexing.BUFFER_SPACE:
            out = dict.fromkeys(out, 0)
            for c in self.circuits:
                for pool in c.private_pools():
                    assert pool.link is not None
                    out[(pool.node, pool.link.name)] += pool.busy_ticks
        return out

