"""Feed a KME's key store from a scenario's QKD links, at their simulated secret-key rates, over simulated time.

Every decoy-BB84 service on a link between two of the KME's nodes is simulated and distilled; its keys
(Alice's copy and Bob's) are released into the link's two pools as simulated time passes (:meth:`KeySupply.tick`),
at the rate the simulation measured. Each link is simulated and distilled once per state and process (shared
with the report's ``qkd`` section); when its key runs out, further blocks of the same size are drawn from the
blocks' seeded streams (what another distillation would output) instead of simulating the link again. The
scenario's faults act on the same timeline: a cut link releases nothing, a link with extra loss or a weaker
detector is simulated in that state and releases at its (lower) rate with its (higher) QBER. Keys for each SAE
pair are relayed along the shortest chain of links up at the time between the SAEs' nodes (trusted nodes), so
a pair gets keys at the rate of its slowest link, from another chain while a link of its usual one is cut, and
no faster than the pool limit allows (``top_up_at``: pools are topped up in batches, once that fraction of
them is used, instead of every tick).

A satellite that is a trusted relay (``satellites[].trusted_relay``) is a node of the relay graph: each pass's
decoy-BB84 key (finite key on the pass's counts) goes into the pools of its link to that ground station when the
pass ends, and pairs' keys are relayed through it like through a trusted node on the ground. A satellite's
entangled-pair source over two of the KME's nodes is a link between those two stations (``sky_links``): its
passes' coincidences distilled with BBM92 as one block, whose key the satellite never holds, released into the
link's pools when the last pass ends.

``rate_scale`` feeds a fixed fraction of the simulated rate (to keep pools from filling at once).

Key material never repeats: every block of key takes the next block of its seeded stream from the store
(:meth:`~qfabric.kms.store.KeyStore.take_block`, committed before any of its key is released), so a restart on
the same database continues each link's stream where the last run stopped instead of replaying it (which would
reuse the one-time pads of the relays). A fresh database starts every stream at block 0, as before.

Simulated keys are reproducible from the scenario's seed (and the block numbers): they protect nothing by
themselves. The status extension says so (``simulated_key_material``).
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from qfabric.control.faults import Condition, Fault, link_conditions
from qfabric.control.routing import NoRouteError, shortest_path
from qfabric.errors import QfabricError
from qfabric.kms.interkme import gateway
from qfabric.kms.relay import e2e_pool, feed_link, link_pool, relay_path
from qfabric.kms.store import KeysExhausted, KeyStore
from qfabric.qkd.link import run_bbm92
from qfabric.qkd.theory import Channel
from qfabric.scenario.build import distil_decoy, qkd_channel
from qfabric.scenario.satellite import decoy_passes, pair_passes
from qfabric.scenario.schema import PairSourceSpec, QkdSpec, SatelliteSpec, Scenario
from qfabric.sim.kernel import stream_seed

State = tuple[float, float]  # (extra loss dB, detector factor)
NOMINAL: State = (0.0, 1.0)


@dataclass
class KeyBuffer:
    """Distilled key of one link in one state, released in order."""

    rate_bps: float = 0.0
    qber: float | None = None
    alice: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint8))
    bob: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint8))
    released_bits: int = 0
    blocks: int = 0  # distilled by this supply
    stream_block: int | None = None  # the stream's block number of the last distillation (from the store)
    owed_bits: float = 0.0


@dataclass
class LinkFeed:
    a: str
    b: str
    spec: QkdSpec
    channel: Channel
    conditions: list[Condition]
    buffers: dict[State, KeyBuffer] = field(default_factory=dict)
    released_units: int = 0  # keys put into its two pools so far

    def condition_at(self, t_s: float) -> Condition:
        return next(c for c in self.conditions if c.start_s <= t_s < c.end_s)

    def up_at(self, t_s: float) -> bool:
        return self.condition_at(t_s).up

    @property
    def key(self) -> tuple[str, str]:
        return tuple(sorted((self.a, self.b)))


class DeviceLink:
    """A QKD link whose keys come from its devices over ETSI GS QKD 014 (``qkd[].supply: etsi014``): the KME is
    an SAE of each end's device; it takes keys from the first end's (``enc_keys``, the second end's SAE as slave)
    and the same keys from the second end's (``dec_keys`` by key ID), so both copies carry the devices' key IDs.

    >>> # link = DeviceLink("a", "b", spec); link.fetch(32, 256) -> [(copy at a, copy at b), ...]
    """

    def __init__(self, a: str, b: str, spec: QkdSpec):
        from qfabric.kms.certs import common_name_of

        self.a, self.b, self.spec, self.supply = a, b, spec, spec.supply
        try:
            self.sae_ids = [common_name_of(end.cert) for end in self.supply.ends]
        except (OSError, ValueError) as err:
            raise QfabricError(f"QKD service {spec.name!r}: cannot read the device certificates: {err}") from None
        self._clients: dict[int, object] = {}
        self.released_units = 0
        self.error: str | None = None  # of the last fetch; the link counts as down while it failed
        self.key_bits = 0  # fetched so far, and since when (the measured rate)
        self.since: float | None = None

    @property
    def key(self) -> tuple[str, str]:
        return tuple(sorted((self.a, self.b)))

    def up_at(self, _t_s: float) -> bool:
        return self.error is None

    def client(self, end: int):
        """The ETSI 014 client of this end's device (mutual TLS with the end's certificate)."""
        if end not in self._clients:  # one end's key file only: a KME at one end has only its own
            from qfabric.kms.client import SaeClient

            e = self.supply.ends[end]
            self._clients[end] = SaeClient(e.url, e.cert, e.key, self.supply.ca, self.supply.timeout_s)
        return self._clients[end]

    def call(self, end: int, call: str, *args, **kwargs):
        """An ETSI 014 call to an end's device; a refusal or a network failure as a QfabricError naming it."""
        import httpx

        try:
            return getattr(self.client(end), call)(*args, **kwargs)
        except (httpx.HTTPError, OSError) as err:
            raise QfabricError(f"{call} at {self.supply.ends[end].url}: {type(err).__name__}: {err}") from None

    def status(self, end: int = 0) -> dict:
        """An end's device's status for the link (reachability and certificates checked)."""
        return self.call(end, "status", self.sae_ids[1 - end])

    def fetch(self, count: int, unit_bits: int) -> list[tuple[bytes, bytes]]:
        """``count`` keys of ``unit_bits``: (copy at ``a``, copy at ``b``), the same key IDs at both devices."""
        keys = self.call(0, "enc_keys", self.sae_ids[1], number=count, size=unit_bits)
        copies = dict(self.call(1, "dec_keys", self.sae_ids[0], [k for k, _ in keys]))
        if set(copies) != {k for k, _ in keys}:
            raise QfabricError(f"QKD service {self.spec.name!r}: the devices answered different key IDs")
        self.key_bits += len(keys) * unit_bits
        self.since = self.since or time.monotonic()
        return [(material, copies[key_id]) for key_id, material in keys]

    def rate_bps(self) -> float | None:
        """Key bits per second fetched since the first fetch (``None`` before a second has passed)."""
        elapsed = time.monotonic() - self.since if self.since is not None else 0.0
        return self.key_bits / elapsed if elapsed >= 1.0 else None


@dataclass
class Interconnect(LinkFeed):
    """A QKD link from one of this KME's nodes (``a``) to a node of another KME (``b``): one-time pads for the
    keys forwarded between the two KMEs (:mod:`qfabric.kms.interkme`). Each direction uses its own half of
    the link's key (the blocks of the stream named for its sending end), at half the link's rate."""

    link: str = ""
    remote_kme: str = ""
    device: DeviceLink | None = None  # the link's QKD devices (ETSI 014), if it has them: the pads are their keys
    owed_bits: float = 0.0  # pads this end may still send (refilled at half the link's rate, capped like a pool)
    send_block: int = -1  # the block of this end's stream that pads are sent from, its key and next unit
    send_data: bytes = b""
    send_unit: int = 0
    received: dict[int, bytes] = field(default_factory=dict)  # the other end's blocks seen lately


@dataclass
class PairFeed:
    """BBM92 on entangled pairs delivered end to end (by a request of the network, or by a satellite's pair
    source over its passes): keys between the two nodes that no node between them, nor the satellite, knows.
    ``name`` is the QKD service's (``satellite/a-b`` for a satellite's), ``request`` what delivered the pairs;
    ``blocks`` are ``(ready_s, alice bits, bob bits)``: a block's key exists once its last pair is in."""

    a: str
    b: str
    name: str
    request: str
    blocks: list[tuple[float, np.ndarray, np.ndarray]]
    qber: float | None
    pairs: int
    released_blocks: int = 0
    released_units: int = 0
    run: int = 0  # which measurement run of the pairs (one per supply on a database: a restart never replays one)

    def up_at(self, _t_s: float) -> bool:  # its keys wait in the pools until used
        return True


@dataclass
class PassFeed:
    """Decoy BB84 from a trusted satellite ``a`` to ground station ``b``: each pass's key is ready when its window
    closes (the pass distilled as one block). ``passes`` are :func:`~qfabric.scenario.satellite.decoy_passes`'s."""

    a: str
    b: str
    passes: list[dict]
    released_passes: int = 0
    released_units: int = 0

    @property
    def key(self) -> tuple[str, str]:
        return tuple(sorted((self.a, self.b)))

    def up_at(self, _t_s: float) -> bool:  # its keys wait in the pools between passes
        return True

    @property
    def qber(self) -> float | None:
        """The QBER of the last pass released."""
        return self.passes[self.released_passes - 1]["qber"] if self.released_passes else None


def _state(c: Condition) -> State:
    return (c.extra_loss_db, c.detector_factor)


class KeySupply:
    """Moves QKD keys into ``store`` for the SAE pairs of one KME, following ``faults`` in simulated time."""

    def __init__(self, scenario: Scenario, store: KeyStore, kme_id: str, pool_of, tick_s: float = 0.2,
                 rate_scale: float = 1.0, faults: list[Fault] | None = None,
                 entanglement: dict[str, tuple[np.ndarray, np.ndarray]] | None = None, top_up_at: float = 0.0):
        if not 0 < rate_scale <= 1:
            raise QfabricError(f"rate_scale = {rate_scale}: expected a fraction in (0, 1]")
        if not 0 <= top_up_at < 1:
            raise QfabricError(f"top_up_at = {top_up_at}: expected a fraction of the pool in [0, 1)")
        self.rate_scale = rate_scale
        if scenario.kms is None:
            raise QfabricError(f"scenario {scenario.name!r} has no kms section")
        kme = next((k for k in scenario.kms.kmes if k.id == kme_id), None)
        if kme is None:
            raise QfabricError(f"no KME {kme_id!r} in the scenario; KMEs are {[k.id for k in scenario.kms.kmes]}")
        self.scenario, self.store, self.tick_s = scenario, store, tick_s
        self.unit_bits = scenario.kms.key_size_bits
        self.max_units = scenario.kms.max_key_count
        # a pool is topped up once this many of its keys are gone (1: every tick); batches save store commits
        self.top_up_units = max(1, int(top_up_at * self.max_units))
        self.now_s = 0.0
        self.graph = nx.Graph()
        self.graph.add_nodes_from(kme.nodes)
        fibres = {link.name: link for link in scenario.links}
        self.feeds: dict[tuple[str, str], LinkFeed] = {}
        self.devices: dict[tuple[str, str], DeviceLink] = {}
        for q in scenario.qkd:
            if q.protocol == "decoy-bb84" and set(fibres[q.link].between) <= set(kme.nodes):
                f = fibres[q.link]
                a, b = f.between
                self.graph.add_edge(a, b, length_km=f.length_km)
                if q.supply is not None:  # real devices: their keys, their key IDs
                    device = DeviceLink(a, b, q)
                    self.devices[device.key] = device
                    continue
                feed = LinkFeed(a, b, q, qkd_channel(scenario, q),  # a free-space link: its own loss
                                link_conditions(faults or [], f.name, (a, b), math.inf))
                self.feeds[feed.key] = feed
        self.satellites: dict[tuple[str, str], PassFeed] = {}
        for sat in scenario.satellites:
            for q in sat.qkd if sat.trusted_relay else ():
                if q.station in kme.nodes:
                    feed = PassFeed(sat.name, q.station, decoy_passes(scenario, sat, q))
                    self.satellites[feed.key] = feed
                    nearest = min((p["range_km_min"] for p in feed.passes), default=sat.orbit.altitude_km)
                    self.graph.add_edge(sat.name, q.station, length_km=nearest)
        self.e2e: dict[tuple[str, str], PairFeed] = {}
        requests = {r.name: r for r in scenario.all_requests()}
        for q in scenario.qkd:
            request = requests.get(q.request or (next(iter(requests)) if len(requests) == 1 else ""))
            if q.protocol == "bbm92" and request is not None and {request.source, request.target} <= set(kme.nodes):
                if entanglement is None:
                    from qfabric.scenario.build import delivered_pairs  # the network run, only when needed

                    entanglement = delivered_pairs(scenario)
                feed = self._bbm92_feed(q, request, *entanglement[request.name])
                self.e2e[tuple(sorted((feed.a, feed.b)))] = feed
        # a satellite's pair source: a BBM92 link between its two stations (the satellite holds no key)
        self.sky_links: dict[tuple[str, str], PairFeed] = {}
        for sat in scenario.satellites:
            for source in sat.pairs:
                if set(source.stations) <= set(kme.nodes):
                    passes = pair_passes(scenario, sat, source)
                    feed = self._satellite_bbm92_feed(sat, source, passes)
                    self.sky_links[tuple(sorted((feed.a, feed.b)))] = feed
                    summed = min((p["summed_range_km_min"] for p in passes), default=2 * sat.orbit.altitude_km)
                    self.graph.add_edge(feed.a, feed.b, length_km=summed)
        trusted = scenario.kms.trusted_nodes
        self.trusted = (set(kme.nodes) if trusted is None else set(trusted)) | {f.a for f in self.satellites.values()}
        self.kme_id = kme_id
        self._interconnects(scenario, kme, faults)
        # endpoints of relays inside the domain: the KME's SAEs, and the links to neighbour KMEs (gateways)
        ends = [(s.id, s.node) for s in scenario.kms.saes if s.node in kme.nodes]
        ends += [(gateway(n), f.a) for n, f in self.neighbours.items()]
        self.pairs = []
        self._relay_pools: dict[tuple[str, str], str | None] = {}
        for (e1, n1), (e2, n2) in itertools.combinations(ends, 2):
            self._relay_pools[tuple(sorted((e1, e2)))] = None if n1 == n2 else pool_of(e1, e2)
            if n1 == n2:
                continue
            try:  # keys are relayed over the shortest chain of QKD links (trusted nodes)
                path = shortest_path(self._relayable(self.graph, n1, n2), n1, n2, metric="length")
            except NoRouteError as error:
                if tuple(sorted((n1, n2))) not in self.e2e:
                    raise QfabricError(f"{e1!r} and {e2!r}: no chain of QKD links joins their nodes "
                                       f"({error}), and no entanglement-based key either") from None
                path = [n1, n2]
            self.pairs.append((e1, e2, path, pool_of(e1, e2)))
        self.relayed_over: dict[tuple[str, str], list[str] | None] = {(s1, s2): path for s1, s2, path, _ in self.pairs}
        self.sources: dict[tuple[str, str], dict[str, int]] = {
            (s1, s2): {"bbm92_end_to_end": 0, "trusted_relay": 0} for s1, s2, _, _ in self.pairs}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.RLock()  # distillation and ticks: one at a time
        self._ready = threading.Event()  # every link distilled once (prime done)
        self.background = False  # fed by start(): status calls never wait for a distillation
        self.error: str | None = None

    def _interconnects(self, scenario: Scenario, kme, faults: list[Fault] | None) -> None:
        """The QKD links from this KME's nodes to other KMEs' (``self.neighbours``: one per neighbour KME) and the
        route to every KME reachable over such links (``self.routes``: KME -> the neighbour keys go through)."""
        owner = {node: k.id for k in scenario.kms.kmes for node in k.nodes}
        fibres = {link.name: link for link in scenario.links}
        kmes = nx.Graph()
        kmes.add_nodes_from(k.id for k in scenario.kms.kmes)
        self.neighbours: dict[str, Interconnect] = {}
        self.interconnects: dict[str, Interconnect] = {}
        for q in scenario.qkd:
            f = fibres.get(q.link) if q.protocol == "decoy-bb84" else None
            if f is None or owner.get(f.between[0]) == owner.get(f.between[1]) or None in (
                    owner.get(f.between[0]), owner.get(f.between[1])):
                continue
            kmes.add_edge(owner[f.between[0]], owner[f.between[1]])
            if kme.id not in (owner[f.between[0]], owner[f.between[1]]):
                continue
            here, there = f.between if owner[f.between[0]] == kme.id else f.between[::-1]
            feed = Interconnect(here, there, q, qkd_channel(scenario, q),
                                link_conditions(faults or [], f.name, tuple(f.between), math.inf), link=f.name,
                                remote_kme=owner[there], device=DeviceLink(*f.between, q) if q.supply else None)
            self.interconnects[f.name] = feed
            self.neighbours.setdefault(feed.remote_kme, feed)  # the first link to a neighbour carries its keys
        paths = nx.single_source_shortest_path(kmes, kme.id)
        self.routes = {dest: path[1] for dest, path in paths.items() if len(path) > 1}

    def _relayable(self, graph: nx.Graph, a: str, b: str) -> nx.Graph:
        """``graph`` without the nodes not trusted to relay (the two ends stay)."""
        hidden = [n for n in graph.nodes if n not in self.trusted and n not in (a, b)]
        return nx.restricted_view(graph, hidden, []) if hidden else graph

    # ---- distillation -------------------------------------------------------------------------------

    def _measurement(self, service: str) -> tuple[int, str]:
        """A new measurement of a BBM92 service's pairs (one per supply on a database: a restart never replays
        one): its number, taken from the store first, and the seeded stream its draws come from."""
        measurement = self.store.take_block(f"kms/{service}")
        return measurement, f"kms/{service}" if measurement == 0 else f"kms/{service}/run{measurement}"

    def _bbm92_feed(self, spec: QkdSpec, request, times: np.ndarray, weights: np.ndarray) -> PairFeed:
        """Distill the pairs delivered to ``request`` with BBM92, block by block, each block ready at its last
        pair's delivery."""
        blocks: list[tuple[float, np.ndarray, np.ndarray]] = []
        qber = None
        measurement = 0
        if len(weights) >= 2:
            size = spec.block_pairs or len(weights)
            measurement, stream = self._measurement(spec.name)
            seed = int(stream_seed(self.scenario.seed, stream).generate_state(1)[0])
            run = run_bbm92(weights, seed=seed, variant=spec.cascade, eps_sec=spec.eps_sec, eps_cor=spec.eps_cor,
                            pair_rate_hz=len(weights) / self.scenario.duration_s, block_bits=size)
            qber = run.summary()["qber"]
            for i, block in enumerate(run.blocks):
                ready = float(times[min((i + 1) * size, len(times)) - 1])
                blocks.append((ready, block.alice_key, block.bob_key))
        return PairFeed(request.source, request.target, spec.name, request.name, blocks, qber, len(weights),
                        run=measurement)

    def _satellite_bbm92_feed(self, sat: SatelliteSpec, source: PairSourceSpec, passes: list[dict]) -> PairFeed:
        """BBM92 on a satellite pair source's coincidences over its ``passes`` (:func:`pair_passes`,
        docs/free-space.md): each pass's true pairs and accidentals drawn (Poisson, seeded from the scenario),
        measured and post-processed in full, all the run's coincidences as one block (the report's reading), ready
        when the last pass ends. True pairs err with ``intrinsic_qber`` in each basis, accidentals with 1/2."""
        a, b = source.stations
        name = f"{sat.name}/{a}-{b}"
        measurement, stream = self._measurement(name)
        rng = np.random.default_rng(stream_seed(self.scenario.seed, stream + "/coincidences"))
        e0 = source.intrinsic_qber
        true_pair = [(1 - e0) ** 2, e0 * (1 - e0), e0 * (1 - e0), e0**2]  # Phi+, Psi+ (bit), Phi- (phase), Psi-
        per_pass = [rng.permutation(np.vstack([np.tile(true_pair, (rng.poisson(x["pairs"]), 1)),
                                               np.full((rng.poisson(x["accidentals"]), 4), 0.25)])) for x in passes]
        rows = np.concatenate(per_pass) if per_pass else np.zeros((0, 4))
        blocks, qber = [], None
        if len(rows) >= 2:
            seed = int(stream_seed(self.scenario.seed, stream).generate_state(1)[0])
            run = run_bbm92(rows, p_z=source.p_z, seed=seed, eps_sec=source.eps_sec, eps_cor=source.eps_cor,
                            pair_rate_hz=len(rows) / self.scenario.duration_s, block_bits=len(rows))
            qber = run.summary()["qber"]
            blocks = [(passes[-1]["end_s"], block.alice_key, block.bob_key) for block in run.blocks]
        return PairFeed(a, b, name, sat.name, blocks, qber, len(rows), run=measurement)

    def buffer(self, feed: LinkFeed, state: State) -> KeyBuffer:
        """The link's key in ``state``, distilled the first time it is needed."""
        with self._lock:
            buf = feed.buffers.get(state)
            if buf is None:
                buf = feed.buffers[state] = KeyBuffer()
                try:
                    self._distill(feed, state)
                except BaseException:
                    del feed.buffers[state]  # not distilled: the next caller tries again
                    raise
            return buf

    def _known(self, feed: LinkFeed, state: State) -> KeyBuffer | None:
        """The link's key in ``state`` if distilled already (never distils: for status calls)."""
        buf = feed.buffers.get(state)
        return buf if buf is not None and buf.blocks > 0 else None

    @staticmethod
    def stream_name(feed: LinkFeed, state: State) -> str:
        """The seeded stream of a link's key in ``state``; block ``n`` of it is ``f"{stream_name}/{n}"``."""
        extra_db, factor = state
        return f"kms/{feed.spec.name}" if state == NOMINAL else f"kms/{feed.spec.name}/{extra_db:g}dB/x{factor:g}"

    def _distill(self, feed: LinkFeed, state: State) -> None:
        """One more block of the link's key in ``state``.

        The link is simulated and post-processed once per state and process (:func:`distil_decoy`, shared with
        the report); that run fixes the block's rate, QBER and size. Block 0 of a stream is the run's own key;
        a later block (the link keeps producing, or a restart continues the stream) is the same number of bits
        drawn from the block's seeded stream, equal at both ends: what another distillation of the same link
        would output (uniform key, identical up to ``eps_cor``) without simulating it again."""
        buf = feed.buffers[state]
        base = self.stream_name(feed, state)
        block = self.store.take_block(base)  # committed before any of its key is released: never replayed
        run = distil_decoy(self.scenario, feed.spec, *state)
        if block == 0:
            alice = [b.alice_key for b in run.blocks]
            bob = [b.bob_key for b in run.blocks]
        else:
            alice = [self._stream_bits(f"{base}/{block}", run.key_bits)]
            bob = [alice[0].copy()]
        buf.blocks += 1
        buf.stream_block = block
        buf.rate_bps = run.secret_key_rate_bps
        buf.qber = run.summary()["qber"]
        keep_a, keep_b = buf.alice[buf.released_bits:], buf.bob[buf.released_bits:]
        buf.alice = np.concatenate([keep_a, *alice])
        buf.bob = np.concatenate([keep_b, *bob])
        buf.released_bits = 0
        if buf.rate_bps <= 0 and state == NOMINAL:
            raise QfabricError(f"QKD service {feed.spec.name!r} produces no key: "
                               + "; ".join(sorted({b.reason for b in run.blocks if b.reason})))

    def prime(self) -> dict[str, float]:
        """Distill every link once in its nominal state; returns each QKD service's secret-key rate (bit/s)."""
        links = [*self.feeds.values(), *(f for f in self.interconnects.values() if f.device is None)]
        rates: dict[str, float | None] = {f.spec.name: self.buffer(f, NOMINAL).rate_bps for f in links}
        ends = [(d, 0) for d in self.devices.values()]
        ends += [(f.device, self._end(f)) for f in self.interconnects.values() if f.device is not None]
        for device, end in ends:  # reachable, and the certificates accepted: a status call
            try:
                device.status(end)
            except QfabricError as err:
                raise QfabricError(f"QKD service {device.spec.name!r}: its device at "
                                   f"{device.supply.ends[0].url} answered: {err}") from None
            rates[device.spec.name] = None  # measured once keys flow
        self._ready.set()
        return rates

    @property
    def ready(self) -> bool:
        """Every link has been distilled once (:meth:`prime`): the supply is flowing."""
        return self._ready.is_set()

    # ---- forwarding to other KMEs (qfabric.kms.interkme.KeyPaths) -------------------------------------

    def relay_pool(self, a: str, b: str) -> str | None:
        """The pool of keys relayed between endpoints ``a`` and ``b`` (SAE IDs or gateways) inside this KME's
        domain; ``None`` when both are at one node."""
        try:
            return self._relay_pools[tuple(sorted((a, b)))]
        except KeyError:
            raise QfabricError(f"KME {self.kme_id}: no relay between {a!r} and {b!r}") from None

    def _stream_bits(self, name: str, bits: int) -> np.ndarray:
        """``bits`` key bits (0/1 uint8) of the seeded stream ``name``: the same wherever the scenario's seed is."""
        return np.random.default_rng(stream_seed(self.scenario.seed, name)).integers(0, 2, bits, dtype=np.uint8)

    def _pad_block(self, feed: Interconnect, sender: str, block: int) -> bytes:
        """Block ``block`` of the link's key in the direction sent from node ``sender``, whole units, packed: the
        same at both ends (the seeded stream of the simulated link, the size of its nominal distilled block)."""
        run = distil_decoy(self.scenario, feed.spec, *NOMINAL)
        bits = run.key_bits // self.unit_bits * self.unit_bits
        return np.packbits(self._stream_bits(f"kms/{feed.spec.name}/from/{sender}/{block}", bits)).tobytes()

    @staticmethod
    def _end(feed: Interconnect) -> int:
        """Which end of its devices' link is this KME's (the order of the link's ``between``)."""
        return 0 if feed.device.a == feed.a else 1

    def pads_available(self, neighbour: str) -> int:
        feed = self.neighbours.get(neighbour)
        if feed is not None and feed.device is not None:
            try:
                return int(feed.device.status(self._end(feed))["stored_key_count"])
            except (QfabricError, KeyError, TypeError, ValueError):
                return 0
        if feed is None or not feed.up_at(self.now_s):
            return 0
        return int(feed.owed_bits // self.unit_bits)

    def take_pads(self, neighbour: str, units: int) -> tuple[str, list[tuple[str, bytes]]]:
        """``units`` fresh one-time pads of the link to ``neighbour`` (``"block.unit"`` IDs of this end's stream;
        a block number is taken from the store before use, so a restart never sends a pad twice)."""
        with self._lock:
            feed = self.neighbours.get(neighbour)
            if feed is None:
                raise QfabricError(f"KME {self.kme_id} has no QKD link to KME {neighbour}")
            if feed.device is not None:  # the devices' keys, named by their key IDs
                end = self._end(feed)
                try:
                    return feed.link, feed.device.call(end, "enc_keys", feed.device.sae_ids[1 - end], number=units,
                                                        size=self.unit_bits)
                except QfabricError as err:
                    raise KeysExhausted(f"the devices of link {feed.link!r}: {err}") from None
            if not feed.up_at(self.now_s):
                raise KeysExhausted(f"the link {feed.link!r} to KME {neighbour} is down")
            if feed.owed_bits < units * self.unit_bits:
                raise KeysExhausted(f"the link {feed.link!r} to KME {neighbour} has {self.pads_available(neighbour)} "
                                    f"pads of {self.unit_bits} bits, {units} needed")
            unit_bytes = self.unit_bits // 8
            pads: list[tuple[str, bytes]] = []
            while len(pads) < units:
                if feed.send_unit * unit_bytes >= len(feed.send_data):  # this block is used up: the next one
                    feed.send_block = self.store.take_block(f"kms/{feed.spec.name}/from/{feed.a}")
                    feed.send_data, feed.send_unit = self._pad_block(feed, feed.a, feed.send_block), 0
                    if not feed.send_data:
                        raise QfabricError(f"QKD service {feed.spec.name!r}: its blocks hold no whole key unit")
                i = feed.send_unit
                pads.append((f"{feed.send_block}.{i}", feed.send_data[i * unit_bytes : (i + 1) * unit_bytes]))
                feed.send_unit += 1
            feed.owed_bits -= units * self.unit_bits
            return feed.link, pads

    def pads(self, neighbour: str, link: str, pad_ids) -> list[bytes]:
        """This end's copy of the pads ``pad_ids`` that ``neighbour`` sent on ``link``."""
        feed = self.interconnects.get(link)
        if feed is None or feed.remote_kme != neighbour:
            raise QfabricError(f"link {link!r} does not join KME {self.kme_id} to KME {neighbour}")
        if feed.device is not None:  # this end's device hands its copies by key ID
            end = self._end(feed)
            copies = dict(feed.device.call(end, "dec_keys", feed.device.sae_ids[1 - end], list(pad_ids)))
            return [copies[p] for p in pad_ids]
        unit_bytes = self.unit_bits // 8
        out = []
        with self._lock:
            for pad_id in pad_ids:
                block_text, _, unit_text = pad_id.partition(".")
                if not (block_text.isdigit() and unit_text.isdigit() and block_text.isascii() and unit_text.isascii()):
                    raise QfabricError(f"pad ID {pad_id[:40]!r}: expected 'block.unit'")
                block, unit = int(block_text), int(unit_text)
                data = feed.received.get(block)
                if data is None:
                    if len(feed.received) >= 8:  # keep the last few of the peer's blocks
                        feed.received.pop(min(feed.received))
                    data = feed.received[block] = self._pad_block(feed, feed.b, block)
                if unit >= len(data) // unit_bytes:
                    raise QfabricError(f"pad ID {pad_id!r}: block {block} has {len(data) // unit_bytes} units")
                out.append(data[unit * unit_bytes : (unit + 1) * unit_bytes])
        return out

    # ---- what the links supply ----------------------------------------------------------------------

    def rate_at(self, feed: LinkFeed, t_s: float) -> float:
        """The link's secret-key rate at ``t_s`` (0 while cut), before ``rate_scale``."""
        c = feed.condition_at(t_s)
        return self.buffer(feed, _state(c)).rate_bps if c.up else 0.0

    def supplied_bits(self, feed: LinkFeed, t0: float, t1: float) -> float:
        """Key bits the link releases over ``[t0, t1)`` (with ``rate_scale``)."""
        total = 0.0
        for c in feed.conditions:
            overlap = min(c.end_s, t1) - max(c.start_s, t0)
            if overlap > 0 and c.up:
                total += self.buffer(feed, _state(c)).rate_bps * overlap
        return total * self.rate_scale

    def path_now(self, sae_a: str, sae_b: str) -> list[str] | None:
        """The chain of links up now that carries this SAE pair's keys, or None."""
        return self.relayed_over.get((sae_a, sae_b), self.relayed_over.get((sae_b, sae_a)))

    def _carriers(self, sae_a: str, sae_b: str):
        """What carries this SAE pair's keys now: ``(pair, path, feeds, passes)``, the pair as in
        :attr:`pairs`, its path now (None: no path up), and its hops' link feeds and satellite passes (both
        empty unless every hop is simulated); None if the pair is not this KME's."""
        for pair in self.pairs:
            if {pair[0], pair[1]} == {sae_a, sae_b}:
                path = self.path_now(pair[0], pair[1])
                hops = [tuple(sorted(h)) for h in zip(path, path[1:], strict=False)] if path is not None else []
                sky = self.satellites | self.sky_links  # keys released pass by pass
                every = all(h in self.feeds or h in sky for h in hops)  # a fibre link or passes each
                feeds = [self.feeds[h] for h in hops if h in self.feeds] if every else []
                passes = [sky[h] for h in hops if h in sky] if every else []
                return pair, path, feeds, passes
        return None

    def _qbers(self, feeds: list[LinkFeed], passes: list[PassFeed | PairFeed]) -> tuple[list[KeyBuffer | None],
                                                                                     list[float]]:
        """The hops' key buffers in their state now, and the QBERs known of them and of the passes."""
        now = self.now_s
        if self.background:  # never waits for a distillation
            bufs = [self._known(f, _state(f.condition_at(now))) for f in feeds]
        else:
            bufs = [self.buffer(f, _state(f.condition_at(now))) for f in feeds]
        known = [b.qber for b in bufs if b is not None and b.qber is not None]
        return bufs, known + [f.qber for f in passes if f.qber is not None]

    def worst_link_qber(self, sae_a: str, sae_b: str) -> float | None:
        """The worst QBER among the links that carry this SAE pair's keys now (None: none known yet): what the
        KME checks for the ``max_link_qber`` extension, without the rest of :meth:`link_qber`."""
        carriers = self._carriers(sae_a, sae_b)
        if carriers is None:
            return None
        _, known = self._qbers(*carriers[2:])
        return max(known) if known else None

    def link_qber(self, sae_a: str, sae_b: str) -> dict | None:
        """ETSI status extension: the worst QBER among the links that carry this SAE pair's keys now (and the
        end-to-end BBM92 key's, when the pair has one); whether the supply is flowing yet (``supply_ready``) and
        how full the pair's pool is (``pool_fill``: of ``max_key_count``); and that the keys come from simulated
        links (``simulated_key_material``: reproducible from the scenario's seed, no secrecy by themselves).

        Fed in the background (:meth:`start`), it never waits for a distillation: links not distilled yet
        report no QBER and no rate."""
        carriers = self._carriers(sae_a, sae_b)
        if carriers is None:
            return None
        (s1, s2, usual, pool), path, feeds, passes = carriers
        bufs, known = self._qbers(feeds, passes)
        now = self.now_s
        if self.background:
            rates = [b.rate_bps if b is not None and f.up_at(now) else 0.0 for f, b in zip(feeds, bufs, strict=True)]
        else:
            rates = [self.rate_at(f, now) for f in feeds]
        rates += [self._pass_rate(f) for f in passes]
        e2e = self.e2e.get(tuple(sorted((usual[0], usual[-1]))))
        out = {"link_qber": max(known) if known else None,
               "hops": len(path) - 1 if feeds or passes else None,
               "simulated_key_rate_bps": min(rates, default=0.0),
               "end_to_end_qber": e2e.qber if e2e is not None else None,
               "supply_rate_scale": self.rate_scale, "supply_ready": self.ready,
               "pool_fill": round(min(1.0, self.store.available(pool) / self.max_units), 4),
               "simulated_key_material": path is None or any(
                   tuple(sorted((a, b))) not in self.devices for a, b in zip(path, path[1:], strict=False))}
        if self.error is not None:
            out["supply_error"] = self.error
        return out

    def links_now(self) -> dict[str, dict]:
        """Each QKD service's link now: up, its key rate (bit/s) and QBER."""
        out = {}
        for f in self.feeds.values():
            c = f.condition_at(self.now_s)
            buf = self.buffer(f, _state(c)) if c.up else None
            out[f.spec.name] = {"up": c.up, "key_rate_bps": buf.rate_bps if buf else 0.0,
                                "qber": buf.qber if buf else None}
        for d in self.devices.values():  # what the devices delivered; their QBER is theirs to tell
            out[d.spec.name] = {"up": d.error is None, "key_rate_bps": d.rate_bps(), "qber": None}
        for f in self.satellites.values():  # a satellite's passes so far, averaged over the run so far
            out[f"{f.a}/{f.b}"] = {"up": True, "key_rate_bps": self._pass_rate(f), "qber": f.qber}
        for f in self.sky_links.values():  # a satellite's pairs: BBM92 between its stations, released so far
            out[f.name] = {"up": True, "key_rate_bps": self._pass_rate(f), "qber": f.qber}
        return out

    def _pass_rate(self, feed: PassFeed | PairFeed) -> float:
        """The key a satellite link released so far per second of the run so far (bit/s)."""
        return feed.released_units * self.unit_bits / self.now_s if self.now_s > 0 else 0.0

    def tick(self, dt: float) -> None:
        """Advance simulated time by ``dt`` seconds: release every link's key for it, then relay what every SAE
        pair can get over the links up at the new time."""
        with self._lock:
            self._tick(dt)

    def _tick(self, dt: float) -> None:
        t0, t1 = self.now_s, self.now_s + dt
        for feed in self.feeds.values():
            room = self.max_units - self.store.available(link_pool(feed.a, feed.b, feed.a))
            for c in feed.conditions:
                overlap = min(c.end_s, t1) - max(c.start_s, t0)
                if overlap <= 0 or not c.up or room < self.top_up_units:
                    continue
                self._release(feed, _state(c), overlap)
        failed = []
        for device in self.devices.values():
            room = self.max_units - self.store.available(link_pool(device.a, device.b, device.a))
            if room >= self.top_up_units:
                try:
                    pairs = device.fetch(min(room, device.supply.keys_per_request), self.unit_bits)
                except QfabricError as err:  # reported after this tick; the link is down until a fetch works
                    device.error = f"{type(err).__name__}: {err}"
                    failed.append(f"QKD service {device.spec.name!r}: {device.error}")
                    continue
                device.error = None
                device.released_units += self.store.add_link_units(link_pool(device.a, device.b, device.a),
                                                                   link_pool(device.a, device.b, device.b), pairs)
        for feed in self.interconnects.values():  # pads for forwarding: half the link's key each way
            cap = self.max_units * self.unit_bits
            for c in feed.conditions if feed.device is None else ():
                overlap = min(c.end_s, t1) - max(c.start_s, t0)
                if overlap > 0 and c.up:
                    rate = self.buffer(feed, _state(c)).rate_bps
                    feed.owed_bits = min(cap, feed.owed_bits + rate * self.rate_scale * overlap / 2)
        self.now_s = t1
        for feed in self.satellites.values():
            while feed.released_passes < len(feed.passes) and feed.passes[feed.released_passes]["end_s"] < t1:
                self._release_pass(feed, feed.passes[feed.released_passes])
                feed.released_passes += 1
        for feeds, pool_of_end in ((self.e2e, e2e_pool), (self.sky_links, link_pool)):
            for feed in feeds.values():
                while feed.released_blocks < len(feed.blocks) and feed.blocks[feed.released_blocks][0] < t1:
                    _, alice, bob = feed.blocks[feed.released_blocks]
                    feed.released_units += feed_link(self.store, feed.a, feed.b, alice, bob, self.unit_bits,
                                                     pool=pool_of_end)
                    feed.released_blocks += 1
        up = nx.Graph()
        up.add_nodes_from(self.graph.nodes)
        up.add_edges_from((f.a, f.b, {"length_km": self.graph.edges[f.a, f.b]["length_km"]})
                          for f in [*self.feeds.values(), *self.devices.values(), *self.satellites.values(),
                                    *self.sky_links.values()]
                          if f.up_at(t1))
        for i, (s1, s2, usual, pool) in enumerate(self.pairs):
            room = self.max_units - self.store.available(pool)
            e2e = self.e2e.get(tuple(sorted((usual[0], usual[-1]))))
            if room < self.top_up_units:
                room = 0
            if e2e is not None and room > 0:  # end-to-end keys first: no node between the two is trusted
                ends = (e2e_pool(e2e.a, e2e.b, usual[0]), e2e_pool(e2e.a, e2e.b, usual[-1]))
                count = min(room, self.store.available(ends[0]))
                if count > 0:
                    self.store.relay([ends], pool, count)
                    self.sources[(s1, s2)]["bbm92_end_to_end"] += count
                    room -= count
            try:
                path = shortest_path(self._relayable(up, usual[0], usual[-1]), usual[0], usual[-1], metric="length")
            except NoRouteError:
                self.relayed_over[(s1, s2)] = None
                continue
            self.relayed_over[(s1, s2)] = path
            hops = [link_pool(a, b, end) for a, b in zip(path, path[1:], strict=False) for end in (a, b)]
            share = min(self.store.available(h) for h in hops) // (len(self.pairs) - i)  # fair among later pairs
            count = min(room, share)
            if count > 0:
                relay_path(self.store, path, pool, count)
                self.sources[(s1, s2)]["trusted_relay"] += count
        if failed:
            raise QfabricError("; ".join(failed))


    def _release_pass(self, feed: PassFeed, passed: dict) -> None:
        """A satellite pass's key into the pools of the satellite's link to the station: its finite-key length (with
        ``rate_scale``) of the next block of the link's seeded stream, equal at both ends (never replayed: the
        block number is taken from the store first)."""
        bits = int(passed["key_bits"] * self.rate_scale) // self.unit_bits * self.unit_bits
        if bits == 0:
            return
        base = f"kms/{feed.a}/{feed.b}"
        block = self.store.take_block(base)
        key = self._stream_bits(f"{base}/{block}", bits)
        feed.released_units += feed_link(self.store, feed.a, feed.b, key, key.copy(), self.unit_bits)

    def _release(self, feed: LinkFeed, state: State, seconds: float) -> None:
        """Release the link's key for ``seconds`` in ``state`` into its two pools."""
        buf = self.buffer(feed, state)
        buf.owed_bits += buf.rate_bps * self.rate_scale * seconds
        units = int(buf.owed_bits // self.unit_bits)
        if units == 0:
            return
        need = units * self.unit_bits
        if len(buf.alice) - buf.released_bits < need:
            self._distill(feed, state)
            if len(buf.alice) - buf.released_bits < need:  # a degraded state too poor to keep up: all it has
                need = (len(buf.alice) - buf.released_bits) // self.unit_bits * self.unit_bits
        lo, hi = buf.released_bits, buf.released_bits + need
        feed.released_units += feed_link(self.store, feed.a, feed.b, buf.alice[lo:hi], buf.bob[lo:hi], self.unit_bits)
        buf.released_bits = hi
        buf.owed_bits -= units * self.unit_bits

    def start(self, prime: bool = False, on_primed=None, on_error=None, start_s: float = 0.0) -> None:
        """Feed in real time (the KMS server): simulated time follows the wall clock, from a background thread.
        ``start_s``: first jump this many simulated seconds into the scenario (one tick, before the clock runs).

        ``prime``: distill every link first, in that thread (the caller can serve at once; status calls say
        ``supply_ready: false`` until it is done), then call ``on_primed(rates)``. A failure calls
        ``on_error(exception)``: during priming it ends the supply, later ones are reported and the supply
        carries on."""
        self.background = True

        def loop():
            if prime:
                try:
                    rates = self.prime()
                except Exception as err:  # reported, never lost in a dead thread
                    self.error = f"{type(err).__name__}: {err}"
                    if on_error is not None:
                        on_error(err)
                    return
                if on_primed is not None:
                    on_primed(rates)
            if start_s > 0:
                try:
                    self.tick(start_s)
                except Exception as err:
                    self.error = f"{type(err).__name__}: {err}"
                    if on_error is not None:
                        on_error(err)
            last = time.monotonic()
            while not self._stop.wait(self.tick_s):
                now = time.monotonic()
                try:
                    self.tick(now - last)
                    self.error = None
                except Exception as err:
                    message = f"{type(err).__name__}: {err}"
                    if on_error is not None and message != self.error:  # once per new error, not every tick
                        on_error(err)
                    self.error = message
                last = now

        self._thread = threading.Thread(target=loop, name="key-supply", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop feeding (a distillation under way finishes in its daemon thread, or dies with the process)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
