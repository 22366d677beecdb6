"""The KMEs a federation needs when its SAEs sit in several key-management domains, each fed in simulated time.

Every domain with an SAE of the federation, and every domain a key between two of them crosses on its way, gets
its own KME: a :class:`~qfabric.kms.local.ThreadedKme` on 127.0.0.1 with its own SQLite store and certificate,
its own :class:`~qfabric.scenario.keysupply.KeySupply` (its links, and the pads of its interconnects), and a
:class:`~qfabric.kms.interkme.Forwarder` to its neighbours. An SAE asks its own KME for a key with an SAE of
another domain; the KME relays it to its gateway node, forwards it to the next KME under a one-time pad of the
interconnect (ETSI-014-shaped KME-to-KME call over mutual TLS), and so on to the slave's KME, which stores it for
the slave's ``dec_keys``.

A :class:`Way` is the chain a pair's keys take: one :class:`Segment` per domain (relayed over trusted nodes from
where the key enters to where it leaves) and one interconnect between consecutive domains.

>>> # domains = KeyDomains(scenario, ["aggregator", "hospital-a"], Path("run")); domains.prime(); domains.tick(60)
>>> # with domains.serving(): SaeClient(domains.url_of("hospital-a"), ...).enc_keys("aggregator")
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import networkx as nx

from qfabric.errors import QfabricError
from qfabric.kms.certs import make_dev_pki
from qfabric.kms.client import SaeClient, tls_context
from qfabric.kms.etsi import KmeConfig
from qfabric.kms.interkme import Forwarder, gateway
from qfabric.kms.local import ThreadedKme, free_port
from qfabric.kms.server import ServerConfig, load_or_create_secret
from qfabric.kms.store import KeyStore
from qfabric.scenario.build import scenario_faults
from qfabric.scenario.keysupply import Interconnect, KeySupply
from qfabric.scenario.schema import Scenario

FORWARD_EVENTS = ("forward_out", "forward_in", "forward_transit", "forward_failed")


def kme_graph(scenario: Scenario) -> nx.Graph:
    """KMEs joined by the decoy-BB84 links between their nodes (as :class:`KeySupply` finds its neighbours).

    >>> # sorted(kme_graph(load_scenario("scenarios/two-domains.yaml")).edges)  -> [('kme-north', 'kme-south')]
    """
    owner = {node: k.id for k in scenario.kms.kmes for node in k.nodes}
    fibres = {link.name: link for link in scenario.links}
    graph = nx.Graph()
    graph.add_nodes_from(k.id for k in scenario.kms.kmes)
    for q in scenario.qkd:
        f = fibres.get(q.link) if q.protocol == "decoy-bb84" else None
        ends = (owner.get(f.between[0]), owner.get(f.between[1])) if f is not None else (None, None)
        if None not in ends and ends[0] != ends[1]:
            graph.add_edge(*ends)
    return graph


def kmes_needed(scenario: Scenario, saes: Iterable[str]) -> list[str]:
    """The KMEs of ``saes`` and those their keys cross (each KME forwards to its next hop on a shortest chain of
    interconnects, as :attr:`KeySupply.routes`), in the scenario's order."""
    owner = {node: k.id for k in scenario.kms.kmes for node in k.nodes}
    node_of = {s.id: s.node for s in scenario.kms.saes}
    ends = {owner[node_of[s]] for s in saes}
    graph, needed = kme_graph(scenario), set(ends)
    for src, dst in itertools.permutations(ends, 2):
        here = src
        while here != dst:
            try:
                here = nx.single_source_shortest_path(graph, here)[dst][1]
            except KeyError:
                raise QfabricError(f"no chain of decoy-bb84 QKD links joins KME {src!r} to KME {dst!r}") from None
            needed.add(here)
    return [k.id for k in scenario.kms.kmes if k.id in needed]


@dataclass
class Domain:
    """One KME of the run: its configuration, store, key supply and (once serving) its HTTPS server."""

    kme_id: str
    config: ServerConfig
    store: KeyStore
    kme_config: KmeConfig
    supply: KeySupply
    server: ThreadedKme | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.config.port}"  # the port is chosen before the server starts


@dataclass(frozen=True)
class Segment:
    """A key's way inside one domain: from endpoint ``ends[0]`` to ``ends[1]`` (SAE IDs or gateway labels), over
    the usual chain of nodes ``path`` (one node: both ends at the same node, nothing relayed)."""

    kme: str
    ends: tuple[str, str]
    path: tuple[str, ...]

    @property
    def hops(self) -> list[tuple[str, str]]:
        return [tuple(sorted(h)) for h in zip(self.path, self.path[1:], strict=False)]


@dataclass(frozen=True)
class Way:
    """How keys between SAEs ``a`` and ``b`` travel: a segment per domain (``a``'s first) and, between two
    consecutive domains, the interconnect that joins them (``crossings[i]`` leaves ``segments[i]``'s domain)."""

    a: str
    b: str
    segments: tuple[Segment, ...]
    crossings: tuple[Interconnect, ...]

    @property
    def kmes(self) -> list[str]:
        return [s.kme for s in self.segments]

    @property
    def path(self) -> list[str]:
        return [n for s in self.segments for n in s.path]


class KeyDomains:
    """The KMEs that key a federation between ``saes``, with their stores and key supplies (not serving yet).

    One domain keeps the single-KME layout (``<kme>.db`` and ``kek.bin`` in ``workdir``, no forwarder); with
    several, each KME has its own key-encryption key file and forwards to the neighbours of the run."""

    def __init__(self, scenario: Scenario, saes: list[str], workdir: Path, rate_scale: float = 1.0,
                 entanglement: dict | None = None, top_up_at: float = 0.0,
                 relay_random: Callable[[int], bytes] | None = None):
        kms = scenario.kms
        self.scenario, self.saes = scenario, list(saes)
        owner = {node: k.id for k in kms.kmes for node in k.nodes}
        self.kme_of = {s.id: owner[s.node] for s in kms.saes}
        needed = kmes_needed(scenario, saes)
        self.pki = make_dev_pki(workdir / "pki", kmes=needed, saes=self.saes)
        single = len(needed) == 1
        faults = scenario_faults(scenario)
        self.domains: dict[str, Domain] = {}
        for kme_id in needed:
            known = {s: k for s, k in self.kme_of.items() if k == kme_id or not single}
            config = ServerConfig(kme_id=kme_id, saes=known, db_url=f"sqlite:///{workdir / (kme_id + '.db')}",
                                  secret_file=str(workdir / ("kek.bin" if single else f"{kme_id}.kek")),
                                  certfile=str(self.pki[kme_id]), keyfile=str(self.pki[f"{kme_id}.key"]),
                                  cafile=str(self.pki["ca"]), port=free_port(),
                                  limits={"key_size": kms.key_size_bits, "max_key_count": kms.max_key_count})
            store = KeyStore(config.db_url, load_or_create_secret(config.secret_file))
            if relay_random is not None:
                store.random_bytes = relay_random
            kme_config = config.kme()
            supply = KeySupply(scenario, store, kme_id, kme_config.pool, rate_scale=rate_scale, faults=faults,
                               entanglement=entanglement, top_up_at=top_up_at)
            self.domains[kme_id] = Domain(kme_id, config, store, kme_config, supply)
        for d in self.domains.values():
            d.kme_config.status_extension = self._status_extension(d)
            d.kme_config.link_qber = self._worst_qber(d)
            peers = {n: self.domains[n].url for n in d.supply.neighbours if n in self.domains}
            if not single and peers:
                d.kme_config.forwarder = Forwarder(d.kme_id, d.config.saes, peers, d.supply.routes, d.supply, d.store,
                                                   tls_context(d.config.certfile, d.config.keyfile, d.config.cafile))
        self._ways: dict[tuple[str, str], Way] = {}

    # ---- running -----------------------------------------------------------------------------------

    @property
    def supplies(self) -> list[KeySupply]:
        return [d.supply for d in self.domains.values()]

    @property
    def multi(self) -> bool:
        """Whether keys cross domains (several KMEs)."""
        return len(self.domains) > 1

    def prime(self) -> dict[str, float | None]:
        """Distill every domain's links once; each QKD service's secret-key rate (bit/s), interconnects included."""
        rates: dict[str, float | None] = {}
        for supply in self.supplies:
            rates |= supply.prime()
        return rates

    def tick(self, dt: float) -> None:
        """Advance every domain's simulated time by ``dt`` seconds (one timeline: the same ``dt`` for all)."""
        for supply in self.supplies:
            supply.tick(dt)

    def start(self) -> None:
        """Every KME serving HTTPS on 127.0.0.1 (if one fails to start, those started are stopped)."""
        try:
            for d in self.domains.values():
                d.server = ThreadedKme(d.config, d.store, d.kme_config)
                d.server.start()
        except BaseException:
            with contextlib.suppress(QfabricError):
                self.stop()
            raise

    def stop(self) -> None:
        """Stop every KME that started (each is tried, the first failure raised). Each forwarder's connections
        to its neighbours are closed first, on its server's event loop: a KME waits up to a second for a client's
        kept-alive connection to close before it stops."""
        failure = None
        for d in self.domains.values():
            if d.server is not None:
                with contextlib.suppress(Exception):  # best effort: the stop below ends them anyway
                    d.server.close_forwarder()
        for d in self.domains.values():  # all shut down together, then each is joined
            if d.server is not None:
                d.server.server.should_exit = True
        for d in reversed(self.domains.values()):
            if d.server is not None:
                try:
                    d.server.stop()
                except QfabricError as err:
                    failure = failure or err
                d.server = None
        if failure is not None:
            raise failure

    @contextlib.contextmanager
    def serving(self):
        """Every KME serving HTTPS on loopback inside the block, stopped after."""
        try:
            self.start()
            yield self
        finally:
            self.stop()

    def url_of(self, sae: str) -> str:
        """The URL of ``sae``'s own KME."""
        return self.domains[self.kme_of[sae]].url

    def client(self, sae: str) -> SaeClient:
        """An ETSI 014 client of ``sae`` (its certificate) at its own KME."""
        return SaeClient(self.url_of(sae), str(self.pki[sae]), str(self.pki[f"{sae}.key"]), str(self.pki["ca"]))

    # ---- ways -------------------------------------------------------------------------------------------

    def way(self, a: str, b: str) -> Way | None:
        """How keys between SAEs ``a`` and ``b`` travel; None for two SAEs at one node of one domain (no pool
        joins them: as before domains, such a pair is not keyed)."""
        if (a, b) not in self._ways:
            self._ways[(a, b)] = self._find_way(a, b)
        return self._ways[(a, b)]

    def _find_way(self, a: str, b: str) -> Way | None:
        route = [self.kme_of[a]]
        while route[-1] != self.kme_of[b]:
            nxt = self.domains[route[-1]].supply.routes.get(self.kme_of[b])
            if nxt is None or nxt not in self.domains:
                raise QfabricError(f"KME {route[-1]} has no route to KME {self.kme_of[b]} in this run")
            route.append(nxt)
        segments, crossings = [], []
        for i, kme in enumerate(route):
            supply = self.domains[kme].supply
            start = a if i == 0 else gateway(route[i - 1])
            end = b if i == len(route) - 1 else gateway(route[i + 1])
            usual = next((p for s1, s2, p, _ in supply.pairs if {s1, s2} == {start, end}), None)
            if usual is None:  # both ends at one node
                if len(route) == 1:
                    return None
                usual = [self._node(supply, start)]
            elif self._node(supply, start) != usual[0]:
                usual = usual[::-1]
            segments.append(Segment(kme, (start, end), tuple(usual)))
            if i < len(route) - 1:
                crossings.append(supply.neighbours[route[i + 1]])
        return Way(a, b, tuple(segments), tuple(crossings))

    def _node(self, supply: KeySupply, end: str) -> str:
        """The node of an endpoint inside ``supply``'s domain: an SAE's, or its end of a gateway's link."""
        if end.startswith(gateway("")):
            return supply.neighbours[end.removeprefix(gateway(""))].a
        return next(s.node for s in self.scenario.kms.saes if s.id == end)

    def _pool(self, segment: Segment) -> str | None:
        return self.domains[segment.kme].supply.relay_pool(*segment.ends)

    def stock(self, way: Way) -> int:
        """Keys the way holds now: the smallest relay pool or interconnect's pads on it (pads: the fewer of its two
        directions), shared with any other pair on the same segment or link. One domain: the pair's pool."""
        counts = [self.domains[s.kme].store.available(pool) for s in way.segments
                  if (pool := self._pool(s)) is not None]
        counts += [self._pads(c) for c in way.crossings]
        return min(counts, default=0)

    def _pads(self, link: Interconnect) -> int:
        here, there = self.kme_of_node(link.a), link.remote_kme
        return min(self.domains[here].supply.pads_available(there), self.domains[there].supply.pads_available(here))

    def kme_of_node(self, node: str) -> str:
        return next(k.id for k in self.scenario.kms.kmes if node in k.nodes)

    def path_now(self, way: Way) -> list[str] | None:
        """The chain of nodes the way's keys take now (reroutes inside domains included), or None while a part of
        it is down."""
        out: list[str] = []
        for i, s in enumerate(way.segments):
            supply = self.domains[s.kme].supply
            path = supply.path_now(*s.ends) if len(s.path) > 1 else list(s.path)
            if path is None:
                return None
            out += path if path[0] == s.path[0] else path[::-1]
            if i < len(way.crossings) and not way.crossings[i].up_at(supply.now_s):
                return None
        return out

    # ---- what the links supply (the budget before a run) --------------------------------------------------

    def sharers(self, ways: list[Way]) -> tuple[dict, dict]:
        """How many of ``ways`` share each domain segment (its two ends) and each interconnect."""
        segments: dict[tuple[str, frozenset], int] = {}
        links: dict[str, int] = {}
        for w in ways:
            for s in w.segments:
                segments[(s.kme, frozenset(s.ends))] = segments.get((s.kme, frozenset(s.ends)), 0) + 1
            for c in w.crossings:
                links[c.link] = links.get(c.link, 0) + 1
        return segments, links

    def limits(self, way: Way, ways: list[Way], t0: float, t1: float | None = None, period_s: float = 0.0) -> list:
        """Each part of the way and what it can carry for this pair, as ``(stock, coming)`` key units: the
        stock is what it holds now, coming what it supplies over ``[t0, t1)`` (or, with ``t1`` None, in one round
        of ``period_s`` at the rate now), both divided among the ``ways`` that share it.

        Inside a domain a link's key is shared among the domain's relays over it (:func:`link_users`), then
        among the pairs on the same relay; an interconnect gives each direction half its key, here shared among
        all the pairs that cross it whichever way their keys go (conservative: the master's side is not known)."""
        segment_users, link_users_ = self.sharers(ways)
        out = []
        for s in way.segments:
            if len(s.path) < 2:
                continue
            d = self.domains[s.kme]
            supply, users = d.supply, link_users(d.supply)
            shared = segment_users.get((s.kme, frozenset(s.ends)), 1)
            stock = d.store.available(self._pool(s)) if t1 is not None else 0
            if all(h in supply.feeds for h in s.hops):
                coming = min(self._bits(supply, supply.feeds[h], t0, t1, period_s) / users[h] for h in s.hops)
            else:
                coming = 0.0
            if len(way.segments) == 1:  # end-to-end BBM92 key (inside one domain only)
                e2e = supply.e2e.get(tuple(sorted((s.path[0], s.path[-1]))))
                if e2e is not None and t1 is None:
                    coming += sum(len(b[1]) for b in e2e.blocks) * period_s / self.scenario.duration_s
                elif e2e is not None:
                    coming += sum(len(b[1]) for b in e2e.blocks if t0 <= b[0] < t1)
            out.append((stock / shared, coming / supply.unit_bits / shared, [supply.feeds[h].spec.name
                                                                             for h in s.hops if h in supply.feeds]))
        for c in way.crossings:
            supply = self.domains[self.kme_of_node(c.a)].supply
            shared = link_users_.get(c.link, 1)
            stock = self._pads(c) if t1 is not None else 0
            coming = 0.0 if c.device is not None else self._bits(supply, c, t0, t1, period_s) / 2
            out.append((stock / shared, coming / supply.unit_bits / shared, [c.spec.name]))
        return out

    @staticmethod
    def _bits(supply: KeySupply, feed, t0: float, t1: float | None, period_s: float) -> float:
        if t1 is None:
            return supply.rate_at(feed, t0) * supply.rate_scale * period_s
        return supply.supplied_bits(feed, t0, t1)

    def links_of(self, way: Way) -> list[str]:
        """The QKD services on the way, in order (interconnects included)."""
        names = []
        for i, s in enumerate(way.segments):
            supply = self.domains[s.kme].supply
            names += [supply.feeds[h].spec.name for h in s.hops if h in supply.feeds]
            e2e = supply.e2e.get(tuple(sorted((s.path[0], s.path[-1])))) if len(way.segments) == 1 else None
            names += [e2e.name] if e2e is not None else []
            names += [way.crossings[i].spec.name] if i < len(way.crossings) else []
        return names

    # ---- what each domain sees -----------------------------------------------------------------------

    def links_now(self) -> dict[str, dict]:
        """Every domain's QKD links now (:meth:`KeySupply.links_now`); with several domains, the interconnects
        too (``joins``: the two KMEs; their key rate is the link's, each direction pads with half of it)."""
        out: dict[str, dict] = {}
        for supply in self.supplies:
            out |= supply.links_now()
        if self.multi:
            for supply in self.supplies:
                for c in supply.interconnects.values():
                    if c.remote_kme in self.domains and c.spec.name not in out:
                        qber, rate = self._crossing_now(supply, c)
                        out[c.spec.name] = {"up": c.up_at(supply.now_s), "key_rate_bps": rate, "qber": qber,
                                            "joins": sorted((supply.kme_id, c.remote_kme))}
        return out

    @staticmethod
    def _crossing_now(supply: KeySupply, link: Interconnect) -> tuple[float | None, float | None]:
        """An interconnect's QBER and secret-key rate now (None, None from devices; no QBER while it is down)."""
        if link.device is not None:
            return None, link.device.rate_bps()
        c = link.condition_at(supply.now_s)
        if not c.up:
            return None, 0.0
        buf = supply.buffer(link, (c.extra_loss_db, c.detector_factor))
        return buf.qber, buf.rate_bps

    def domain_state(self) -> dict[str, dict]:
        """Per KME: its relay pools between endpoints (SAE IDs and ``kme:<neighbour>`` gateways) and the pads
        its end of each interconnect can send now."""
        out = {}
        for kme, d in self.domains.items():
            pools = {f"{s1}|{s2}": d.store.available(pool) for s1, s2, _, pool in d.supply.pairs}
            pads = {n: d.supply.pads_available(n) for n in d.supply.neighbours if n in self.domains}
            out[kme] = {"pools": pools, "pads": pads}
        return out

    def forwarding(self) -> dict[str, dict[str, int]]:
        """Per KME, from its own audit log: keys it forwarded as the master's KME (``forward_out``), stored for its
        slaves (``forward_in``), passed on (``forward_transit``), and forwards that failed (events)."""
        out = {}
        for kme, d in self.domains.items():
            counts = dict.fromkeys(FORWARD_EVENTS, 0)
            for row in d.store.audit_log(10**9):
                if row["event"] in counts:
                    counts[row["event"]] += 1 if row["event"] == "forward_failed" else len(
                        json.loads(row["key_ids"] or "[]"))
            out[kme] = counts
        return out

    def accounting(self, way: Way) -> dict[str, int]:
        """A pair's keys: inside one domain, its pool's accounting (:meth:`KeyStore.accounting`); across domains,
        from its KMEs' records, the keys handed to either SAE as master (``forward_out`` at its KME) and of them
        the ones the other claimed (``claims_done``, at the slave's KME)."""
        if len(way.segments) == 1:
            d = self.domains[way.kmes[0]]
            return d.store.accounting(d.kme_config.pool(way.a, way.b))
        delivered = claimed = 0
        for master, slave in ((way.a, way.b), (way.b, way.a)):
            ids = [k for row in self.domains[self.kme_of[master]].store.audit_log(10**9)
                   if row["event"] == "forward_out" and row["sae"] == master and row["peer"] == slave
                   for k in json.loads(row["key_ids"] or "[]")]
            claims = self.domains[self.kme_of[slave]].store.claims_of(ids) if ids else {}
            delivered += len(ids)
            claimed += sum(c.get(slave) is not None for c in claims.values())
        return {"keys_delivered": delivered, "claims_done": claimed}

    # ---- the status extension for keys across domains -----------------------------------------------------

    def _status_extension(self, domain: Domain) -> Callable[[str, str], dict | None]:
        def extension(master: str, slave: str) -> dict | None:
            own = domain.supply.link_qber(master, slave)
            if own is not None or self.kme_of.get(master) == self.kme_of.get(slave) or slave not in self.kme_of:
                return own
            return self.across(master, slave)
        return extension

    def _worst_qber(self, domain: Domain) -> Callable[[str, str], float | None]:
        def worst(master: str, slave: str) -> float | None:
            if self.kme_of.get(master) == self.kme_of.get(slave) or slave not in self.kme_of:
                return domain.supply.worst_link_qber(master, slave)
            return (self.across(master, slave) or {}).get("link_qber")
        return worst

    def across(self, master: str, slave: str) -> dict | None:
        """The status extension of a pair in two domains, over its whole way: the worst QBER of every link on it
        (interconnects included), the slowest rate (an interconnect counts with the half that pads one
        direction), whether every supply on it is flowing, and how full its scarcest stock is."""
        if master not in self.kme_of or self.kme_of[master] not in self.domains or \
                self.kme_of[slave] not in self.domains:
            return None
        way = self.way(master, slave)
        qbers, rates, ready, simulated, errors = [], [], [], [], []
        for s in way.segments:
            supply = self.domains[s.kme].supply
            ready.append(supply.ready)
            if supply.error is not None:
                errors.append(f"KME {s.kme}: {supply.error}")
            ext = supply.link_qber(*s.ends) if len(s.path) > 1 else None
            if ext is not None:
                qbers.append(ext["link_qber"])
                rates.append(ext["simulated_key_rate_bps"])
                simulated.append(ext["simulated_key_material"])
        for c in way.crossings:
            supply = self.domains[self.kme_of_node(c.a)].supply
            qber, rate = self._crossing_now(supply, c)
            qbers.append(qber)
            rates.append(rate / 2 if rate is not None else 0.0)
            simulated.append(c.device is None)
        known = [q for q in qbers if q is not None]
        out = {"link_qber": max(known) if known else None, "hops": len(way.path) - 1, "kmes": way.kmes,
               "simulated_key_rate_bps": min(rates, default=0.0), "end_to_end_qber": None,
               "supply_rate_scale": self.supplies[0].rate_scale, "supply_ready": all(ready),
               "pool_fill": round(min(1.0, self.stock(way) / self.scenario.kms.max_key_count), 4),
               "simulated_key_material": any(simulated)}
        if errors:
            out["supply_error"] = "; ".join(errors)
        return out


def link_users(supply: KeySupply) -> dict[tuple[str, str], int]:
    """How many of the domain's relays (its endpoint pairs) cross each of its links: they share its key."""
    users: dict[tuple[str, str], int] = {}
    for _, _, path, _ in supply.pairs:
        for a, b in zip(path, path[1:], strict=False):
            if tuple(sorted((a, b))) in supply.feeds:
                users[tuple(sorted((a, b)))] = users.get(tuple(sorted((a, b))), 0) + 1
    return users
