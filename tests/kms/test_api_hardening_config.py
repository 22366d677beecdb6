"""Hardening of the KME's configuration: TLS 1.2 cipher suites, unambiguous pool names, SAE IDs checked, API
documentation only when asked for."""

import asyncio
import socket
import ssl
import threading

import httpx
import pytest
import uvicorn.config

from qfabric.errors import QfabricError
from qfabric.kms.certs import make_dev_pki
from qfabric.kms.etsi import KmeConfig, create_app
from qfabric.kms.relay import e2e_pool, link_pool, pool_name
from qfabric.kms.store import KeyStore
from qfabric.kms.tls import TLS12_CIPHERS, _with_tls, server_ssl_context


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_dev_pki(tmp_path_factory.mktemp("pki"), kmes=["kme-a"], saes=["alice"])


def server_contexts(pki) -> dict[str, ssl.SSLContext]:
    """Ours, and the one uvicorn builds when given ``ssl_ciphers=TLS12_CIPHERS`` (how server.py will use it)."""
    files = str(pki["kme-a"]), str(pki["kme-a.key"]), str(pki["ca"])
    return {"server_ssl_context": server_ssl_context(*files),
            "uvicorn": uvicorn.config.create_ssl_context(files[0], files[1], None, ssl.PROTOCOL_TLS_SERVER,
                                                         ssl.CERT_REQUIRED, files[2], TLS12_CIPHERS)}


def test_tls12_suites_are_ecdhe_with_aead_only(pki):
    for name, ctx in server_contexts(pki).items():
        suites = ctx.get_ciphers()
        below13 = [c for c in suites if c["protocol"] != "TLSv1.3"]
        assert below13, name  # TLS 1.2 stays available
        for c in below13:
            assert c["kea"] == "kx-ecdhe" and c["aead"] and c["auth"] != "auth-null", (name, c["name"])
            assert "Mac=AEAD" in c["description"], (name, c["description"])
        assert {c["name"] for c in suites if c["protocol"] == "TLSv1.3"} == \
            {"TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256"}, name
        assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.minimum_version >= ssl.TLSVersion.TLSv1_2


def handshake(pki, server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> str | None:
    """The cipher suite a real handshake agrees on over loopback, or ``None`` if it fails."""
    client_ctx.load_cert_chain(str(pki["alice"]), str(pki["alice.key"]))
    with socket.create_server(("127.0.0.1", 0)) as listener:
        def serve():
            conn, _ = listener.accept()
            try:
                with server_ctx.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                conn.close()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            with socket.create_connection(listener.getsockname(), timeout=10) as raw, \
                    client_ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                return tls.cipher()[0]
        except ssl.SSLError:
            return None
        finally:
            thread.join(10)


def test_tls12_handshake_refuses_cbc_and_accepts_aead(pki):
    def client(ciphers: str | None, tls12: bool = True) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(pki["ca"]))
        if tls12:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        if ciphers:
            ctx.set_ciphers(ciphers)
        return ctx

    server = server_ssl_context(str(pki["kme-a"]), str(pki["kme-a.key"]), str(pki["ca"]))
    assert handshake(pki, server, client("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA")) is None
    assert handshake(pki, server, client("ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384")) is None
    assert handshake(pki, server, client("ECDHE-ECDSA-AES128-GCM-SHA256")) == "ECDHE-ECDSA-AES128-GCM-SHA256"
    assert handshake(pki, server, client("ECDHE-ECDSA-CHACHA20-POLY1305")) == "ECDHE-ECDSA-CHACHA20-POLY1305"
    assert handshake(pki, server, client(None, tls12=False)).startswith("TLS_")  # TLS 1.3 as before


def test_pool_names_are_unambiguous():
    config = KmeConfig("kme-a", {})
    assert config.pool("a", "b|c") != config.pool("a|b", "c")
    assert config.pool("alice", "bob") == config.pool("bob", "alice")
    assert link_pool("a", "b|c", "x") != link_pool("a|b", "c", "x")
    assert link_pool("a", "b", "c@d") != link_pool("a", "b@c", "d")
    assert e2e_pool("a", "b", "a") != link_pool("a", "b", "a") != config.pool("a", "b")
    assert pool_name("sae", "a:b") != pool_name("sae:a", "b")
    longest = "x" * 64
    assert len(config.pool(longest, "y" * 64)) <= 200  # the store's pool column
    with pytest.raises(QfabricError, match="200"):
        link_pool("n" * 70, "m" * 70, "n" * 70)


@pytest.mark.parametrize("sae", ["a|b", "", "x" * 65, "alice bob", "\u00e5lice", "bob\n", "-bob", ".", "a/b"])
def test_config_refuses_sae_ids_outside_the_character_set(sae):
    with pytest.raises(QfabricError, match="1 to 64 characters"):
        KmeConfig("kme-a", {sae: "kme-a", "bob": "kme-a"})
    with pytest.raises(QfabricError, match="1 to 64 characters"):
        KmeConfig("kme-a", {"bob": "kme-a"}, operators=frozenset({sae}))


def test_config_accepts_conservative_sae_ids_and_operators_from_json():
    config = KmeConfig("kme-a", {"SAE_001": "kme-a", "hospital-a": "kme-a", "sae.2": "kme-a", "x" * 64: "kme-a"},
                       operators=["ops"])  # a list, as ServerConfig reads it from JSON
    assert config.operators == frozenset({"ops"})
    assert KmeConfig("kme-a", {}).operators == frozenset() and not KmeConfig("kme-a", {}).api_docs


def get(app, *paths: str) -> list[httpx.Response]:
    """GET ``paths`` from an ASGI app in this process (no TLS; wrap the app with ``_with_tls`` for a certificate)."""
    async def fetch():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kme") as client:
            return [await client.get(p) for p in paths]
    return asyncio.run(fetch())


def test_api_documentation_only_when_enabled():
    store = KeyStore("sqlite://", b"s" * 32)
    off = create_app(KmeConfig("kme-a", {"alice": "kme-a"}), store)
    assert [r.status_code for r in get(off, "/docs", "/redoc", "/openapi.json")] == [404] * 3
    on = create_app(KmeConfig("kme-a", {"alice": "kme-a"}, api_docs=True), store)
    docs, redoc, openapi = get(on, "/docs", "/redoc", "/openapi.json")
    assert docs.status_code == redoc.status_code == openapi.status_code == 200
    spec = openapi.json()
    assert set(spec["paths"]) == {"/api/v1/keys/{slave_SAE_ID}/status", "/api/v1/keys/{slave_SAE_ID}/enc_keys",
                                  "/api/v1/keys/{master_SAE_ID}/dec_keys"}
    assert {"get", "post"} <= set(spec["paths"]["/api/v1/keys/{slave_SAE_ID}/enc_keys"])
    assert "message" in spec["components"]["schemas"]["Error"]["properties"]


def test_metrics_closed_to_everybody_by_default(pki):
    store = KeyStore("sqlite://", b"s" * 32)
    app = create_app(KmeConfig("kme-a", {"alice": "kme-a"}), store)
    as_alice = _with_tls(app, {"client_cert_chain": [pki["alice"].read_text()], "tls_version": "TLSv1.3"})
    [r] = get(as_alice, "/metrics")
    assert r.status_code == 403 and r.json() == {"message": "only operators may read the metrics", "details": []}
    [r] = get(app, "/metrics")  # no certificate at all
    assert r.status_code == 401 and r.json()["message"]
    assert [e["event"] for e in store.audit_log()] == ["refused", "refused"]
    app = create_app(KmeConfig("kme-a", {"bob": "kme-a"}, operators=frozenset({"alice"})), store)
    as_alice = _with_tls(app, {"client_cert_chain": [pki["alice"].read_text()], "tls_version": "TLSv1.3"})
    [r] = get(as_alice, "/metrics")
    assert r.status_code == 200 and "qfabric_kms_refusals_total" in r.text
