"""The KME's HTTP protocols (uvicorn's httptools, the default, and h11) give the same answers and limits, and the
thin path for the hot calls answers like FastAPI's routes."""

import json
import socket
import ssl
import time

import pytest

from qfabric.kms.local import LocalKme, ThreadedKme


@pytest.fixture(params=["httptools", "h11"])
def served(tmp_path, request):
    base = LocalKme.create(tmp_path, ["alice", "bob"], connections={"max_header_bytes": 4096})
    base.fill("alice", "bob", 10)
    kme = ThreadedKme(base.config, base.store, http=request.param)
    kme.start()
    yield base
    kme.stop()


def exchange(base: LocalKme, *pieces: bytes) -> bytes:
    """Send ``pieces`` (0.2 s apart) on a fresh mutual-TLS connection as alice; everything the KME answers until
    it closes (or 5 s pass)."""
    ctx = ssl.create_default_context(cafile=str(base.pki["ca"]))
    ctx.load_cert_chain(str(base.pki["alice"]), str(base.pki["alice.key"]))
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", base.config.port), timeout=5),
                         server_hostname="127.0.0.1") as sock:
        for i, piece in enumerate(pieces):
            if i:
                time.sleep(0.2)
            try:
                sock.sendall(piece)
            except (ssl.SSLError, ConnectionError):  # closed after an earlier piece
                break
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
                if b"connection: close" not in out.lower() and out.count(b"\r\n\r\n") and b"}" in out:
                    break  # a keep-alive answer with its JSON body
        except (TimeoutError, ssl.SSLError, ConnectionError):
            pass
    return out


def test_headers_over_the_limit_get_400_and_a_closed_connection(served):
    """A header still arriving past max_header_bytes (4096 here) is cut off by both protocols at once (not at the
    request timeout, 10 s)."""
    t0 = time.monotonic()
    answer = exchange(served, b"GET /api/v1/keys/bob/status HTTP/1.1\r\nHost: kme\r\nX-Pad: " + b"a" * 3000,
                      b"a" * 2000)  # never ends
    assert time.monotonic() - t0 < 4
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"connection: close" in answer.lower()


def test_httptools_also_refuses_complete_headers_over_the_limit(tmp_path):
    base = LocalKme.create(tmp_path, ["alice", "bob"], connections={"max_header_bytes": 4096})
    kme = ThreadedKme(base.config, base.store)  # httptools, the default
    kme.start()
    try:
        answer = exchange(base, b"GET /api/v1/keys/bob/status HTTP/1.1\r\nHost: kme\r\nX-Pad: " + b"a" * 5000
                          + b"\r\n\r\n")
    finally:
        kme.stop()
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]


def test_headers_within_the_limit_are_served(served):
    padded = (b"GET /api/v1/keys/bob/status HTTP/1.1\r\nHost: kme\r\nX-Pad: " + b"a" * 3000 + b"\r\n\r\n")
    answer = exchange(served, padded)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["stored_key_count"] == 10


def test_the_hot_path_and_fastapi_answer_alike(served):
    """enc_keys by POST goes through the thin path; the same call with a trailing slash or HEAD goes to FastAPI,
    which refuses it with an ETSI body, as before the thin path existed."""
    body = b'{"number": 2}'
    answer = exchange(served, b"POST /api/v1/keys/bob/enc_keys HTTP/1.1\r\nHost: kme\r\nContent-Type: "
                              b"application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    assert answer.startswith(b"HTTP/1.1 200")
    assert len(json.loads(answer.split(b"\r\n\r\n", 1)[1])["keys"]) == 2
    answer = exchange(served, b"POST /api/v1/keys/bob/enc_keys/x HTTP/1.1\r\nHost: kme\r\nContent-Length: 0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 404")
    assert set(json.loads(answer.split(b"\r\n\r\n", 1)[1])) == {"message", "details"}
    assert served.store.accounting(served.config.kme().pool("alice", "bob"))["units_used"] == 2
