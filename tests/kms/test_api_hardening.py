"""Hardening of the KME's API against a live KME on loopback: strict input, ETSI error bodies for every refusal
(401 included), every refusal audited, metrics for operators only, no API documentation by default."""

import json
import ssl
import uuid
from collections import Counter

import httpx
import pytest
from etsi_qkd_014_client import QKD014Client

from qfabric.kms.local import LocalKme


def etsi_error(r: httpx.Response, status: int) -> dict:
    """The ETSI error body of a refusal with ``status``."""
    assert r.status_code == status, r.text
    body = r.json()
    assert isinstance(body["message"], str) and body["message"] and isinstance(body["details"], list), body
    return body


def http(kme, sae: str) -> httpx.Client:
    ctx = ssl.create_default_context(cafile=str(kme.pki["ca"]))
    ctx.load_cert_chain(str(kme.pki[sae]), str(kme.pki[f"{sae}.key"]))
    return httpx.Client(base_url=kme.url, verify=ctx)


def post_raw(client: httpx.Client, path: str, body: bytes) -> httpx.Response:
    return client.post(path, content=body, headers={"content-type": "application/json"})


def refusals(kme) -> list[dict]:
    return [json.loads(e["detail"]) | {"sae": e["sae"], "peer": e["peer"]}
            for e in kme.store.audit_log(100_000) if e["event"] == "refused"]


@pytest.fixture
def strict_kme(tmp_path):
    """A KME whose CA also signed ``mallory`` (no SAE of this KME) and ``ops`` (an operator, no SAE)."""
    base = LocalKme.create(tmp_path, ["alice", "bob", "carol", "mallory", "ops"], operators=["ops"])
    for name in ("mallory", "ops"):
        del base.config.saes[name]
    server = LocalKme(base.directory, base.config, base.pki)  # saves the config without them
    server.start()
    yield server
    server.stop()


NON_FINITE = [b'{"number": NaN}', b'{"number": Infinity}', b'{"number": -Infinity}', b'{"size": 1e999}',
              b'{"number": 1, "extension_mandatory": [{"max_link_qber": NaN}]}',
              b'{"additional_slave_SAE_IDs": [-1e400]}']


def test_non_finite_numbers_get_400_and_no_traceback(kme):
    kme.fill("alice", "bob", 10)
    before = kme.accounting("alice", "bob")
    with http(kme, "alice") as alice:
        for body in NON_FINITE:
            etsi_error(post_raw(alice, "/api/v1/keys/bob/enc_keys", body), 400)
        assert alice.post("/api/v1/keys/bob/enc_keys", json={"number": 1}).status_code == 200  # still serving
    assert kme.accounting("alice", "bob")["units_free"] == before["units_free"] - 1
    assert "Traceback" not in (kme.directory / "kme.log").read_text()


def test_deeply_nested_json_gets_400_not_503(kme):
    kme.fill("alice", "bob", 10)
    before = kme.accounting("alice", "bob")
    with http(kme, "alice") as alice:
        for depth in (8000, 900, 40):
            body = b'{"number": ' + b"[" * depth + b"]" * depth + b"}"
            error = etsi_error(post_raw(alice, "/api/v1/keys/bob/enc_keys", body), 400)
            assert "Recursion" not in json.dumps(error)
        # ordinary nesting is still read: this extension is parsed, then refused as unsupported
        error = etsi_error(alice.post("/api/v1/keys/bob/enc_keys",
                                      json={"extension_mandatory": [{"route": {"via": [["x"]]}}]}), 400)
        assert error["message"] == "not all extension_mandatory parameters are supported"
    assert kme.accounting("alice", "bob") == before


JSON_NOT_INTEGERS = [b'{"number": "2"}', '{"number": "\u0662"}'.encode(), b'{"size": "256"}', b'{"number": 2.0}',
                     b'{"number": "\\ud800"}', b'{"size": [256]}', b'{"number": true}']
QUERY_NOT_INTEGERS = ["\u0662", "\uff12", "+2", " 2", "2 ", "1_0", "2\n", "-0", "0x2", ""]


def test_number_and_size_are_integers_only(kme):
    """JSON integers in a body; ASCII digits in a query."""
    kme.fill("alice", "bob", 10)
    before = kme.accounting("alice", "bob")
    with http(kme, "alice") as alice:
        for body in JSON_NOT_INTEGERS:
            error = etsi_error(post_raw(alice, "/api/v1/keys/bob/enc_keys", body), 400)
            assert error["message"] in ("number shall be an integer", "size shall be an integer"), body
        for value in QUERY_NOT_INTEGERS:
            for name in ("number", "size"):
                error = etsi_error(alice.get("/api/v1/keys/bob/enc_keys", params={name: value}), 400)
                assert error["message"] == f"{name} shall be an integer", value
        assert kme.accounting("alice", "bob") == before
        assert len(alice.post("/api/v1/keys/bob/enc_keys", json={"number": 2, "size": 256}).json()["keys"]) == 2
        ok = alice.get("/api/v1/keys/bob/enc_keys", params={"number": "2", "size": "512"})
        assert ok.status_code == 200 and [len(k["key"]) for k in ok.json()["keys"]] == [88, 88]
    assert kme.accounting("alice", "bob")["units_free"] == before["units_free"] - 6


def test_repeated_parameters_get_400(kme):
    kme.fill("alice", "bob", 10)
    with http(kme, "alice") as alice:
        [key] = alice.post("/api/v1/keys/bob/enc_keys", json={"number": 1}).json()["keys"]
    before = kme.accounting("alice", "bob")
    with http(kme, "alice") as alice, http(kme, "bob") as bob:
        for r in (alice.get("/api/v1/keys/bob/enc_keys?number=1&number=5"),
                  alice.get("/api/v1/keys/bob/enc_keys?size=512&number=1&size=256"),
                  post_raw(alice, "/api/v1/keys/bob/enc_keys", b'{"number": 1, "number": 5}'),
                  post_raw(bob, "/api/v1/keys/alice/dec_keys",  # the last key_ID is the real one
                           f'{{"key_IDs": [{{"key_ID": "{uuid.uuid4()}", "key_ID": "{key["key_ID"]}"}}]}}'.encode()),
                  bob.get(f"/api/v1/keys/alice/dec_keys?key_ID={key['key_ID']}&key_ID={key['key_ID']}")):
            etsi_error(r, 400)
    assert kme.accounting("alice", "bob") == before


def test_sae_ids_in_requests_outside_the_character_set_get_400(kme):
    kme.fill("alice", "bob", 10)
    before = kme.accounting("alice", "bob")
    with http(kme, "alice") as alice:
        for name in ("a%7Cb", "bob%20", "b%C3%B6b", "x" * 65, "bob%0A", "-bob"):
            error = etsi_error(alice.get(f"/api/v1/keys/{name}/status"), 400)
            assert error["message"].startswith("slave_SAE_ID shall be 1 to 64 characters"), error
            error = etsi_error(alice.post(f"/api/v1/keys/{name}/enc_keys", json={"number": 1}), 400)
            assert error["message"].startswith("slave_SAE_ID shall be 1 to 64 characters"), error
        error = etsi_error(alice.post("/api/v1/keys/bob/enc_keys", json={"additional_slave_SAE_IDs": ["car|ol"]}),
                           400)
        assert error["message"].startswith("additional_slave_SAE_ID shall be 1 to 64 characters"), error
    assert kme.accounting("alice", "bob") == before


def test_401_has_an_etsi_body_that_the_pypi_client_reads(strict_kme):
    kme = strict_kme
    kme.fill("alice", "bob", 4)
    with http(kme, "alice") as alice:
        [key] = alice.post("/api/v1/keys/bob/enc_keys", json={"number": 1}).json()["keys"]
    with http(kme, "mallory") as mallory:  # a certificate of the CA, but no SAE of this KME
        for r in (mallory.get("/api/v1/keys/bob/status"),
                  mallory.post("/api/v1/keys/bob/enc_keys", json={"number": 1})):
            etsi_error(r, 401)
    carol = QKD014Client(f"127.0.0.1:{kme.config.port}", str(kme.pki["carol"]), str(kme.pki["carol.key"]),
                         str(kme.pki["ca"]))
    code, error = carol.get_key_with_key_IDs("alice", [key["key_ID"]])  # carol was not named as a slave
    assert code == 401 and error.message and error.details == []
    with http(kme, "bob") as bob:  # and the key is still bob's
        assert bob.post("/api/v1/keys/alice/dec_keys", json={"key_IDs": [{"key_ID": key["key_ID"]}]}).json() == \
            {"keys": [key]}


def test_every_refusal_is_audited_and_changes_no_pool(strict_kme):
    kme = strict_kme
    kme.fill("alice", "bob", 5)
    kme.fill("carol", "bob", 5)
    with http(kme, "alice") as alice:
        [key] = alice.post("/api/v1/keys/bob/enc_keys", json={"number": 1}).json()["keys"]
    pools = [("alice", "bob"), ("carol", "bob"), ("alice", "carol")]
    before = {p: kme.accounting(*p) for p in pools}
    audited = len(refusals(kme))
    with http(kme, "alice") as alice, http(kme, "carol") as carol, http(kme, "mallory") as mallory:
        expected = [  # (status, caller, the response)
            (400, "alice", post_raw(alice, "/api/v1/keys/bob/enc_keys", b'{"number": NaN}')),
            (400, "alice", alice.post("/api/v1/keys/bob/enc_keys", json={"number": "2"})),
            (400, "alice", alice.get("/api/v1/keys/bob/enc_keys?number=1&number=2")),
            (400, "alice", alice.get("/api/v1/keys/a%7Cb/status")),
            (400, "alice", alice.get("/api/v1/keys/alice/status")),
            (400, "alice", post_raw(alice, "/api/v1/keys/bob/enc_keys", b"{" * 5000)),
            (401, "carol", carol.post("/api/v1/keys/alice/dec_keys", json={"key_IDs": [{"key_ID": key["key_ID"]}]})),
            (401, "mallory", mallory.get("/api/v1/keys/bob/status")),
            (403, "alice", alice.get("/metrics")),
            (404, "alice", alice.get("/api/v1/nothing")),
            (405, "alice", alice.delete("/api/v1/keys/bob/enc_keys")),
            (413, "alice", post_raw(alice, "/api/v1/keys/bob/enc_keys", b" " * 100_000)),
            (503, "alice", alice.post("/api/v1/keys/bob/enc_keys", json={"number": 50})),
        ]
        for status, _, r in expected:
            etsi_error(r, status)
    assert {p: kme.accounting(*p) for p in pools} == before
    log = refusals(kme)  # newest first
    rows = log[: len(log) - audited]
    assert len(rows) == len(expected)
    assert Counter((r["status"], r["sae"]) for r in rows) == Counter((s, sae) for s, sae, _ in expected)
    assert all(r["message"] and r["call"] and r["reason"] for r in rows)
    assert {"a|b", "alice", "bob"} <= {r["peer"] for r in rows}  # the SAE ID each request named
    with http(kme, "bob") as bob:  # the refused claim left the key to its slave
        assert bob.post("/api/v1/keys/alice/dec_keys", json={"key_IDs": [{"key_ID": key["key_ID"]}]}).json() == \
            {"keys": [key]}


def test_metrics_only_for_operators(strict_kme):
    kme = strict_kme
    kme.fill("alice", "bob", 5)
    with http(kme, "alice") as alice:
        assert alice.get("/api/v1/keys/bob/status").status_code == 200
        etsi_error(alice.get("/metrics"), 403)
    with http(kme, "mallory") as mallory:
        etsi_error(mallory.get("/metrics"), 403)
    with http(kme, "ops") as ops:
        r = ops.get("/metrics")
        assert r.status_code == 200 and "qfabric_kms_pool_keys" in r.text
        etsi_error(ops.get("/api/v1/keys/bob/status"), 401)  # an operator is no SAE


def test_api_documentation_is_off_by_default(strict_kme):
    with http(strict_kme, "alice") as alice:
        for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
            etsi_error(alice.get(path), 404)
