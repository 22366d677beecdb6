"""A real KME on loopback: its own process (so tests can kill -9 it), a dev PKI, a SQLite store."""

import ssl
from pathlib import Path

import pytest

from qfabric.kms.certs import make_dev_pki
from qfabric.kms.client import tls_context
from qfabric.kms.interkme import Forwarder
from qfabric.kms.local import LocalKme, ThreadedKme, free_port
from qfabric.kms.server import ServerConfig, open_store
from qfabric.scenario.keysupply import KeySupply

SAES = ["alice", "bob", "carol", "dave", "erin", "frank"]


class Kme(LocalKme):
    """The local KME plus a foreign CA, and raw TLS contexts for handshake tests."""

    def __init__(self, tmp):
        base = LocalKme.create(tmp, SAES, max_key_per_request=64, max_sae_id_count=2)
        super().__init__(base.directory, base.config, base.pki)
        self.foreign = make_dev_pki(tmp / "foreign", kmes=[], saes=["mallory"], ca_name="other-ca")

    def ssl_context(self, sae: str | None, foreign: bool = False) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki["ca"]))
        if sae:
            pki = self.foreign if foreign else self.pki
            ctx.load_cert_chain(str(pki[sae]), str(pki[f"{sae}.key"]))
        return ctx


@pytest.fixture(name="free_port")
def free_port_fixture() -> int:
    return free_port()


@pytest.fixture
def kme(tmp_path):
    server = Kme(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def kms_scenario() -> dict:
    """A three-node scenario whose one KME serves alice (a) and bob (b), keyed by two QKD links through t."""
    return {
        "name": "kms-serve", "seed": 1, "duration_s": 1.0,
        "nodes": [{"name": "a"}, {"name": "t"}, {"name": "b"}],
        "links": [{"name": "a-t", "between": ["a", "t"], "length_km": 15, "profile": "near-term"},
                  {"name": "t-b", "between": ["t", "b"], "length_km": 20, "profile": "near-term"}],
        "chain": {"from": "a", "to": "b"},
        "qkd": [{"name": "q-a-t", "link": "a-t", "max_simulated_pulses": 5e7},
                {"name": "q-t-b", "link": "t-b", "max_simulated_pulses": 5e7}],
        "kms": {"kmes": [{"id": "kme-x", "nodes": ["a", "t", "b"]}],
                "saes": [{"id": "alice", "node": "a"}, {"id": "bob", "node": "b"}], "key_size_bits": 256},
    }


class KmeDomain:
    """One KME of the scenario: its store, key supply (ticked by the test in simulated time) and HTTPS server."""

    def __init__(self, tmp: Path, scenario, kme: str, pki: dict, port: int, peers: dict[str, int]):
        owner = {node: k.id for k in scenario.kms.kmes for node in k.nodes}
        self.config = ServerConfig(kme_id=kme, saes={s.id: owner[s.node] for s in scenario.kms.saes},
                                   db_url=f"sqlite:///{tmp / (kme + '.db')}", secret_file=str(tmp / f"{kme}.kek"),
                                   certfile=str(pki[kme]), keyfile=str(pki[f"{kme}.key"]), cafile=str(pki["ca"]),
                                   port=port, limits={"key_size": 256, "max_key_count": 200})
        self.store = open_store(self.config)
        self.kme_config = self.config.kme()
        self.supply = KeySupply(scenario, self.store, kme, self.kme_config.pool)
        self.kme_config.forwarder = Forwarder(kme, self.config.saes,
                                              {p: f"https://127.0.0.1:{port}" for p, port in peers.items()},
                                              self.supply.routes, self.supply, self.store,
                                              tls_context(self.config.certfile, self.config.keyfile,
                                                          self.config.cafile))
        self.server = ThreadedKme(self.config, self.store, self.kme_config)

    def events(self, name: str) -> list[dict]:
        return [r for r in self.store.audit_log(10_000) if r["event"] == name]


@pytest.fixture(scope="session")
def kme_domain():
    """The class of one KME domain on loopback (:class:`KmeDomain`), for KME-to-KME tests."""
    return KmeDomain
