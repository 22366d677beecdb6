"""Faults of the physical plane, and how the control plane learns of them.

A fault list holds explicit faults (a fibre cut and its repair, extra loss on a link, a detector efficiency
drop, a memory coherence drop at a node, a node down) and random ones (:func:`random_faults`: per-link mean time
between failures and to repair). The :class:`FaultInjector` applies each to the network at its time. The
controller learns of a cut only through the network: the two ends of every link exchange heartbeats over its
classical channel every ``period_s`` and declare it down after ``misses`` missing ones (:class:`Heartbeats`);
the first to notice reports to the controller over the classical network, along the shortest path still up.
Degradations that leave a link working (extra loss, weaker detectors or memories) are not detected: they show
in the requests' service levels.

>>> hb = Heartbeats(period_s=0.01, misses=3)
>>> round(hb.detection_s(cut_s=1.004, one_way_s=0.0001), 6)   # last heartbeat in at 1.0001, three missed
1.0301
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import networkx as nx
import numpy as np

from qfabric.errors import ParameterError
from qfabric.network import Network


class FaultKind(StrEnum):
    CUT = "cut"  # a fibre cut: no generation, no classical messages across the link
    LOSS = "loss"  # extra loss on a link, dB
    DETECTOR = "detector"  # the link's detector efficiency multiplied by a factor
    MEMORY = "memory"  # a node's memory coherence times multiplied by a factor
    NODE = "node"  # a node down: its links cut, its stored pairs lost


@dataclass(frozen=True)
class Fault:
    """One fault on ``target`` (a link or, for memory and node faults, a node) from ``start_s`` until ``end_s``
    (``None``: not repaired during the run)."""

    kind: FaultKind | str
    target: str
    start_s: float
    end_s: float | None = None
    extra_loss_db: float | None = None
    factor: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", FaultKind(self.kind))
        if not (math.isfinite(self.start_s) and self.start_s >= 0):
            raise ParameterError("start_s", self.start_s, "a time >= 0")
        if self.end_s is not None and not self.end_s > self.start_s:
            raise ParameterError("end_s", self.end_s, f"a repair after the fault (start_s {self.start_s:g})")
        if self.kind is FaultKind.LOSS and not (self.extra_loss_db is not None and self.extra_loss_db > 0):
            raise ParameterError("extra_loss_db", self.extra_loss_db, "a positive loss in dB for a loss fault")
        if self.kind in (FaultKind.DETECTOR, FaultKind.MEMORY) and not (
                self.factor is not None and 0 < self.factor <= 1):
            raise ParameterError("factor", self.factor, "a factor in (0, 1] for a detector or memory fault")


def random_faults(links: list[str], *, mtbf_s: float, mttr_s: float, duration_s: float,
                  rng: np.random.Generator) -> list[Fault]:
    """Cuts of every link as an alternating renewal process: up for an exponential time of mean ``mtbf_s``, then
    down for an exponential time of mean ``mttr_s``; drawn in link order from ``rng``, so reproducible.

    >>> faults = random_faults(["a-b"], mtbf_s=10, mttr_s=1, duration_s=100, rng=np.random.default_rng(1))
    >>> all(f.kind == "cut" and f.target == "a-b" for f in faults), len(faults) > 3
    (True, True)
    """
    if not (mtbf_s > 0 and mttr_s > 0 and duration_s > 0):
        raise ParameterError("mtbf_s/mttr_s", (mtbf_s, mttr_s), "positive times")
    faults = []
    for link in links:
        t = float(rng.exponential(mtbf_s))
        while t < duration_s:
            repair = t + float(rng.exponential(mttr_s))
            faults.append(Fault(FaultKind.CUT, link, t, repair if repair < duration_s else None))
            t = repair + float(rng.exponential(mtbf_s))
    return sorted(faults, key=lambda f: (f.start_s, f.target))


@dataclass(frozen=True)
class Condition:
    """A link's state over ``[start_s, end_s)``: up or cut, with its extra loss and detector factor."""

    start_s: float
    end_s: float
    up: bool
    extra_loss_db: float = 0.0
    detector_factor: float = 1.0


def link_conditions(faults: list[Fault], link: str, ends: tuple[str, str], until_s: float) -> list[Condition]:
    """How the faults leave ``link`` (between the nodes ``ends``) over ``[0, until_s)``: consecutive intervals
    of constant state (a cut of the link or a node fault at an end takes it down).

    >>> faults = [Fault("loss", "ab", 2.0, 6.0, extra_loss_db=3.0), Fault("node", "b", 4.0, 5.0)]
    >>> [(c.start_s, c.up, c.extra_loss_db) for c in link_conditions(faults, "ab", ("a", "b"), 10.0)]
    [(0.0, True, 0.0), (2.0, True, 3.0), (4.0, False, 3.0), (5.0, True, 3.0), (6.0, True, 0.0)]
    """
    mine = [f for f in faults if (f.kind in (FaultKind.CUT, FaultKind.LOSS, FaultKind.DETECTOR) and f.target == link)
            or (f.kind is FaultKind.NODE and f.target in ends)]
    points = sorted({0.0, until_s} | {t for f in mine for t in (f.start_s, f.end_s)
                                      if t is not None and 0.0 < t < until_s})
    out: list[Condition] = []
    for start, end in zip(points, points[1:], strict=False):
        active = [f for f in mine if f.start_s <= start and (f.end_s is None or f.end_s > start)]
        state = (not any(f.kind in (FaultKind.CUT, FaultKind.NODE) for f in active),
                 math.fsum(f.extra_loss_db for f in active if f.kind is FaultKind.LOSS),
                 float(math.prod(f.factor for f in active if f.kind is FaultKind.DETECTOR)))
        if out and (out[-1].up, out[-1].extra_loss_db, out[-1].detector_factor) == state:
            out[-1] = Condition(out[-1].start_s, end, *state)
        else:
            out.append(Condition(start, end, *state))
    return out


@dataclass(frozen=True)
class Heartbeats:
    """Each end of a link sends a heartbeat every ``period_s`` (in phase: at multiples of it); the other end
    declares the link down after ``misses`` periods without one.

    A cut at ``t`` is detected at ``(last heartbeat through) + misses * period``, so in
    ``(t + (misses - 1) period, t + misses period]``; a repair at ``t`` is seen when the first heartbeat sent at
    or after ``t`` arrives. No heartbeat is simulated as an event: only the moments they change something are.
    """

    period_s: float = 0.01
    misses: int = 3

    def __post_init__(self) -> None:
        if not self.period_s > 0:
            raise ParameterError("period_s", self.period_s, "a positive heartbeat period")
        if not (isinstance(self.misses, int) and self.misses >= 1):
            raise ParameterError("misses", self.misses, "a whole number >= 1")

    def detection_s(self, cut_s: float, one_way_s: float) -> float:
        sent = math.floor((cut_s - one_way_s) / self.period_s) * self.period_s  # the last one through
        return sent + one_way_s + self.misses * self.period_s

    def repair_detection_s(self, repair_s: float, one_way_s: float) -> float:
        return math.ceil(repair_s / self.period_s) * self.period_s + one_way_s


def central_node(graph: nx.Graph, weight: str = "delay_s") -> str:
    """The node with the least total classical delay to all others (ties: node order): where a controller sits.

    >>> central_node(nx.path_graph(["a", "b", "c"]))
    'b'
    """
    best, best_total = None, math.inf
    for node in graph.nodes:
        lengths = nx.single_source_dijkstra_path_length(graph, node, weight=weight)
        total = sum(lengths.values())
        if total < best_total:
            best, best_total = node, total
    return best


@dataclass
class FaultRecord:
    """What happened to one fault: when it struck and was repaired, and when the controller learned of each."""

    fault: Fault
    detected_s: float | None = None
    repair_detected_s: float | None = None
    pairs_lost: int = 0


class FaultInjector:
    """Applies faults to a network at their times and tells the controller what it can learn of them.

    ``degrade(link_name, extra_loss_db, detector_factor)`` returns the link's model under that degradation (the
    scenario knows the hardware); ``memory_of(node, factor)`` the node's memory with its coherence times scaled.
    ``on_down(link, detected_s)`` / ``on_up(link, detected_s)`` are the controller's handlers, called when the
    report of a cut or a repair reaches it.
    """

    def __init__(self, network: Network, faults: list[Fault], *, heartbeats: Heartbeats, controller: str,
                 degrade: Callable | None = None, memory_of: Callable | None = None,
                 on_down: Callable[[str, float], None] | None = None,
                 on_up: Callable[[str, float], None] | None = None):
        self.network, self.sim = network, network.sim
        self.heartbeats, self.controller = heartbeats, controller
        self.degrade, self.memory_of = degrade, memory_of
        self.on_down, self.on_up = on_down, on_up
        self.records = [FaultRecord(f) for f in sorted(faults, key=lambda f: f.start_s)]
        self.log: list[dict] = []
        self._link = {link.name: link for link in network.links}
        self._loss: dict[str, float] = {}
        self._detector: dict[str, float] = {}
        self._memory: dict[str, float] = {}
        self._cuts: dict[str, int] = {}  # overlapping cuts of one link (a node fault and a fibre cut)
        self._nodes_down: set[str] = set()
        self._classical = self._classical_graph()  # the classical links up now, kept as links go and come
        for record in self.records:
            f = record.fault
            if f.kind in (FaultKind.MEMORY, FaultKind.NODE):
                if f.target not in network.nodes:
                    raise ParameterError("target", f.target, f"a node of the network for a {f.kind.value} fault")
            elif f.target not in self._link:
                raise ParameterError("target", f.target, f"a link of the network for a {f.kind.value} fault")

    def start(self) -> None:
        spt = self.network.seconds_per_tick
        for record in self.records:
            self.sim.schedule_at(max(self.sim.now, round(record.fault.start_s / spt)), self._strike, record,
                                 priority=-5)
            if record.fault.end_s is not None:
                self.sim.schedule_at(max(self.sim.now, round(record.fault.end_s / spt)), self._repair, record,
                                     priority=-5)

    def now_s(self) -> float:
        return self.sim.now * self.network.seconds_per_tick

    # ---- applying -------------------------------------------------------------------------------------

    def _strike(self, record: FaultRecord) -> None:
        f = record.fault
        self.log.append({"t_s": self.now_s(), "event": "fault", "kind": f.kind.value, "target": f.target,
                         "detail": self._describe(f)})
        if f.kind is FaultKind.CUT:
            self._cut(f.target, record)
        elif f.kind is FaultKind.NODE:
            record.pairs_lost += self.network.set_node_up(f.target, False)
            self._nodes_down.add(f.target)
            for link in self._incident(f.target):
                self._cuts[link] = self._cuts.get(link, 0) + 1
                if self._classical.has_edge(self._link[link].a, self._link[link].b):
                    self._classical.remove_edge(self._link[link].a, self._link[link].b)
            for link in self._incident(f.target):
                self._report_down(link, record)
        elif f.kind in (FaultKind.LOSS, FaultKind.DETECTOR):
            book = self._loss if f.kind is FaultKind.LOSS else self._detector
            book[f.target] = book.get(f.target, 0.0 if f.kind is FaultKind.LOSS else 1.0)
            if f.kind is FaultKind.LOSS:
                book[f.target] += f.extra_loss_db
            else:
                book[f.target] *= f.factor
            self._apply_degradation(f.target)
        else:
            self._memory[f.target] = self._memory.get(f.target, 1.0) * f.factor
            self._apply_memory(f.target)

    def _repair(self, record: FaultRecord) -> None:
        f = record.fault
        self.log.append({"t_s": self.now_s(), "event": "repair", "kind": f.kind.value, "target": f.target,
                         "detail": ""})
        if f.kind is FaultKind.CUT:
            self._uncut(f.target, record)
        elif f.kind is FaultKind.NODE:
            for link in self._incident(f.target):
                self._uncut(link, record, node_repair=True)
        elif f.kind is FaultKind.LOSS:
            self._loss[f.target] -= f.extra_loss_db
            self._apply_degradation(f.target)
        elif f.kind is FaultKind.DETECTOR:
            self._detector[f.target] /= f.factor
            self._apply_degradation(f.target)
        else:
            self._memory[f.target] /= f.factor
            self._apply_memory(f.target)

    def _cut(self, link: str, record: FaultRecord) -> None:
        self._cuts[link] = self._cuts.get(link, 0) + 1
        if self._cuts[link] == 1:
            self.network.set_link_up(self._link[link], False)
            self._classical.remove_edge(self._link[link].a, self._link[link].b)
            self._report_down(link, record)

    def _uncut(self, link: str, record: FaultRecord, node_repair: bool = False) -> None:
        self._cuts[link] -= 1
        if node_repair and all(self._cuts.get(x, 0) == 0 for x in self._incident(record.fault.target)):
            self.network.set_node_up(record.fault.target, True)
            self._nodes_down.discard(record.fault.target)
        if self._cuts[link] == 0:
            self.network.set_link_up(self._link[link], True)
            this = self._link[link]
            self._classical.add_edge(this.a, this.b, delay_s=this.hop.delay * self.network.seconds_per_tick)
            self._report_up(link, record)

    def _apply_degradation(self, link: str) -> None:
        if self.degrade is None:
            raise ParameterError("degrade", None, "a function giving a degraded link model (loss and detector faults)")
        model = self.degrade(link, self._loss.get(link, 0.0), self._detector.get(link, 1.0))
        self.network.set_link_model(self._link[link], model)

    def _apply_memory(self, node: str) -> None:
        if self.memory_of is None:
            raise ParameterError("memory_of", None, "a function giving a node's degraded memory (memory faults)")
        self.network.set_memory(node, self.memory_of(node, self._memory[node]))

    def _incident(self, node: str) -> list[str]:
        return [link.name for link in self.network.links if node in (link.a, link.b)]

    @staticmethod
    def _describe(f: Fault) -> str:
        if f.kind is FaultKind.LOSS:
            return f"+{f.extra_loss_db:g} dB"
        if f.kind in (FaultKind.DETECTOR, FaultKind.MEMORY):
            return f"x{f.factor:g}"
        return ""

    # ---- what the controller learns -------------------------------------------------------------------

    def _classical_graph(self) -> nx.Graph:
        graph = nx.Graph()
        graph.add_nodes_from(n for n in self.network.nodes if n not in self._nodes_down)
        spt = self.network.seconds_per_tick
        for link in self.network.links:
            if link.up and link.a not in self._nodes_down and link.b not in self._nodes_down:
                graph.add_edge(link.a, link.b, delay_s=link.hop.delay * spt)
        return graph

    def _to_controller_s(self, ends: tuple[str, str]) -> float | None:
        """The classical delay from the nearer of ``ends`` still up to the controller (None: unreachable)."""
        sources = {end for end in ends if end not in self._nodes_down}
        if self.controller in self._nodes_down or not sources:
            return None
        try:
            return nx.multi_source_dijkstra(self._classical, sources, target=self.controller, weight="delay_s")[0]
        except nx.NetworkXNoPath:
            return None

    def _report_down(self, link_name: str, record: FaultRecord) -> None:
        link = self._link[link_name]
        one_way = link.hop.delay * self.network.seconds_per_tick
        detected = self.heartbeats.detection_s(self.now_s(), one_way)
        report = self._to_controller_s((link.a, link.b))
        self.log.append({"t_s": detected, "event": "detected", "kind": "cut", "target": link_name,
                         "detail": f"{self.heartbeats.misses} heartbeats missed"})
        if report is None:
            self.log.append({"t_s": detected, "event": "unreported", "kind": "cut", "target": link_name,
                             "detail": f"no classical path from {link.a} or {link.b} to the controller"})
            return
        told = detected + report
        record.detected_s = told if record.detected_s is None else min(record.detected_s, told)
        if self.on_down is not None:
            spt = self.network.seconds_per_tick
            self.sim.schedule_at(max(self.sim.now, round(told / spt)), self.on_down, link_name, told, priority=-4)

    def _report_up(self, link_name: str, record: FaultRecord) -> None:
        link = self._link[link_name]
        one_way = link.hop.delay * self.network.seconds_per_tick
        seen = self.heartbeats.repair_detection_s(self.now_s(), one_way)
        report = self._to_controller_s((link.a, link.b))
        if report is None:
            return
        told = seen + report
        record.repair_detected_s = told
        if self.on_up is not None:
            spt = self.network.seconds_per_tick
            self.sim.schedule_at(max(self.sim.now, round(told / spt)), self.on_up, link_name, told, priority=-4)
