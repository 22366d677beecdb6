"""Sessions kept over rounds: one key agreement keys ``rounds`` rounds, every round still takes a fresh QKD key,
and a hello that does not match its session is refused.

The two SAEs' KME is an in-memory stand-in with the ETSI 014 calls the broker makes (enc_keys, dec_keys);
the broker, the hybrid key agreement (ML-KEM-768 + X25519) and the round keys are the real ones.
"""

from __future__ import annotations

import json
import os
import uuid

import pytest

from qfabric.apps.federated.sessions import SessionMismatch, Sessions, continues_session
from qfabric.kms.broker import SessionBroker
from qfabric.kms.client import KmeError
from qfabric.kms.hybrid import ResponderKeys
from qfabric.kms.policy import Policy


class PairPool:
    """One pair's QKD keys: the master takes them with enc_keys, the slave claims each by ID once."""

    def __init__(self, keys: int):
        self.fresh = [(str(uuid.uuid4()), os.urandom(32)) for _ in range(keys)]
        self.taken: dict[str, bytes] = {}
        self.enc_requests = 0

    def enc_keys(self, slave, number=1, size=None, **kw):
        self.enc_requests += 1
        if len(self.fresh) < number:
            raise KmeError(503, {"message": "no keys"})
        out, self.fresh = self.fresh[:number], self.fresh[number:]
        self.taken.update(out)
        return out

    def dec_keys(self, master, key_ids):
        try:
            return [(k, self.taken.pop(k)) for k in key_ids]
        except KeyError:
            raise KmeError(404, {"message": "unknown key_ID"}) from None


def pair(pool: PairPool, rounds: int, policy: Policy | None = None):
    """Alice (initiator) and Bob (responder): their sessions, brokers and audit logs."""
    policy = policy or Policy("hybrid", "pq-only")
    audit: dict[str, list] = {"alice": [], "bob": []}
    brokers = {who: SessionBroker(who, pool, policy, audit[who].append) for who in audit}
    return Sessions("alice", rounds), Sessions("bob", rounds), brokers, audit


def test_a_key_agreement_keys_several_rounds_and_every_round_takes_a_fresh_qkd_key():
    pool, bob_keys = PairPool(20), ResponderKeys.generate()
    alice, bob, brokers, audit = pair(pool, rounds=3)
    agreements, round_keys = [], []
    for r in range(1, 8):
        hello, key = alice.initiate(brokers["alice"], "bob", bob_keys.public, r)
        agreements.append(not continues_session(hello))
        assert bob.respond(brokers["bob"], "alice", hello, bob_keys, r) == key
        round_keys.append(key)
    assert agreements == [True, False, False, True, False, False, True]  # rounds 1-3, 4-6, 7-
    assert len(set(round_keys)) == 7  # every round its own key
    assert len(pool.taken) == 0 and len(pool.fresh) == 20 - 7  # one QKD key per round, each claimed by Bob
    events = [e for e in audit["alice"] if e["event"] == "session"]
    assert [e.get("handshake", True) for e in events] == agreements and {e["mode"] for e in events} == {"hybrid"}


def test_a_hello_that_does_not_match_its_session_is_refused():
    pool, bob_keys = PairPool(20), ResponderKeys.generate()
    alice, bob, brokers, _ = pair(pool, rounds=10)
    hello, _ = alice.initiate(brokers["alice"], "bob", bob_keys.public, 1)
    bob.respond(brokers["bob"], "alice", hello, bob_keys, 1)
    hello, _ = alice.initiate(brokers["alice"], "bob", bob_keys.public, 2)
    with pytest.raises(SessionMismatch, match="is for round 2, not 3"):  # replayed in another round
        bob.respond(brokers["bob"], "alice", hello, bob_keys, 3)
    forged = json.loads(hello)
    forged["tag"] = "AAAAAAAAAAAAAAAAAAAAAA=="
    with pytest.raises(SessionMismatch, match="does not match its session"):
        bob.respond(brokers["bob"], "alice", json.dumps(forged).encode(), bob_keys, 2)
    with pytest.raises(SessionMismatch, match="does not hold"):  # a session Bob never agreed to
        Sessions("bob", 10).respond(brokers["bob"], "alice", hello, bob_keys, 2)
    longer = Sessions("alice", 20)  # an initiator that keeps sessions longer than the federation allows
    hello, _ = longer.initiate(brokers["alice"], "bob", bob_keys.public, 3)
    with pytest.raises(SessionMismatch, match="names rounds 3-22 in round 3 .sessions here last at most 10"):
        Sessions("bob", 10).respond(brokers["bob"], "alice", hello, bob_keys, 3)


def test_a_dry_pool_ends_the_session_and_the_policy_decides_the_next_round():
    pool, bob_keys = PairPool(2), ResponderKeys.generate()
    alice, bob, brokers, audit = pair(pool, rounds=10)
    modes = []
    for r in range(1, 5):
        if r == 4:
            pool.fresh.append((str(uuid.uuid4()), os.urandom(32)))  # the link delivers a key again
        hello, key = alice.initiate(brokers["alice"], "bob", bob_keys.public, r)
        assert bob.respond(brokers["bob"], "alice", hello, bob_keys, r) == key
        modes.append((json.loads(hello)["mode"], continues_session(hello)))
    # rounds 1-2 on the two QKD keys; round 3: no key, a post-quantum key agreement (audited) that keys only
    # that round; round 4: a key again, so a new hybrid session
    assert modes == [("hybrid", False), ("hybrid", True), ("pq-only", False), ("hybrid", False)]
    assert [e["reason"] for e in audit["alice"] if e["event"] == "fallback"] == ["no QKD key available"]


def test_sessions_survive_the_nodes_state_between_messages():
    pool, bob_keys = PairPool(5), ResponderKeys.generate()
    alice, bob, brokers, _ = pair(pool, rounds=10)
    hello, _ = alice.initiate(brokers["alice"], "bob", bob_keys.public, 1)
    bob.respond(brokers["bob"], "alice", hello, bob_keys, 1)
    alice2, bob2 = Sessions("alice", 10), Sessions("bob", 10)  # a new process: the sessions from Flower's state
    alice2.load_json(alice.to_json())
    bob2.load_json(bob.to_json())
    hello, key = alice2.initiate(brokers["alice"], "bob", bob_keys.public, 2)
    assert continues_session(hello) and bob2.respond(brokers["bob"], "alice", hello, bob_keys, 2) == key
    bob2.forget(["alice"])
    with pytest.raises(SessionMismatch, match="does not hold"):
        bob2.respond(brokers["bob"], "alice", alice2.initiate(brokers["alice"], "bob", bob_keys.public, 3)[0],
                     bob_keys, 3)
