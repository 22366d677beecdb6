"""Crypto agility end to end: session keys from QKD keys over ETSI 014, audited fallback to post-quantum."""

import asyncio
import json

import httpx
import pytest

from qfabric.kms.broker import SessionBroker, jsonl_audit
from qfabric.kms.etsi import KmeConfig, create_app
from qfabric.kms.hybrid import Mode, ResponderKeys
from qfabric.kms.policy import NoKeyAvailable, Policy
from qfabric.kms.store import KeyStore
from qfabric.kms.tls import _with_tls


def brokers(kme, tmp_path, policy):
    audit = jsonl_audit(tmp_path / "audit.jsonl")
    return (SessionBroker("alice", kme.client("alice"), policy, audit),
            SessionBroker("bob", kme.client("bob"), policy, audit), tmp_path / "audit.jsonl")


def events(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_hybrid_session_keys_agree_and_only_the_key_id_travels(kme, tmp_path):
    kme.fill("alice", "bob", 5)
    alice, bob, log = brokers(kme, tmp_path, Policy("hybrid"))
    bob_keys = ResponderKeys.generate()
    hello, k_alice = alice.initiate("bob", bob_keys.public())
    assert hello.mode is Mode.HYBRID and hello.qkd_key_id is not None
    assert bob.respond("alice", hello, bob_keys) == k_alice
    assert [e["event"] for e in events(log)] == ["session", "session"]
    assert kme.accounting("alice", "bob")["claims_done"] == 1  # the QKD key was used once, by both


def test_empty_pool_falls_back_to_post_quantum_with_an_audit_event(kme, tmp_path):
    alice, bob, log = brokers(kme, tmp_path, Policy("hybrid", "pq-only"))
    bob_keys = ResponderKeys.generate()
    hello, k_alice = alice.initiate("bob", bob_keys.public())
    assert hello.mode is Mode.PQ_ONLY and hello.qkd_key_id is None
    assert bob.respond("alice", hello, bob_keys) == k_alice
    fallback = [e for e in events(log) if e["event"] == "fallback"]
    assert fallback == [{**fallback[0], "sae": "alice", "peer": "bob", "mode": "pq-only", "wanted": "hybrid",
                         "reason": "no QKD key available"}]


def test_qkd_only_without_fallback_refuses(kme, tmp_path):
    alice, _, _ = brokers(kme, tmp_path, Policy("qkd-only", "none"))
    with pytest.raises(NoKeyAvailable):
        alice.initiate("bob", ResponderKeys.generate().public())


def test_status_extension_carries_link_qber_and_drives_the_policy(tmp_path):
    from qfabric.kms.certs import make_dev_pki

    pki = make_dev_pki(tmp_path, kmes=["kme-a"], saes=["alice", "bob"])
    store = KeyStore("sqlite://", b"s" * 32)
    config = KmeConfig("kme-a", {"alice": "kme-a", "bob": "kme-a"},
                       status_extension=lambda m, s: {"link_qber": 0.14, "hops": 3})
    store.add_units(config.pool("alice", "bob"), [bytes(32)] * 4)
    app = create_app(config, store)
    cert = pki["alice"].read_text()
    transport = httpx.ASGITransport(app=_with_tls(app, {"client_cert_chain": [cert], "tls_version": "TLSv1.3"}))

    async def get_status():
        async with httpx.AsyncClient(transport=transport, base_url="https://kme-a") as http:
            return (await http.get("/api/v1/keys/bob/status")).json()

    status = asyncio.run(get_status())
    assert status["status_extension"] == {"link_qber": 0.14, "hops": 3}
    decision = Policy("hybrid").decide(status["stored_key_count"] > 0, status["status_extension"]["link_qber"])
    assert decision.fallback and decision.reason == "link QBER 0.140 above 0.11"


def test_max_link_qber_extension_one_request_and_no_key_spent_above_the_threshold(tmp_path):
    """A KME that knows its links' QBER enforces the caller's threshold itself: one ETSI request per
    session, and a refusal above the threshold spends no key."""
    from qfabric.apps.federated.wire import TimedKme
    from qfabric.kms.client import MAX_LINK_QBER, KmeError
    from qfabric.kms.local import LocalKme, ThreadedKme

    base = LocalKme.create(tmp_path, ["alice", "bob"])
    link = {"link_qber": 0.14}
    kme_config = base.config.kme()
    kme_config.status_extension = lambda master, slave: dict(link)
    base.fill("alice", "bob", 4)
    kme = ThreadedKme(base.config, base.store, kme_config)
    kme.start()
    try:
        with base.client("alice") as a, base.client("bob") as b:
            timed = TimedKme(a)
            audit = tmp_path / "audit.jsonl"
            alice = SessionBroker("alice", timed, Policy("hybrid", "pq-only", 0.11), jsonl_audit(audit))
            bob = SessionBroker("bob", b, Policy("hybrid"), jsonl_audit(audit))
            bob_keys = ResponderKeys.generate()

            hello, k_alice = alice.initiate("bob", bob_keys.public())  # noisy link: post-quantum only
            assert hello.mode is Mode.PQ_ONLY and bob.respond("alice", hello, bob_keys) == k_alice
            assert timed.take()[1] == 1 and base.accounting("alice", "bob")["units_free"] == 4
            [fallback] = [e for e in events(audit) if e["event"] == "fallback"]
            assert fallback["reason"] == "link QBER 0.140 above 0.11"

            link["link_qber"] = 0.02  # the link recovers: hybrid again, still one request
            hello, k_alice = alice.initiate("bob", bob_keys.public())
            assert hello.mode is Mode.HYBRID and bob.respond("alice", hello, bob_keys) == k_alice
            assert timed.take()[1] == 1 and base.accounting("alice", "bob")["units_free"] == 3

            with pytest.raises(KmeError) as bad:
                a.enc_keys("bob", extension_mandatory=[{MAX_LINK_QBER: "low"}])
            assert bad.value.status == 400 and MAX_LINK_QBER in bad.value.body["message"]
    finally:
        kme.stop()


def test_max_link_qber_is_checked_with_the_qber_alone_not_the_whole_status(tmp_path):
    """Given ``link_qber``, the KME checks the extension with it: the status extension (which counts the
    pool, a database query) is computed for status calls only."""
    from qfabric.kms.client import MAX_LINK_QBER, KmeError
    from qfabric.kms.local import LocalKme, ThreadedKme

    base = LocalKme.create(tmp_path, ["alice", "bob"])
    kme_config = base.config.kme()
    asked = {"qber": 0, "status": 0}

    def qber(master, slave):
        asked["qber"] += 1
        return 0.05

    def status(master, slave):
        asked["status"] += 1
        return {"link_qber": 0.05, "pool_fill": 1.0}

    kme_config.link_qber, kme_config.status_extension = qber, status
    base.fill("alice", "bob", 4)
    kme = ThreadedKme(base.config, base.store, kme_config)
    kme.start()
    try:
        with base.client("alice") as a:
            assert len(a.enc_keys("bob", extension_mandatory=[{MAX_LINK_QBER: 0.11}])) == 1
            with pytest.raises(KmeError) as noisy:
                a.enc_keys("bob", extension_mandatory=[{MAX_LINK_QBER: 0.04}])
            assert noisy.value.status == 503 and noisy.value.body["details"][0]["link_qber"] == 0.05
            assert asked == {"qber": 2, "status": 0} and base.accounting("alice", "bob")["units_free"] == 3
            assert a.status("bob")["status_extension"]["pool_fill"] == 1.0 and asked["status"] == 1
    finally:
        kme.stop()


@pytest.mark.parametrize("simulated", [True, False])
def test_qkd_only_on_simulated_keys_is_warned_and_audited_once_per_peer(tmp_path, caplog, simulated):
    from qfabric.kms.broker import SIMULATED_QKD_ONLY
    from qfabric.kms.local import LocalKme, ThreadedKme

    base = LocalKme.create(tmp_path, ["alice", "bob"])
    kme_config = base.config.kme()
    kme_config.status_extension = lambda master, slave: {"simulated_key_material": simulated}
    base.fill("alice", "bob", 4)
    kme = ThreadedKme(base.config, base.store, kme_config)
    kme.start()
    try:
        with base.client("alice") as a, base.client("bob") as b:
            audit = tmp_path / "audit.jsonl"
            alice = SessionBroker("alice", a, Policy("qkd-only"), jsonl_audit(audit))
            bob = SessionBroker("bob", b, Policy("qkd-only"), jsonl_audit(audit))
            bob_keys = ResponderKeys.generate()
            for _ in range(2):
                hello, k_alice = alice.initiate("bob", bob_keys.public())
                assert hello.mode is Mode.QKD_ONLY and bob.respond("alice", hello, bob_keys) == k_alice
            warnings = [e for e in events(audit) if e["event"] == "warning"]
            assert warnings == ([{**warnings[0], "sae": "alice", "peer": "bob", "mode": "qkd-only",
                                  "reason": SIMULATED_QKD_ONLY}] if simulated else [])
            assert (SIMULATED_QKD_ONLY in caplog.text) is simulated
            hybrid = SessionBroker("alice", a, Policy("hybrid"), jsonl_audit(tmp_path / "hybrid.jsonl"))
            hybrid.initiate("bob", bob_keys.public())  # hybrid keeps its secrecy from ML-KEM + X25519: no warning
            assert [e["event"] for e in events(tmp_path / "hybrid.jsonl")] == ["session"]
    finally:
        kme.stop()
