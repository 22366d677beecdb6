"""Feed a KME's key store from a scenario's QKD links, at their simulated secret-key rates.

Every decoy-BB84 service on a link between two of the KME's nodes is simulated and distilled; its
keys (Alice's copy and Bob's) are released into the link's two pools as time passes, at the rate
the simulation measured, and distilled again when they run out. Keys for each SAE pair are relayed
along the chain of links between the SAEs' nodes, so a pair gets keys at the rate of its slowest
link, and no faster than the pool limit allows.

Simulating and post-processing a 1 GHz link in full costs more CPU than one second of its key is
worth on a small machine (about 1 s of CPU for 0.2 s of a metro link's key here), so at
``rate_scale=1`` a 2-core machine falls behind and pools fill more slowly than the simulated rate;
``rate_scale`` feeds a fixed fraction of it instead.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from qfabric.control.routing import NoRouteError, shortest_path
from qfabric.errors import QfabricError
from qfabric.kms.relay import feed_link, link_pool, relay_path
from qfabric.kms.store import KeyStore
from qfabric.qkd.link import run_decoy_bb84
from qfabric.qkd.theory import Channel
from qfabric.scenario.schema import QkdSpec, Scenario
from qfabric.sim.kernel import stream_seed


@dataclass
class LinkFeed:
    a: str
    b: str
    spec: QkdSpec
    channel: Channel
    rate_bps: float = 0.0
    alice: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint8))
    bob: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint8))
    owed_bits: float = 0.0
    blocks: int = 0
    released_bits: int = 0
    qber: float | None = None
    down: bool = False  # a failed link: produces nothing until the end of the run


class KeySupply:
    """Moves QKD keys into ``store`` for the SAE pairs of one KME."""

    def __init__(self, scenario: Scenario, store: KeyStore, kme_id: str, pool_of, tick_s: float = 0.2,
                 rate_scale: float = 1.0):
        if not 0 < rate_scale <= 1:
            raise QfabricError(f"rate_scale = {rate_scale}: expected a fraction in (0, 1]")
        self.rate_scale = rate_scale
        if scenario.kms is None:
            raise QfabricError(f"scenario {scenario.name!r} has no kms section")
        kme = next((k for k in scenario.kms.kmes if k.id == kme_id), None)
        if kme is None:
            raise QfabricError(f"no KME {kme_id!r} in the scenario; KMEs are {[k.id for k in scenario.kms.kmes]}")
        self.scenario, self.store, self.tick_s = scenario, store, tick_s
        self.unit_bits = scenario.kms.key_size_bits
        self.max_units = scenario.kms.max_key_count
        graph = nx.Graph()
        graph.add_nodes_from(kme.nodes)
        fibres = {link.name: link for link in scenario.links}
        for q in scenario.qkd:
            if q.protocol == "decoy-bb84" and set(fibres[q.link].between) <= set(kme.nodes):
                f = fibres[q.link]
                graph.add_edge(*f.between, length_km=f.length_km, spec=q)
        self.feeds = {}
        for a, b, data in graph.edges(data=True):
            f = fibres[data["spec"].link]
            self.feeds[tuple(sorted((a, b)))] = LinkFeed(a, b, data["spec"], Channel(
                f.length_km, f.attenuation_db_per_km, data["spec"].detector_efficiency,
                data["spec"].dark_count_yield, data["spec"].misalignment,
                afterpulse_probability=data["spec"].afterpulse_probability))
        saes = [s for s in scenario.kms.saes if s.node in kme.nodes]
        self.pairs = []
        for s1, s2 in itertools.combinations(saes, 2):
            if s1.node == s2.node:
                continue
            try:  # keys are relayed over the shortest chain of QKD links (trusted nodes)
                path = shortest_path(graph, s1.node, s2.node, metric="length")
            except NoRouteError as error:
                raise QfabricError(f"SAEs {s1.id!r} and {s2.id!r}: no chain of QKD links joins their nodes "
                                   f"({error})") from None
            self.pairs.append((s1.id, s2.id, path, pool_of(s1.id, s2.id)))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _distill(self, feed: LinkFeed) -> None:
        seed = int(stream_seed(self.scenario.seed, f"kms/{feed.spec.name}/{feed.blocks}").generate_state(1)[0])
        pulses = int(min(feed.spec.source_rate_hz * self.scenario.duration_s, feed.spec.max_simulated_pulses))
        run = run_decoy_bb84(feed.channel, pulses, seed=seed, variant=feed.spec.cascade, eps_sec=feed.spec.eps_sec,
                             eps_cor=feed.spec.eps_cor, source_rate_hz=feed.spec.source_rate_hz)
        feed.blocks += 1
        feed.rate_bps = run.secret_key_rate_bps
        feed.qber = run.summary()["qber"]
        keep_a, keep_b = feed.alice[feed.released_bits:], feed.bob[feed.released_bits:]
        feed.alice = np.concatenate([keep_a, *[b.alice_key for b in run.blocks]])
        feed.bob = np.concatenate([keep_b, *[b.bob_key for b in run.blocks]])
        feed.released_bits = 0
        if feed.rate_bps <= 0:
            raise QfabricError(f"QKD service {feed.spec.name!r} produces no key: "
                               + "; ".join(sorted({b.reason for b in run.blocks if b.reason})))

    def cut(self, service: str) -> None:
        """The QKD service's link fails: it releases no more keys (those already in pools stay usable)."""
        feed = next((f for f in self.feeds.values() if f.spec.name == service), None)
        if feed is None:
            raise QfabricError(f"no QKD service {service!r} feeds this KME; services: "
                               f"{sorted(f.spec.name for f in self.feeds.values())}")
        feed.down = True

    def link_qber(self, sae_a: str, sae_b: str) -> dict | None:
        """ETSI status extension: the worst QBER among the links that carry this SAE pair's keys."""
        for s1, s2, path, _ in self.pairs:
            if {s1, s2} == {sae_a, sae_b}:
                qbers = [self.feeds[tuple(sorted((a, b)))].qber for a, b in zip(path, path[1:], strict=False)]
                known = [q for q in qbers if q is not None]
                rates = [self.feeds[tuple(sorted((a, b)))].rate_bps for a, b in zip(path, path[1:], strict=False)]
                return {"link_qber": max(known) if known else None, "hops": len(path) - 1,
                        "simulated_key_rate_bps": min(rates), "supply_rate_scale": self.rate_scale}
        return None

    def prime(self) -> dict[str, float]:
        """Distill every link once; returns the secret-key rate of each QKD service (bit/s)."""
        for feed in self.feeds.values():
            self._distill(feed)
        return {f.spec.name: f.rate_bps for f in self.feeds.values()}

    def tick(self, dt: float) -> None:
        """Release ``dt`` seconds of every link's key, then relay what every SAE pair can get."""
        for feed in self.feeds.values():
            if feed.down or self.store.available(link_pool(feed.a, feed.b, feed.a)) >= self.max_units:
                continue
            feed.owed_bits += feed.rate_bps * self.rate_scale * dt
            units = int(feed.owed_bits // self.unit_bits)
            if units == 0:
                continue
            need = units * self.unit_bits
            if len(feed.alice) - feed.released_bits < need:
                self._distill(feed)
            lo, hi = feed.released_bits, feed.released_bits + need
            feed_link(self.store, feed.a, feed.b, feed.alice[lo:hi], feed.bob[lo:hi], self.unit_bits)
            feed.released_bits = hi
            feed.owed_bits -= need
        for i, (_, _, path, pool) in enumerate(self.pairs):
            room = self.max_units - self.store.available(pool)
            hops = [link_pool(a, b, end) for a, b in zip(path, path[1:], strict=False) for end in (a, b)]
            share = min(self.store.available(h) for h in hops) // (len(self.pairs) - i)  # fair among later pairs
            count = min(room, share)
            if count > 0:
                relay_path(self.store, path, pool, count)

    def start(self) -> None:
        def loop():
            last = time.monotonic()
            while not self._stop.wait(self.tick_s):
                now = time.monotonic()
                self.tick(now - last)
                last = now

        self._thread = threading.Thread(target=loop, name="key-supply", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
