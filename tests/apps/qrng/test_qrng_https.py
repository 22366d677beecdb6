"""The QRNG service over HTTPS with mutual TLS on 127.0.0.1, with the KME's server stack."""

import base64
import ssl

import httpx
import pytest

from qfabric.apps.qrng import Qrng
from qfabric.apps.qrng.server import QrngServer, QrngServerConfig
from qfabric.kms.certs import make_dev_pki
from qfabric.kms.local import free_port


@pytest.fixture
def served(tmp_path):
    pki = make_dev_pki(tmp_path / "pki", kmes=["qrng"], saes=["alice"])
    config = QrngServerConfig(certfile=str(pki["qrng"]), keyfile=str(pki["qrng.key"]), cafile=str(pki["ca"]),
                              port=free_port(), max_bytes_per_request=1024)
    server = QrngServer(config, Qrng(seed=1))
    server.start()
    yield server, pki
    server.stop()


def _client(server, pki, with_cert: bool = True) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(pki["ca"]))
    if with_cert:
        context.load_cert_chain(str(pki["alice"]), str(pki["alice.key"]))
    return httpx.Client(base_url=server.url, verify=context, timeout=10)


def test_random_bytes_over_mutual_tls(served):
    server, pki = served
    with _client(server, pki) as client:
        r = client.get("/api/v1/random", params={"bytes": 100})
        assert r.status_code == 200
        body = r.json()
        assert body["bytes"] == 100 and len(base64.b64decode(body["data"])) == 100
        second = base64.b64decode(client.get("/api/v1/random", params={"bytes": 100}).json()["data"])
        assert second != base64.b64decode(body["data"])
        # the same seed served these bytes: they are the generator's stream, in order
        assert base64.b64decode(body["data"]) + second == Qrng(seed=1).random_bytes(200)
        status = client.get("/api/v1/status").json()
        assert status["health"] == "ok" and status["max_bytes_per_request"] == 1024


def test_over_the_limit_is_400_with_an_etsi_style_body(served):
    server, pki = served
    with _client(server, pki) as client:
        r = client.get("/api/v1/random", params={"bytes": 1025})
        assert r.status_code == 400
        assert r.json() == {"message": "bytes shall be between 1 and max_bytes_per_request (1024)",
                            "details": [{"bytes": 1025, "max_bytes_per_request": 1024}]}
        assert client.get("/api/v1/random", params={"bytes": "x"}).status_code == 400
        assert client.get("/nowhere").json()["message"] == "Not Found"


def test_a_client_without_a_certificate_is_refused(served):
    server, pki = served
    with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)), \
            _client(server, pki, with_cert=False) as client:
        client.get("/api/v1/random")


def test_a_failed_source_answers_503(tmp_path):
    pki = make_dev_pki(tmp_path / "pki", kmes=["qrng"], saes=["alice"])
    config = QrngServerConfig(certfile=str(pki["qrng"]), keyfile=str(pki["qrng.key"]), cafile=str(pki["ca"]),
                              port=free_port())
    server = QrngServer(config, Qrng(seed=1, fault="stuck"))
    server.start()
    try:
        with _client(server, pki) as client:
            r = client.get("/api/v1/random", params={"bytes": 10})
            assert r.status_code == 503 and "health test" in r.json()["message"]
            assert client.get("/api/v1/status").json()["health"] == "failed"
    finally:
        server.stop()
