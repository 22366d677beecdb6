"""ETSI GS QKD 014 flows against a real KME over mutual TLS on loopback."""

import base64
import json
import ssl
import uuid

import httpx
import pytest

from qfabric.kms.client import KmeError
from qfabric.kms.local import LocalKme


def test_master_and_slave_get_the_same_keys_once(kme):
    kme.fill("alice", "bob", 20)
    with kme.client("alice") as alice, kme.client("bob") as bob, kme.client("carol") as carol:
        status = alice.status("bob")
        assert status["source_KME_ID"] == "kme-a" and status["master_SAE_ID"] == "alice"
        assert status["slave_SAE_ID"] == "bob" and status["stored_key_count"] == 20 and status["key_size"] == 256
        keys = alice.enc_keys("bob", number=3)
        assert len(keys) == 3 and all(len(k) == 32 for _, k in keys)  # default size = key_size = 256 bits
        assert alice.status("bob")["stored_key_count"] == 17
        assert bob.dec_keys("alice", [i for i, _ in keys]) == keys
        with pytest.raises(KmeError) as err:  # fetched twice: not found the second time
            bob.dec_keys("alice", [keys[0][0]])
        assert err.value.status == 400
        assert err.value.body["message"] == "one or more keys specified are not found on KME"
        with pytest.raises(KmeError) as err:  # a slave not named in enc_keys gets 401, with an ETSI body
            carol.dec_keys("alice", [keys[1][0]])
        assert err.value.status == 401 and err.value.body["message"]
        big = alice.enc_keys("bob", number=2, size=512)
        assert [len(k) for _, k in big] == [64, 64]  # 512 bits each, two units per key
        assert bob.dec_keys("alice", [i for i, _ in big]) == big


def test_get_forms_and_multicast(kme):
    kme.fill("alice", "bob", 10)
    ctx = kme.ssl_context("alice")
    with httpx.Client(base_url=kme.url, verify=ctx) as alice:
        r = alice.get("/api/v1/keys/bob/enc_keys", params={"number": 2, "size": 256})
        assert r.status_code == 200 and len(r.json()["keys"]) == 2
        ids = [k["key_ID"] for k in r.json()["keys"]]
    with httpx.Client(base_url=kme.url, verify=kme.ssl_context("bob")) as bob:
        r = bob.get("/api/v1/keys/alice/dec_keys", params={"key_ID": ids[0]})
        assert r.status_code == 200 and r.json()["keys"][0]["key_ID"] == ids[0]
    with kme.client("alice") as alice, kme.client("bob") as bob, kme.client("carol") as carol:
        keys = alice.enc_keys("bob", number=1, additional_slaves=["carol"])
        assert bob.dec_keys("alice", [keys[0][0]]) == keys
        assert carol.dec_keys("alice", [keys[0][0]]) == keys  # each named slave gets it once
        with pytest.raises(KmeError):
            carol.dec_keys("alice", [keys[0][0]])


def test_sae_id_comes_from_the_certificate_only(kme):
    kme.fill("alice", "bob", 5)
    kme.fill("carol", "bob", 5)
    with httpx.Client(base_url=kme.url, verify=kme.ssl_context("carol")) as carol:
        # carol claims to be alice in headers and body: the KME still sees carol
        r = carol.post("/api/v1/keys/bob/enc_keys", headers={"X-SAE-ID": "alice", "X-Client-Cert": "alice"},
                       json={"number": 1, "master_SAE_ID": "alice"})
        assert r.status_code == 200
        r = carol.get("/api/v1/keys/bob/status", headers={"X-SAE-ID": "alice"})
        assert r.json()["master_SAE_ID"] == "carol"
    assert kme.accounting("alice", "bob")["units_free"] == 5  # alice's pool untouched
    assert kme.accounting("carol", "bob")["units_free"] == 4


def test_handshake_fails_without_a_client_certificate_or_with_another_ca(kme):
    for ctx in (kme.ssl_context(None), kme.ssl_context("mallory", foreign=True)):
        with httpx.Client(base_url=kme.url, verify=ctx) as c, pytest.raises((httpx.HTTPError, ssl.SSLError)):
            c.get("/api/v1/keys/bob/status")


BAD_ENC = [
    ({"size": 0}, "size shall be a multiple of 8"),
    ({"size": -8}, "size shall be a multiple of 8"),
    ({"size": "big"}, "size shall be an integer"),
    ({"size": 100}, "size shall be a multiple of 8"),
    ({"size": 4096}, "max_key_size"),
    ({"number": 0}, "number shall be between"),
    ({"number": -1}, "number shall be between"),
    ({"number": "two"}, "number shall be an integer"),
    ({"number": 65}, "max_key_per_request"),
    ({"number": True}, "number shall be an integer"),
    ({"additional_slave_SAE_IDs": [""]}, "shall not be empty"),
    ({"additional_slave_SAE_IDs": ["carol", "carol"]}, "distinct"),
    ({"additional_slave_SAE_IDs": ["alice"]}, "differ from the master and slave"),
    ({"additional_slave_SAE_IDs": ["bob"]}, "differ from the master and slave"),
    ({"additional_slave_SAE_IDs": ["carol", "dave", "erin"]}, "max_SAE_ID_count"),
    ({"additional_slave_SAE_IDs": ["zed"]}, "not known"),
    ({"extension_mandatory": [{"route_type": "direct"}]}, "not all extension_mandatory parameters are supported"),
]


@pytest.mark.parametrize("body,message", BAD_ENC)
def test_bad_enc_keys_requests_get_400_and_change_nothing(kme, body, message):
    kme.fill("alice", "bob", 10)
    before = kme.accounting("alice", "bob")
    with httpx.Client(base_url=kme.url, verify=kme.ssl_context("alice")) as alice:
        r = alice.post("/api/v1/keys/bob/enc_keys", json=body)
    assert r.status_code == 400, r.text
    assert message in r.json()["message"] and isinstance(r.json()["details"], list)
    assert kme.accounting("alice", "bob") == before


BAD_DEC = [
    ({"key_IDs": []}, "shall not be empty"),
    ({"key_IDs": [{"key_ID": "not-a-uuid"}]}, "key_ID shall be a UUID"),
    ({"key_IDs": [{"key": "x"}]}, "each entry of key_IDs"),
    ({"key_IDs": "abc"}, "key_IDs shall be a list"),
    ({"key_IDs": [{"key_ID": str(uuid.uuid4())}]}, "one or more keys specified are not found on KME"),
]


@pytest.mark.parametrize("body,message", BAD_DEC)
def test_bad_dec_keys_requests_get_400_and_change_nothing(kme, body, message):
    kme.fill("alice", "bob", 4)
    with kme.client("alice") as alice:
        keys = alice.enc_keys("bob", number=1)
    before = kme.accounting("alice", "bob")
    with httpx.Client(base_url=kme.url, verify=kme.ssl_context("bob")) as bob:
        r = bob.post("/api/v1/keys/alice/dec_keys", json=body)
        assert r.status_code == 400 and message in r.json()["message"]
        # a partly valid request is refused whole: the real key stays claimable
        r = bob.post("/api/v1/keys/alice/dec_keys", json={"key_IDs": [{"key_ID": keys[0][0]},
                                                                      {"key_ID": str(uuid.uuid4())}]})
        assert r.status_code == 400
    assert kme.accounting("alice", "bob") == before
    with kme.client("bob") as bob:
        assert bob.dec_keys("alice", [keys[0][0]]) == keys


@pytest.mark.parametrize("path,message", [("/api/v1/keys/alice/status", "differ from the caller"),
                                          ("/api/v1/keys/nobody/status", "not known"),
                                          ("/api/v1/keys/%20/status", "shall not be empty")])
def test_bad_sae_ids(kme, path, message):
    with httpx.Client(base_url=kme.url, verify=kme.ssl_context("alice")) as alice:
        r = alice.get(path)
    assert r.status_code == 400 and message in r.json()["message"]


def test_malformed_requests_never_500_never_change_the_pool(kme):
    kme.fill("alice", "bob", 10)
    before = kme.accounting("alice", "bob")
    with httpx.Client(base_url=kme.url, verify=kme.ssl_context("alice")) as alice:
        cases = [
            alice.post("/api/v1/keys/bob/enc_keys", content=b"{not json", headers={"content-type": "application/json"}),
            alice.post("/api/v1/keys/bob/enc_keys", content=b"number=1", headers={"content-type": "text/plain"}),
            alice.post("/api/v1/keys/bob/enc_keys", content=b"[1, 2]", headers={"content-type": "application/json"}),
            alice.post("/api/v1/keys/bob/enc_keys", content=b"\xff\xfe", headers={"content-type": "application/json"}),
            alice.get("/api/v1/keys/bob/enc_keys", params={"number": 1, "foo": 2}),
        ]
        assert [r.status_code for r in cases] == [400] * 5
        huge = alice.post("/api/v1/keys/bob/enc_keys", content=b" " * 200_000,
                          headers={"content-type": "application/json"})
        assert huge.status_code == 413
        assert alice.get("/api/v1/nothing/here").status_code == 404
        assert alice.delete("/api/v1/keys/bob/enc_keys").status_code == 405
        assert alice.put("/api/v1/keys/bob/status").status_code == 405
        r = alice.post("/api/v1/keys/bob/enc_keys", json={"number": 11})
        assert r.status_code == 503 and r.json()["message"] == "not enough keys available"
    assert kme.accounting("alice", "bob") == before


def test_openapi_document_and_metrics(tmp_path):
    kme = LocalKme.create(tmp_path, ["alice", "bob", "ops"], operators=["ops"], api_docs=True)
    kme.start()
    try:
        kme.fill("alice", "bob", 3)
        with kme.client("alice") as alice:
            alice.enc_keys("bob")
        ops = ssl.create_default_context(cafile=str(kme.pki["ca"]))
        ops.load_cert_chain(str(kme.pki["ops"]), str(kme.pki["ops.key"]))
        with httpx.Client(base_url=kme.url, verify=ops) as c:
            spec = c.get("/openapi.json").json()
            assert set(spec["paths"]) == {"/api/v1/keys/{slave_SAE_ID}/status",
                                          "/api/v1/keys/{slave_SAE_ID}/enc_keys",
                                          "/api/v1/keys/{master_SAE_ID}/dec_keys"}
            assert {"get", "post"} <= set(spec["paths"]["/api/v1/keys/{slave_SAE_ID}/enc_keys"])
            metrics = c.get("/metrics").text
    finally:
        kme.stop()
    assert 'qfabric_kms_keys_served_total{call="enc_keys",kme="kme-a"} 1.0' in metrics
    assert "qfabric_kms_request_seconds_bucket" in metrics


def test_audit_log_records_who_got_which_key_and_never_material(kme):
    kme.fill("alice", "bob", 3)
    with kme.client("alice") as alice, kme.client("bob") as bob:
        keys = alice.enc_keys("bob")
        bob.dec_keys("alice", [keys[0][0]])
    log = kme.store.audit_log()
    events = [(e["event"], e["sae"], json.loads(e["key_ids"])) for e in log]
    assert ("enc_keys", "alice", [keys[0][0]]) in events and ("dec_keys", "bob", [keys[0][0]]) in events
    material = base64.b64encode(keys[0][1]).decode()
    assert all(material not in json.dumps(e) and keys[0][1].hex() not in json.dumps(e) for e in log)
