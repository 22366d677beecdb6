"""Simulated link keys never repeat, across restarts of the KME on one database included: a replayed seeded
stream would hand the relay the same one-time pads again."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from qfabric.kms.relay import e2e_pool, link_pool
from qfabric.kms.store import KeyStore
from qfabric.scenario import parse_scenario
from qfabric.scenario.keysupply import NOMINAL, KeySupply

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


class RecordingStore(KeyStore):
    """A store that remembers every unit of key material put into it, per pool."""

    def __init__(self, *args, seen: dict, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = seen

    def add_units(self, pool, materials):
        materials = list(materials)
        self.seen.setdefault(pool, []).extend(materials)
        return super().add_units(pool, materials)

    def add_link_units(self, pool_a, pool_b, pairs):
        pairs = list(pairs)
        self.seen.setdefault(pool_a, []).extend(a for a, _ in pairs)
        self.seen.setdefault(pool_b, []).extend(b for _, b in pairs)
        return super().add_link_units(pool_a, pool_b, pairs)


def pool_of(a, b):
    return "sae:" + "|".join(sorted((a, b)))


def short(scenario: dict) -> dict:
    """The KMS scenario with shorter QKD runs (2e7 pulses per link)."""
    for q in scenario["qkd"]:
        q["max_simulated_pulses"] = 2e7
    return scenario


def test_link_keys_never_repeat_across_restarts_on_one_database(tmp_path, kms_scenario):
    sc = parse_scenario(short(kms_scenario), "restarts")
    url = f"sqlite:///{tmp_path / 'kme.db'}"
    seen: dict[str, list[bytes]] = {}
    blocks = []
    for _ in range(4):  # four starts of the KME on the same database
        store = RecordingStore(url, b"k" * 32, seen=seen)
        supply = KeySupply(sc, store, "kme-x", pool_of)
        supply.prime()
        for _ in range(4):
            supply.tick(0.02)  # ~30 units per link per tick: some ticks need a block distilled anew
        blocks.append({f.spec.name: f.buffers[NOMINAL].stream_block for f in supply.feeds.values()})
        store.engine.dispose()
    ends = [link_pool(f.a, f.b, f.a) for f in supply.feeds.values()]  # one end of each link (the other holds a copy)
    material = [m for pool in ends for m in seen[pool]]
    assert len(material) > 400  # keys flowed in every run
    assert len(set(material)) == len(material)  # no unit of link key twice, within a run or across runs
    for pool in ends:  # and each run's key continued the stream where the last run stopped
        assert len(set(seen[pool])) == len(seen[pool])
    assert [b["q-a-t"] for b in blocks] == sorted(b["q-a-t"] for b in blocks) and blocks[0]["q-a-t"] >= 1
    assert blocks[-1]["q-a-t"] > blocks[0]["q-a-t"] + 2


def test_a_fresh_database_starts_every_stream_at_block_zero(tmp_path, kms_scenario):
    """Reproducible runs stay reproducible: two fresh stores get the same key (and the same as before the fix)."""
    sc = parse_scenario(short(kms_scenario), "fresh")
    firsts = []
    for run in range(2):
        seen: dict[str, list[bytes]] = {}
        store = RecordingStore(f"sqlite:///{tmp_path / f'fresh{run}.db'}", b"k" * 32, seen=seen)
        supply = KeySupply(sc, store, "kme-x", pool_of)
        supply.prime()
        supply.tick(0.01)
        feed = next(iter(supply.feeds.values()))
        assert feed.buffers[NOMINAL].stream_block == 0
        firsts.append(seen[link_pool(feed.a, feed.b, feed.a)][:5])
    assert firsts[0] == firsts[1]


def test_end_to_end_keys_never_repeat_across_restarts(tmp_path):
    data = yaml.safe_load((SCENARIOS / "three-hospitals-entangled.yaml").read_text())
    data["kms"]["max_key_count"] = 100_000
    data["kms"]["trusted_nodes"] = []
    for q in data["qkd"]:
        if q.get("protocol") == "bbm92":
            q["block_pairs"] = 20_000
        else:
            q["max_simulated_pulses"] = 2e7
    sc = parse_scenario(data, "entangled-restarts")
    pairs, fidelity = 40_000, 0.98
    w = (1 - fidelity) / 3
    weights = np.tile([fidelity, w, w, w], (pairs, 1))
    times = np.linspace(0, 600, pairs, endpoint=False) + 600 / pairs
    url = f"sqlite:///{tmp_path / 'kme.db'}"
    seen: dict[str, list[bytes]] = {}
    runs = []
    for _ in range(3):
        store = RecordingStore(url, b"k" * 32, seen=seen)
        supply = KeySupply(sc, store, "kme-metro", pool_of, rate_scale=1e-3,
                           entanglement={"a-c": (times, weights), "b-c": (times, weights)})
        supply.tick(700)  # every block of the delivered pairs is complete
        runs.append([f.run for f in supply.e2e.values()])
        store.engine.dispose()
    assert runs == [[0, 0], [1, 1], [2, 2]]  # each start measures the pairs anew
    for f in supply.e2e.values():
        pool = e2e_pool(f.a, f.b, f.a)
        assert len(seen[pool]) >= 3 * 5
        assert len(set(seen[pool])) == len(seen[pool])


def test_a_links_two_pools_are_fed_together_or_not_at_all():
    """A failure while adding one end's copy adds neither (a relay pairs the two pools' units in order)."""
    from qfabric.kms.relay import feed_link

    class FailingAtB(KeyStore):
        def _unit_row(self, pool, material, now):
            if pool == link_pool("a", "b", "b"):
                raise OSError("disk full")
            return super()._unit_row(pool, material, now)

    store = FailingAtB("sqlite://", b"k" * 32)
    bits = np.random.default_rng(3).integers(0, 2, 2048, dtype=np.uint8)
    with pytest.raises(OSError):
        feed_link(store, "a", "b", bits, bits, unit_bits=256)
    assert store.available(link_pool("a", "b", "a")) == store.available(link_pool("a", "b", "b")) == 0
