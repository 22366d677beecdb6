"""The KME on uvloop (the default) and on asyncio's own loop: the TLS layer is in place before the first byte is
read (uvloop reads as soon as a connection is accepted), the handshake stays bounded, and a response leaves as one
TLS record (status line, headers and body together)."""

import json
import socket
import ssl
import time

import pytest

from qfabric.kms.local import LocalKme, ThreadedKme
from qfabric.kms.server import connection_counts

HANDSHAKE_S = 1.0
MARGIN_S = 1.5  # scheduling slack on a busy machine


@pytest.fixture(params=["uvloop", "asyncio"])
def served(tmp_path, request):
    base = LocalKme.create(tmp_path, ["alice", "bob"], connections={"handshake_timeout_s": HANDSHAKE_S})
    base.fill("alice", "bob", 10)
    kme = ThreadedKme(base.config, base.store, loop=request.param)
    kme.start()
    yield base, kme
    kme.stop()


def tls_socket(base: LocalKme, sae: str) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=str(base.pki["ca"]))
    ctx.load_cert_chain(str(base.pki[sae]), str(base.pki[f"{sae}.key"]))
    return ctx.wrap_socket(socket.create_connection(("127.0.0.1", base.config.port), timeout=5),
                           server_hostname="127.0.0.1")


def test_keys_are_served_and_each_answer_is_one_tls_record(served):
    """One ``recv`` on a TLS socket returns the content of one record: the whole answer, head and body, comes in the
    first. (Written as two records, the first ``recv`` held only the status line and headers.)"""
    base, _ = served
    body = b'{"number": 2}'
    request = (b"POST /api/v1/keys/bob/enc_keys HTTP/1.1\r\nHost: kme\r\nContent-Type: application/json\r\n"
               b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    with tls_socket(base, "alice") as sock:
        for _ in range(3):  # keep-alive: every answer of the connection
            sock.sendall(request)
            answer = sock.recv(65536)
            head, _, payload = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            assert len(payload) == length  # the body came with the head
            assert len(json.loads(payload)["keys"]) == 2
    assert base.store.accounting(base.config.kme().pool("alice", "bob"))["units_used"] == 6


def test_a_connection_that_never_completes_the_handshake_is_dropped(served):
    base, kme = served
    silent = socket.create_connection(("127.0.0.1", base.config.port))  # TCP only: no ClientHello ever
    partial = socket.create_connection(("127.0.0.1", base.config.port))
    partial.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # the start of a ClientHello, then nothing
    t0 = time.monotonic()
    for sock in (silent, partial):
        sock.settimeout(10)
        try:
            while sock.recv(4096):
                pass
        except OSError:  # reset: closed all the same
            pass
        sock.close()
    assert time.monotonic() - t0 < HANDSHAKE_S + MARGIN_S
    deadline = time.monotonic() + 5
    while connection_counts(kme.server)["handshaking"]:
        assert time.monotonic() < deadline, connection_counts(kme.server)
        time.sleep(0.05)
    with base.client("bob") as bob:  # and the KME still serves
        assert bob.status("alice")["stored_key_count"] == 10
