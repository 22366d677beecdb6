"""Hybrid session keys, AES-256-GCM, crypto policy with audited fallback, trusted-node relay."""

import os

import numpy as np
import pytest
from cryptography.exceptions import InvalidTag

from qfabric.errors import QfabricError
from qfabric.kms.hybrid import Mode, ResponderKeys, derive, initiate, open_sealed, respond, seal
from qfabric.kms.policy import NoKeyAvailable, Policy
from qfabric.kms.relay import feed_link, link_pool, relay_path
from qfabric.kms.store import KeysExhausted, KeyStore


@pytest.mark.parametrize("mode", list(Mode))
def test_both_sides_derive_the_same_session_key(mode):
    responder = ResponderKeys.generate()
    qkd = os.urandom(32) if mode is not Mode.PQ_ONLY else None
    qkd_id = "k-1" if qkd else None
    hello, k_initiator = initiate(responder.public(), "alice", "bob", mode, qkd, qkd_id)
    assert respond(responder, hello, "alice", "bob", qkd) == k_initiator
    assert hello.qkd_key_id == qkd_id  # the key ID travels, never the key


def test_changing_any_input_changes_the_session_key():
    responder = ResponderKeys.generate()
    qkd = os.urandom(32)
    hello, key = initiate(responder.public(), "alice", "bob", "hybrid", qkd, "k-1")
    mlkem_secret = responder.mlkem.decapsulate(hello.kem_ciphertext)
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    x_secret = responder.x25519.exchange(X25519PublicKey.from_public_bytes(hello.x25519_share))
    base = dict(mode="hybrid", initiator="alice", responder="bob", qkd_key=qkd, qkd_key_id="k-1",
                mlkem_secret=mlkem_secret, x25519_secret=x_secret, kem_ciphertext=hello.kem_ciphertext,
                x25519_share=hello.x25519_share)
    assert derive(**base) == key
    flip = bytes([1]) + bytes(31)
    changes = {"qkd_key": bytes(a ^ b for a, b in zip(qkd, flip, strict=True)), "qkd_key_id": "k-2",
               "mlkem_secret": bytes(a ^ b for a, b in zip(mlkem_secret, flip, strict=True)),
               "x25519_secret": bytes(a ^ b for a, b in zip(x_secret, flip, strict=True)),
               "kem_ciphertext": hello.kem_ciphertext[:-1] + bytes([hello.kem_ciphertext[-1] ^ 1]),  # always a change
               "initiator": "mallory", "responder": "eve",
               "mode": "pq-only"}
    derived = {name: derive(**(base | {name: value})) for name, value in changes.items()}
    assert all(k != key for k in derived.values())
    assert len(set(derived.values())) == len(derived)


def test_modes_refuse_missing_inputs():
    with pytest.raises(QfabricError, match="needs a QKD key"):
        derive("qkd-only", "a", "b", None, None, None, None, None, None)
    with pytest.raises(QfabricError, match="ML-KEM and X25519"):
        derive("hybrid", "a", "b", b"k" * 32, "id", None, None, None, None)


def test_aes_gcm_detects_tampering():
    key = os.urandom(32)
    sealed = seal(key, b"model update", b"round-3")
    assert open_sealed(key, sealed, b"round-3") == b"model update"
    for bad in (sealed[:-1] + bytes([sealed[-1] ^ 1]), sealed[:12] + bytes([sealed[12] ^ 1]) + sealed[13:]):
        with pytest.raises(InvalidTag):
            open_sealed(key, bad, b"round-3")
    with pytest.raises(InvalidTag):
        open_sealed(key, sealed, b"round-4")


def test_policy_falls_back_with_a_reason_or_refuses():
    hybrid = Policy("hybrid", "pq-only", qber_threshold=0.11)
    assert hybrid.decide(True, 0.03).mode == "hybrid"
    assert hybrid.decide(True, 0.15).reason == "link QBER 0.150 above 0.11"
    assert hybrid.decide(False).mode == "pq-only"
    with pytest.raises(NoKeyAvailable, match="no fallback"):
        Policy("qkd-only", "none").decide(False)
    store = KeyStore("sqlite://", b"s" * 32)
    decision = hybrid.decide(False)
    store.record("fallback", sae="alice", peer="bob", detail=decision.reason)
    assert store.audit_log()[0]["event"] == "fallback" and store.audit_log()[0]["detail"] == "no QKD key available"


def link_bits(n, seed):
    return np.random.default_rng(seed).integers(0, 2, n, dtype=np.uint8)


def test_relay_over_three_hops_gives_identical_keys_and_spends_the_key_length_per_hop():
    store = KeyStore("sqlite://", b"s" * 32)
    path = ["a", "t1", "t2", "z"]
    for i, (x, y) in enumerate(zip(path, path[1:], strict=False)):
        bits = link_bits(256 * 10, i)
        assert feed_link(store, x, y, bits, bits.copy(), unit_bits=256) == 10
    result = relay_path(store, path, "sae:alice|zoe", count=4)
    assert result["bits_per_hop"] == 4 * 256
    for x, y in zip(path, path[1:], strict=False):
        for node in (x, y):
            acc = store.accounting(link_pool(x, y, node))
            assert acc["units_used"] == 4 and acc["units_free"] == 6  # per hop and end: exactly the key length
    [d] = store.reserve("sae:alice|zoe", "alice", ["zoe"], 1, 256)
    assert store.claim("zoe", "alice", [d.key_id])[0].material == d.material
    assert store.available("sae:alice|zoe") == 3


def test_relay_is_all_or_nothing():
    store = KeyStore("sqlite://", b"s" * 32)
    bits = link_bits(256 * 5, 1)
    feed_link(store, "a", "t", bits, bits, 256)
    feed_link(store, "t", "z", link_bits(256 * 2, 2), link_bits(256 * 2, 2), 256)  # the second hop is short
    with pytest.raises(KeysExhausted):
        relay_path(store, ["a", "t", "z"], "sae:x|y", count=3)
    assert store.accounting(link_pool("a", "t", "a"))["units_free"] == 5  # nothing spent on the first hop
    # copies that differ (a QKD failure) are caught, and nothing is spent either
    feed_link(store, "p", "q", link_bits(256, 3), link_bits(256, 4), 256)
    with pytest.raises(QfabricError, match="differ"):
        relay_path(store, ["p", "q"], "sae:x|y", count=1)
    assert store.accounting(link_pool("p", "q", "p"))["units_free"] == 1


def test_sae_signatures_bind_certificate_name_ca_and_purpose(tmp_path):
    from qfabric.kms.certs import make_dev_pki
    from qfabric.kms.identity import NotAuthenticated, SaeIdentity

    pki = make_dev_pki(tmp_path / "ours", kmes=[], saes=["alice", "bob"])
    rogue = make_dev_pki(tmp_path / "rogue", kmes=[], saes=["alice"], ca_name="rogue-ca")
    alice = SaeIdentity.load(pki["alice"], pki["alice.key"], pki["ca"])
    bob = SaeIdentity.load(pki["bob"], pki["bob.key"], pki["ca"])
    impostor = SaeIdentity.load(rogue["alice"], rogue["alice.key"], rogue["ca"])
    signature = alice.sign("public", "alice", b"keys")
    bob.verify(alice.cert_pem, "alice", signature, "public", "alice", b"keys")  # the genuine article
    with pytest.raises(NotAuthenticated, match="not issued by this federation's CA"):
        bob.verify(impostor.cert_pem, "alice", impostor.sign("public", "alice", b"keys"), "public", "alice", b"keys")
    with pytest.raises(NotAuthenticated, match="the certificate presented for 'carol' is 'alice'"):
        bob.verify(alice.cert_pem, "carol", signature, "public", "alice", b"keys")
    with pytest.raises(NotAuthenticated, match="signature on pair-hello does not verify"):
        bob.verify(alice.cert_pem, "alice", signature, "pair-hello", "alice", b"keys")  # same bytes, other purpose
    with pytest.raises(NotAuthenticated, match="does not verify"):  # parts are length-prefixed: no re-splitting
        bob.verify(alice.cert_pem, "alice", signature, "public", "alic", b"ekeys")
