"""A third-party ETSI GS QKD 014 client (PyPI ``etsi-qkd-014-client``) works with the KME unchanged."""

import base64

from etsi_qkd_014_client import QKD014Client


def sae(kme, name):
    return QKD014Client(f"127.0.0.1:{kme.config.port}", str(kme.pki[name]), str(kme.pki[f"{name}.key"]),
                        str(kme.pki["ca"]))


def test_third_party_client_status_and_key_exchange(kme):
    kme.fill("alice", "bob", 10)
    alice, bob = sae(kme, "alice"), sae(kme, "bob")
    code, status = alice.get_status("bob")
    assert code == 200 and status.stored_key_count == 10 and status.master_sae_id == "alice"
    code, simple = alice.get_key("bob")  # no parameters: the GET form, server defaults
    assert code == 200 and len(simple.keys) == 1
    code, container = alice.get_key("bob", number=2, size=512)  # POST form
    assert code == 200 and len(container.keys) == 2
    ids = [k.key_id for k in simple.keys + container.keys]
    code, fetched = bob.get_key_with_key_IDs("alice", ids)
    assert code == 200
    got = [(k.key_id, base64.b64decode(k.key)) for k in fetched.keys]
    assert got == \
        [(k.key_id, base64.b64decode(k.key)) for k in simple.keys + container.keys]
    code, error = bob.get_key_with_key_IDs("alice", ids[:1])
    assert code == 400 and error.message == "one or more keys specified are not found on KME"
    code, error = alice.get_key("bob", size=100)
    assert code == 400 and error.message == "size shall be a multiple of 8"
