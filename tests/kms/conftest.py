"""A real KME on loopback: its own process (so tests can kill -9 it), a dev PKI, a SQLite store."""

import ssl

import pytest

from qfabric.kms.certs import make_dev_pki
from qfabric.kms.local import LocalKme, free_port

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
