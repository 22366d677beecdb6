"""The entanglement service: requests in, routes installed as forwarding state, circuits served in time windows.

A :class:`Request` names two nodes, a window and what it wants (a pair count or a target rate, a minimum
fidelity, a protocol). :meth:`EntanglementService.submit` schedules its arrival at its start; then the service
checks the tenant's token and quotas (when it has tenants), computes its paths (:mod:`qfabric.control.routing`)
over the links it knows are up, installs them at the nodes, opens one circuit per path and serves it until its
end; every delivered pair reaches the request's record (its consumer). A refused request keeps its reason.

>>> from qfabric.sim import Simulator
>>> from qfabric.network import LinkModel, Network
>>> sim = Simulator(seed=2)
>>> net = Network(sim, seconds_per_tick=1.0)
>>> link = LinkModel(success_probability=0.2, attempt_period=1, herald_delay=1, state=(0.95, 0.02, 0.02, 0.01))
>>> for a, b in [("a", "r"), ("r", "b"), ("r", "c")]:
...     _ = net.add_link(f"{a}-{b}", a, b, link)
>>> service = EntanglementService(net, seconds_per_tick=1.0)
>>> ab = service.submit(Request("ab", "a", "b", pairs=50))
>>> ac = service.submit(Request("ac", "a", "c", start_s=100, end_s=600))
>>> _ = sim.run(until=2000)
>>> len(ab.delivery_ticks), ab.routes, ac.delivery_ticks[0] >= 100
(50, [['a', 'r', 'b']], True)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import networkx as nx

from qfabric.control.negotiation import Offer, Plan, facts_from_network, negotiate
from qfabric.control.routing import Metric, RoutingError, compute_routes, path_cost
from qfabric.control.slo import SLO, SloMonitor
from qfabric.control.tenants import (
    QuotaBook,
    QuotaExceeded,
    Tenant,
    TokenError,
    UsageLedger,
    preemption_victims,
    verify_token,
)
from qfabric.errors import ParameterError
from qfabric.network import Circuit, Network, Pair, Protocol


@dataclass(frozen=True)
class Request:
    """Entangled pairs between ``source`` and ``target`` for ``tenant`` from ``start_s`` to ``end_s``."""

    name: str
    source: str
    target: str
    tenant: str = "default"
    start_s: float = 0.0
    end_s: float | None = None
    pairs: int | None = None
    rate_hz: float | None = None
    protocol: Protocol = field(default_factory=Protocol)
    path: list[str] | None = None
    paths: int | None = None
    negotiate: bool = False  # choose path, purification and cut-off to meet fidelity_min (and rate_hz)
    if_refused: str = "refuse"  # negotiated and refused: "refuse", or "best-offer" (serve the best plan offered)

    def __post_init__(self) -> None:
        if self.start_s < 0 or (self.end_s is not None and self.end_s <= self.start_s):
            raise ParameterError("end_s", self.end_s, f"a time after start_s ({self.start_s})")
        if self.pairs is not None and self.pairs < 1:
            raise ParameterError("pairs", self.pairs, "a whole number >= 1")
        if self.rate_hz is not None and not self.rate_hz > 0:
            raise ParameterError("rate_hz", self.rate_hz, "a positive rate")
        if self.if_refused not in ("refuse", "best-offer"):
            raise ParameterError("if_refused", self.if_refused, "'refuse' or 'best-offer'")


@dataclass
class RequestRecord:
    """What the service did for one request: its routes, circuits and every pair delivered to it."""

    request: Request
    routes: list[list[str]]  # the routes it is served over now
    circuits: list[Circuit]  # their circuits
    all_routes: list[list[str]] = field(default_factory=list)  # every route it was ever served over
    retired: list[Circuit] = field(default_factory=list)  # circuits of earlier routes
    delivery_ticks: list[int] = field(default_factory=list)
    delivered_weights: list[tuple[float, float, float, float]] = field(default_factory=list)
    delivered_on: list[int] = field(default_factory=list)  # index in all_routes of the route each pair came over
    started_tick: int | None = None
    ended_tick: int | None = None
    completed_tick: int | None = None  # when the pair count was reached
    stalled_since_tick: int | None = None  # every circuit frozen since then (deadlock)
    suspended_since_tick: int | None = None  # no route left (every path crosses a link known to be down)
    reroutes: list[dict] = field(default_factory=list)  # each change of route: when, why, pairs lost
    refused: str | None = None  # why it was not admitted
    paused_since_tick: int | None = None  # its tenant's pairs-per-window quota is used up until the next window
    routed_around: bool = False  # its routes were chosen while some link was known down
    ideal_cost: float | None = None  # the cost of its best routes with every link up
    token: str | None = field(default=None, repr=False)  # the credential it came with
    slo: SLO | None = None  # what it was promised
    protocol: Protocol | None = None  # what its circuits run: the request's, or the negotiated plan's
    offer: Offer | None = None  # the negotiation's answer
    shares: dict[str, float] = field(default_factory=dict)  # link -> share of its capacity reserved
    preempted_by: str | None = None  # the higher-priority request it made room for
    monitor: SloMonitor | None = None  # its service levels, judged from its admission on

    @property
    def active(self) -> bool:
        return self.started_tick is not None and self.ended_tick is None

    @property
    def serving(self) -> bool:
        """Active, with circuits generating (not suspended for want of a route, not paused by a quota)."""
        return self.active and self.suspended_since_tick is None and self.paused_since_tick is None

    @property
    def every_circuit(self) -> list[Circuit]:
        return self.retired + self.circuits


class EntanglementService:
    """Routes, installs and serves requests on a :class:`~qfabric.network.Network`, and reroutes them around
    links the controller learns are down.

    ``graph`` is what routing sees (default: the network's links, with their length and model attributes
    when the caller provides them); ``metric`` and ``paths`` (k shortest) choose the routes. ``events`` logs
    what the service did (arrivals, admissions, refusals, starts, ends, reroutes, suspensions, pauses) with
    simulated times.

    With ``tenants``, every request must name one of them and, if the tenant has a secret, carry a valid
    token (:func:`~qfabric.control.tenants.issue_token`); its quotas hold exactly (:class:`QuotaBook`: a
    request reserves one memory qubit at each end of each link of its paths), its circuits share contended
    memories by its weight, and ``ledger`` meters it all.

    A request submitted with an :class:`~qfabric.control.slo.SLO` gets a monitor at its admission, fed every
    pair and judged every ``check_s`` simulated seconds until its end (:attr:`RequestRecord.monitor`)."""

    def __init__(self, network: Network, graph: nx.Graph | None = None, *, metric: Metric | str = Metric.HOPS,
                 paths: int = 1, seconds_per_tick: float | None = None,
                 on_delivery: Callable[[RequestRecord, Pair, int], None] | None = None,
                 tenants: dict[str, Tenant] | None = None, ledger: UsageLedger | None = None,
                 check_s: float = 1.0):
        self.network = network
        self.sim = network.sim
        self.graph = graph if graph is not None else self._graph_of(network)
        self.metric = Metric(metric)
        self.paths = paths
        self.seconds_per_tick = seconds_per_tick or network.seconds_per_tick
        self.records: dict[str, RequestRecord] = {}
        self.on_delivery = on_delivery
        self.events: list[dict] = []
        self.known_down: set[frozenset] = set()  # links the controller has been told are down
        self._live: nx.Graph | None = None
        self._edge_of = {link.name: frozenset((link.a, link.b)) for link in network.links}
        self.tenants = tenants
        self.quotas = QuotaBook(tenants) if tenants is not None else None
        self.ledger = ledger if ledger is not None else UsageLedger()
        if not check_s > 0:
            raise ParameterError("check_s", check_s, "a positive step between SLO checks, s")
        self.check_s = check_s
        self._checking = False
        self.committed: dict[str, float] = {}  # link -> share of its capacity reserved by admitted requests

    @staticmethod
    def _graph_of(network: Network) -> nx.Graph:
        graph = nx.Graph()
        graph.add_nodes_from(network.nodes)
        for link in network.links:
            graph.add_edge(link.a, link.b, name=link.name)
        return graph

    def ticks(self, seconds: float) -> int:
        return round(seconds / self.seconds_per_tick)

    def now_s(self) -> float:
        return self.sim.now * self.seconds_per_tick

    def log(self, event: str, request: str | None = None, **detail) -> None:
        self.events.append({"t_s": self.now_s(), "event": event, "request": request, **detail})

    def live_graph(self) -> nx.Graph:
        """What routing sees now: the graph without the links known to be down (kept until that changes)."""
        if not self.known_down:
            return self.graph
        if self._live is None:
            self._live = self.graph.copy()
            self._live.remove_edges_from(tuple(edge) for edge in self.known_down)
        return self._live

    def _routes(self, request: Request) -> list[list[str]]:
        k = request.paths or self.paths
        explicit = {request.name: request.path} if request.path else None
        return compute_routes(self.live_graph(), [(request.name, request.source, request.target)], self.metric, k,
                              explicit)[request.name]

    def submit(self, request: Request, token: str | None = None, slo: SLO | None = None) -> RequestRecord:
        """Schedule ``request``'s arrival at its start (now if that is past) with its credential and service
        levels; returns its record. A static mistake (an explicit path that is not one, a name used twice)
        raises at once."""
        if request.name in self.records:
            raise ParameterError("request", request.name, "a name not used by another request")
        if request.path is not None:
            compute_routes(self.graph, [(request.name, request.source, request.target)], self.metric, 1,
                           {request.name: request.path})
        record = RequestRecord(request, [], [], token=token, slo=slo)
        self.records[request.name] = record
        start = max(self.ticks(request.start_s), self.sim.now)
        self.sim.schedule_at(start, self._arrive, record, priority=-1)
        return record

    def _refuse(self, record: RequestRecord, reason: str) -> None:
        record.refused = reason
        self.log("refused", record.request.name, reason=reason)
        self.ledger.record(self.now_s(), record.request.tenant, record.request.name, "refused", detail=reason)

    def _arrive(self, record: RequestRecord) -> None:
        """The request reaches the controller: credential, quotas, routes; then it is served until its end."""
        request, now_s = record.request, self.now_s()
        self.log("arrived", request.name, tenant=request.tenant, source=request.source, target=request.target)
        self.ledger.record(now_s, request.tenant, request.name, "submitted")
        if self.tenants is not None:
            tenant = self.tenants.get(request.tenant)
            if tenant is None:
                return self._refuse(record, f"unknown tenant {request.tenant!r}")
            if tenant.needs_token:
                try:
                    verify_token(record.token or "", self.tenants, request=request.name, now_s=now_s)
                except TokenError as error:
                    return self._refuse(record, f"credential refused: {error}")
        try:
            routes = self._routes(request)
        except RoutingError as error:
            return self._refuse(record, f"no route: {error}")
        record.protocol = request.protocol
        if request.negotiate:
            refusal = self._negotiate(record, routes)
            if refusal is not None:
                return self._refuse(record, refusal)
            routes = [list(record.offer.plan.path)]
        try:
            self._reserve(record, routes)
        except QuotaExceeded as error:
            record.shares = {}
            return self._refuse(record, f"quota: {error}")
        for link, share in record.shares.items():
            self.committed[link] = self.committed.get(link, 0.0) + share
        self._serve_over(record, routes)
        self.log("admitted", request.name, routes=routes)
        if record.slo is not None:
            record.monitor = SloMonitor(record.slo, now_s)
            if not self._checking:
                self._checking = True
                self.sim.schedule(self.ticks(self.check_s), self._check_slos, priority=5)
        self.ledger.record(now_s, request.tenant, request.name, "admitted", detail=_routes_text(routes))
        self._start(record)
        if request.end_s is not None:
            self.sim.schedule_at(max(self.ticks(request.end_s), self.sim.now), self._end, record, priority=-1)

    def _serve_over(self, record: RequestRecord, routes: list[list[str]]) -> None:
        """Install ``routes`` for the record and open their circuits (active if the record is)."""
        request = record.request
        record.routes, record.circuits = routes, []
        record.routed_around = bool(self.known_down)
        for route in routes:
            index = len(record.all_routes)
            record.all_routes.append(route)
            name = request.name if index == 0 and len(routes) == 1 else f"{request.name}#{index}"
            self.network.install_route(name, route)
            circuit = self.network.open_circuit(name, request.source, record.protocol or request.protocol,
                                                consumer=self._consumer(record, index), weight=self._weight(request))
            record.circuits.append(circuit)
            if record.serving:
                self.network.activate(circuit)

    def _retire(self, record: RequestRecord) -> int:
        lost = 0
        for circuit in record.circuits:
            lost += self.network.deactivate(circuit)
            self.network.uninstall_route(circuit.name)
            record.retired.append(circuit)
        record.circuits, record.routes = [], []
        return lost

    def _weight(self, request: Request) -> float:
        if self.tenants is None or request.tenant not in self.tenants:
            return 1.0
        return self.tenants[request.tenant].weight

    def _consumer(self, record: RequestRecord, index: int):
        def deliver(circuit: Circuit, pair: Pair, now: int) -> None:
            if record.ended_tick is not None or record.paused_since_tick is not None:
                return
            if self.quotas is not None:
                self.quotas.record_delivery(record.request.tenant, record.request.name, self.now_s())
                if not self.quotas.may_deliver(record.request.tenant, self.now_s()):
                    self.sim.schedule(0, self._pause_tenant, record.request.tenant, priority=-1)
            self.ledger.record(self.now_s(), record.request.tenant, record.request.name, "delivered")
            if record.monitor is not None:
                record.monitor.observe(self.now_s(), pair.weights[0])
            record.delivery_ticks.append(now)
            record.delivered_weights.append(pair.weights)
            record.delivered_on.append(index)
            record.stalled_since_tick = None
            if self.on_delivery is not None:
                self.on_delivery(record, pair, now)
            target = record.request.pairs
            if target is not None and len(record.delivery_ticks) >= target and record.completed_tick is None:
                record.completed_tick = now
                self.sim.schedule(0, self._end, record, priority=-1)

        return deliver

    def _start(self, record: RequestRecord) -> None:
        record.started_tick = self.sim.now
        self.log("started", record.request.name)
        self.ledger.record(self.now_s(), record.request.tenant, record.request.name, "started")
        if self.quotas is not None and not self.quotas.may_deliver(record.request.tenant, self.now_s()):
            self._pause(record)
        for circuit in record.circuits if record.serving else []:
            self.network.activate(circuit)

    def _end(self, record: RequestRecord) -> None:
        if record.ended_tick is not None:
            return
        record.ended_tick = self.sim.now
        self.log("completed" if record.completed_tick is not None else "ended", record.request.name,
                 pairs=len(record.delivery_ticks))
        self.ledger.record(self.now_s(), record.request.tenant, record.request.name, "ended",
                           detail=f"{len(record.delivery_ticks)} pairs")
        for circuit in record.circuits:
            self.network.deactivate(circuit)
        record.suspended_since_tick = record.paused_since_tick = None
        self._release_shares(record)
        if self.quotas is not None:
            self.quotas.release(record.request.tenant, record.request.name, self.now_s())
        if record.monitor is not None:
            record.monitor.finish(self.now_s())

    def _check_slos(self) -> None:
        """Judge every running request's service levels now; again in ``check_s`` while any may still run."""
        now_s = self.now_s()
        for record in self.records.values():
            if record.monitor is not None and record.active:
                record.monitor.check(now_s)
        if any(r.slo is not None and r.ended_tick is None and r.refused is None for r in self.records.values()):
            self.sim.schedule(self.ticks(self.check_s), self._check_slos, priority=5)
        else:
            self._checking = False

    # ---- negotiation and admission control ----------------------------------------------------------

    def _negotiate(self, record: RequestRecord, routes: list[list[str]]) -> str | None:
        """Choose the plan (path, purification rounds, cut-off) with the highest predicted rate meeting the
        request's fidelity floor (and its rate target, on the share of each path's capacity not yet reserved by
        admitted requests); preempt lower-priority reservations if that is what stands in the way. Sets the
        record's offer, protocol and shares; returns the reason of a refusal, or None."""
        request = record.request
        candidates = [(route, self._headroom(route)) for route in routes]
        offer, blocked = self._best_offer(request, candidates)
        if not offer.admit and blocked:
            victims = self._victims(request, routes)
            if victims and self._quota_allows(request, [list(route) for route in routes[:1]]):
                for victim in victims:
                    self._preempt(self.records[victim], by=request.name)
                offer, blocked = self._best_offer(request, [(route, self._headroom(route)) for route in routes])
        record.offer = offer
        if not offer.admit:
            if offer.plan is None:
                return f"negotiation: {offer.reason}"
            best = f"{offer.plan.describe()}: {offer.prediction.rate_hz:.3g}/s at fidelity " \
                   f"{offer.prediction.fidelity:.3f}"
            if blocked:
                return (f"admission: the capacity left on its paths cannot carry {request.rate_hz:g}/s without "
                        f"breaking the service of requests already admitted ({blocked}); best offer {best}")
            if request.if_refused != "best-offer":
                return f"negotiation: {offer.reason}; best offer {best}"
            self.log("degraded", request.name, reason=offer.reason, plan=offer.plan.describe())
        plan, prediction = offer.plan, offer.prediction
        record.protocol = _with_plan(request.protocol, plan, self.seconds_per_tick)
        if not offer.admit:  # the client took the best offer: the ends keep what it delivers
            record.protocol = dataclasses.replace(record.protocol, fidelity_min=None)
        if request.rate_hz is not None and offer.admit:
            share = request.rate_hz / prediction.rate_hz
            record.shares = {self.network.link_between(a, b).name: share for a, b in zip(plan.path, plan.path[1:],
                                                                                        strict=False)}
        self.log("negotiated", request.name, plan=plan.describe(), rate_hz=prediction.rate_hz,
                 fidelity=prediction.fidelity)
        return None

    def _best_offer(self, request: Request, candidates: list[tuple[list[str], float]]) -> tuple[Offer, str]:
        """The best offer over the candidate paths, each asked for the request's rate on the capacity left on it;
        and, when only the capacity reserved by others stands in the way, which links are full."""
        offers = []
        for route, headroom in candidates:
            links, nodes = facts_from_network(self.network, route)
            rate = None if request.rate_hz is None else request.rate_hz / max(headroom, 1e-12)
            offers.append((negotiate([(links, nodes, tuple(route))], fidelity_min=request.protocol.fidelity_min,
                                     rate_hz=rate), route, headroom))
        admitted = [(o, r, h) for o, r, h in offers if o.admit]
        if admitted:
            return max(admitted, key=lambda x: x[0].prediction.rate_hz * x[2])[0], ""
        if request.rate_hz is not None:  # would an idle network have admitted it?
            full = []
            for offer, route, headroom in offers:
                if headroom < 1 and offer.prediction is not None and \
                        offer.prediction.rate_hz >= request.rate_hz and \
                        (request.protocol.fidelity_min is None or
                         offer.prediction.fidelity >= request.protocol.fidelity_min):
                    full += [name for name in self._link_names(route) if self.committed.get(name, 0.0) > 0]
            if full:
                best = max((o for o, _, _ in offers if o.prediction is not None),
                           key=lambda o: (o.prediction.fidelity, o.prediction.rate_hz))
                return best, ", ".join(sorted(set(full)))
        ranked = [o for o, _, _ in offers if o.plan is not None]
        if not ranked:
            return offers[0][0], ""
        return max(ranked, key=lambda o: (round(o.prediction.fidelity, 3), o.prediction.rate_hz)), ""

    def _link_names(self, route: list[str]) -> list[str]:
        return [self.network.link_between(a, b).name for a, b in zip(route, route[1:], strict=False)]

    def _headroom(self, route: list[str]) -> float:
        """The share of the path's capacity not reserved by admitted requests (its fullest link's)."""
        return max(0.0, 1.0 - max(self.committed.get(name, 0.0) for name in self._link_names(route)))

    def _victims(self, request: Request, routes: list[list[str]]) -> list[str]:
        """Lower-priority admitted requests holding capacity on the request's paths, fewest first (lowest
        priority, latest started), whose preemption leaves room; [] if none would."""
        if self.tenants is None or request.tenant not in self.tenants:
            return []
        priority = self.tenants[request.tenant].priority
        names = {name for route in routes for name in self._link_names(route)}
        holders = [(r.request.name, self.tenants[r.request.tenant].priority, r.started_tick or 0)
                   for r in self.records.values() if r.active and r.shares and names & set(r.shares)
                   and r.request.tenant in self.tenants]
        for needed in range(1, len(holders) + 1):
            victims = preemption_victims(holders, needed, priority)
            if not victims:
                return []
            freed = {name: sum(self.records[v].shares.get(name, 0.0) for v in victims) for name in names}
            saved = dict(self.committed)
            for name, amount in freed.items():
                self.committed[name] = self.committed.get(name, 0.0) - amount
            offer, _ = self._best_offer(request, [(route, self._headroom(route)) for route in routes])
            self.committed = saved
            if offer.admit:
                return victims
        return []

    def _quota_allows(self, request: Request, routes: list[list[str]]) -> bool:
        """Whether the tenant's quotas would admit ``request`` on ``routes`` (checked without holding anything:
        nobody is preempted for a request its own quota then refuses)."""
        if self.quotas is None:
            return True
        try:
            self.quotas.admit(request.tenant, request.name, rate_hz=request.rate_hz,
                              memory_qubits=sum(2 * (len(route) - 1) for route in routes), now_s=self.now_s())
        except QuotaExceeded:
            return False
        self.quotas.release(request.tenant, request.name, self.now_s())
        return True

    def _preempt(self, record: RequestRecord, by: str) -> None:
        self.log("preempted", record.request.name, by=by)
        self.ledger.record(self.now_s(), record.request.tenant, record.request.name, "preempted", detail=f"by {by}")
        record.preempted_by = by
        self._end(record)

    def _release_shares(self, record: RequestRecord) -> None:
        for name, share in record.shares.items():
            self.committed[name] = max(0.0, self.committed.get(name, 0.0) - share)
        record.shares = {}

    # ---- quotas: a tenant whose pairs-per-window quota is used up waits for the next window ------------

    def _pause(self, record: RequestRecord) -> int:
        lost = sum(self.network.deactivate(c) for c in record.circuits)
        record.paused_since_tick = self.sim.now
        self.log("paused", record.request.name, reason="max_pairs_per_window reached", pairs_lost=lost)
        self.ledger.record(self.now_s(), record.request.tenant, record.request.name, "paused")
        resume = self.quotas.next_window_s(record.request.tenant, self.now_s())
        self.sim.schedule_at(max(self.ticks(resume), self.sim.now + 1), self._resume, record, priority=-1)
        return lost

    def _pause_tenant(self, tenant: str) -> None:
        for record in self.records.values():
            if record.request.tenant == tenant and record.active and record.paused_since_tick is None:
                self._pause(record)

    def _resume(self, record: RequestRecord) -> None:
        if not record.active or record.paused_since_tick is None:
            return
        if not self.quotas.may_deliver(record.request.tenant, self.now_s()):  # a window shorter than a tick
            self._pause(record)
            return
        record.paused_since_tick = None
        self.log("resumed", record.request.name, reason="new quota window")
        self.ledger.record(self.now_s(), record.request.tenant, record.request.name, "resumed")
        for circuit in record.circuits if record.serving else []:
            self.network.activate(circuit)

    # ---- faults: what the controller does when it learns a link is down or back -----------------------

    def link_down(self, link: str, told_s: float) -> None:
        """The controller has been told ``link`` is down: reroute every request served across it."""
        edge = self._edge_of[link]
        self.known_down.add(edge)
        if self._live is not None and self._live.has_edge(*edge):
            self._live.remove_edge(*edge)
        for record in self.records.values():
            if record.ended_tick is None and any(edge in self._edges(route) for route in record.routes):
                self._reroute(record, f"{link} down")

    def link_up(self, link: str, told_s: float) -> None:
        """``link`` is back: suspended requests resume, and requests routed around a fault move back to their best
        route (one routed with every link up already has it)."""
        edge = self._edge_of[link]
        self.known_down.discard(edge)
        if self._live is not None and self.graph.has_edge(*edge):
            self._live.add_edge(*edge, **self.graph.edges[tuple(edge)])
        for record in self.records.values():
            if record.active and (record.suspended_since_tick is not None
                                  or record.routed_around and self._worse_than_ideal(record)):
                self._reroute(record, f"{link} up")

    def _worse_than_ideal(self, record: RequestRecord) -> bool:
        """Whether the record's routes cost more than its best routes with every link up (only then can a repair
        improve them); the ideal is computed once per request."""
        if record.ideal_cost is None:
            try:
                ideal = compute_routes(self.graph, [(record.request.name, record.request.source,
                                                     record.request.target)], self.metric,
                                       record.request.paths or self.paths,
                                       {record.request.name: record.request.path} if record.request.path else None)
                record.ideal_cost = self._cost(ideal[record.request.name])
            except RoutingError:
                record.ideal_cost = math.inf
        return self._cost(record.routes) > record.ideal_cost * (1 + 1e-9)

    def _cost(self, routes: list[list[str]]) -> float:
        return math.fsum(path_cost(self.graph, route, self.metric) for route in routes)

    @staticmethod
    def _edges(route: list[str]) -> set[frozenset]:
        return {frozenset(pair) for pair in zip(route, route[1:], strict=False)}

    def _reroute(self, record: RequestRecord, cause: str) -> None:
        name = record.request.name
        shares = record.shares
        try:
            routes = self._routes(record.request)
            if record.request.negotiate:  # a new plan on the paths left, on the capacity others leave
                self._release_shares(record)
                refusal = self._negotiate(record, routes)
                if refusal is not None:
                    raise RoutingError(refusal)
                routes = [list(record.offer.plan.path)]
            if routes != record.routes:
                self._reserve(record, routes)
        except (RoutingError, QuotaExceeded) as error:
            record.shares = {}
            if record.suspended_since_tick is None:
                lost = self._retire(record)
                record.suspended_since_tick = self.sim.now
                record.reroutes.append({"t_s": self.now_s(), "cause": cause, "routes": [], "pairs_lost": lost})
                self.log("suspended", name, cause=cause, reason=str(error), pairs_lost=lost)
            return
        for link, share in record.shares.items():
            self.committed[link] = self.committed.get(link, 0.0) + share
        if routes == record.routes and record.shares == shares:
            return
        lost = self._retire(record)
        was_suspended = record.suspended_since_tick is not None
        record.suspended_since_tick = None
        self._serve_over(record, routes)
        record.reroutes.append({"t_s": self.now_s(), "cause": cause, "routes": routes, "pairs_lost": lost})
        self.log("resumed" if was_suspended else "rerouted", name, cause=cause, routes=routes, pairs_lost=lost)

    def _reserve(self, record: RequestRecord, routes: list[list[str]]) -> None:
        """Hold the tenant's quota for ``routes`` (its qubits change with the route): :class:`QuotaExceeded` if
        they do not fit, the old reservation kept."""
        if self.quotas is None:
            return
        request, now_s = record.request, self.now_s()
        old = sum(2 * (len(route) - 1) for route in record.routes) if record.routes else None
        self.quotas.release(request.tenant, request.name, now_s)
        try:
            self.quotas.admit(request.tenant, request.name, rate_hz=request.rate_hz,
                              memory_qubits=sum(2 * (len(route) - 1) for route in routes), now_s=now_s)
        except QuotaExceeded:
            if old is not None:
                self.quotas.admit(request.tenant, request.name, rate_hz=request.rate_hz, memory_qubits=old,
                                  now_s=now_s)
            raise

    def watch(self) -> list[RequestRecord]:
        """Note requests whose circuits are all frozen (deadlocked unless another request frees memory);
        returns those stalled now."""
        frozen = {id(c) for c in self.network.frozen_circuits() if not c.no_memory_share}
        stalled = []
        for record in self.records.values():
            if record.active and record.circuits and all(id(c) in frozen for c in record.circuits):
                if record.stalled_since_tick is None:
                    record.stalled_since_tick = self.sim.now
                stalled.append(record)
            else:
                record.stalled_since_tick = None
        return stalled


def _with_plan(protocol: Protocol, plan: Plan, seconds_per_tick: float) -> Protocol:
    """The request's protocol with the plan's cut-off and purification (DEJMPS on elementary pairs)."""
    cutoff = None if plan.cutoff_s is None else max(1, round(plan.cutoff_s / seconds_per_tick))
    return dataclasses.replace(protocol, scheme=plan.scheme, cutoffs=cutoff,
                               purification_rounds=plan.purification_rounds, purification_protocol="dejmps",
                               purification_spans=(1,))


def _routes_text(routes: list[list[str]]) -> str:
    return "; ".join("-".join(route) for route in routes)
