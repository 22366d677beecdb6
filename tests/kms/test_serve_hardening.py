"""A KME's connections are bounded (timeouts, caps that evict rather than refuse), `qfabric kms serve` listens at
once and says how far its supply is, that its keys are simulated, and refuses a store without its KEK."""

import contextlib
import os
import resource
import select
import socket
import ssl
import subprocess
import sys
import time

import pytest
import yaml

from qfabric.kms.certs import make_dev_pki
from qfabric.kms.client import SaeClient
from qfabric.kms.local import LocalKme, ThreadedKme, free_port
from qfabric.kms.server import connection_counts
from qfabric.kms.store import KeyStore

FAST = {"handshake_timeout_s": 1.0, "request_timeout_s": 1.0, "keep_alive_s": 1.0, "shutdown_timeout_s": 0.5}
MARGIN_S = 1.5  # scheduling slack on a busy machine


@pytest.fixture
def threaded(tmp_path, request):
    base = LocalKme.create(tmp_path, ["alice", "bob"], connections=getattr(request, "param", FAST))
    base.fill("alice", "bob", 20)
    kme = ThreadedKme(base.config, base.store)
    kme.start()
    yield base, kme
    kme.stop()


def tls_socket(base: LocalKme, sae: str = "alice") -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=str(base.pki["ca"]))
    ctx.load_cert_chain(str(base.pki[sae]), str(base.pki[f"{sae}.key"]))
    return ctx.wrap_socket(socket.create_connection(("127.0.0.1", base.config.port), timeout=5),
                           server_hostname="127.0.0.1")


def closed_after(sock: socket.socket, limit_s: float) -> float | None:
    """Seconds until the server closed ``sock`` (reading it), ``None`` if still open after ``limit_s``."""
    t0 = time.monotonic()
    sock.settimeout(limit_s)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return None
    except OSError:  # reset, or a TLS connection ended without close_notify: closed all the same
        pass
    return time.monotonic() - t0


def wait_for(condition, limit_s: float = 5.0) -> bool:
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# ---- 6. timeouts ---------------------------------------------------------------------------------------------

def test_a_half_open_connection_is_closed_within_the_handshake_timeout(threaded):
    base, kme = threaded
    silent = socket.create_connection(("127.0.0.1", base.config.port))  # TCP only: no ClientHello ever
    partial = socket.create_connection(("127.0.0.1", base.config.port))
    partial.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # the start of a ClientHello, then nothing
    for sock in (silent, partial):
        elapsed = closed_after(sock, 10)
        assert elapsed is not None and elapsed < FAST["handshake_timeout_s"] + MARGIN_S  # (asyncio's default: 60 s)
        sock.close()
    assert wait_for(lambda: connection_counts(kme.server)["handshaking"] == 0)


def test_a_tls_connection_that_sends_no_request_is_closed(threaded):
    base, kme = threaded
    with tls_socket(base) as sock:  # a complete handshake with a valid certificate, then silence
        assert wait_for(lambda: connection_counts(kme.server)["established"] == 1)
        elapsed = closed_after(sock, 10)  # (uvicorn alone: never)
    assert elapsed is not None and elapsed < FAST["request_timeout_s"] + MARGIN_S
    assert wait_for(lambda: connection_counts(kme.server)["established"] == 0)


def test_headers_trickling_in_are_cut_off_at_the_request_timeout(threaded):
    base, _ = threaded
    with tls_socket(base) as sock:
        sock.sendall(b"GET /api/v1/keys/bob/status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        t0 = time.monotonic()
        closed = False
        while not closed and time.monotonic() - t0 < 10:  # a header line every 0.2 s: never idle, never done
            try:
                sock.sendall(b"X-Pad: 1\r\n")
                if select.select([sock], [], [], 0.2)[0]:
                    closed = not sock.recv(4096)
            except OSError:
                closed = True
        elapsed = time.monotonic() - t0
    assert closed and elapsed < FAST["request_timeout_s"] + MARGIN_S


def read_response(sock: ssl.SSLSocket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += sock.recv(4096)
    return head


def test_an_idle_keep_alive_connection_is_closed_after_keep_alive_s(threaded):
    base, _ = threaded
    with tls_socket(base) as sock:
        sock.sendall(b"GET /api/v1/keys/bob/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 200")
        elapsed = closed_after(sock, 10)  # (uvicorn's default: 5 s)
    assert elapsed is not None and elapsed < FAST["keep_alive_s"] + MARGIN_S


# ---- 6. caps ----------------------------------------------------------------------------------------------

CAPPED = {"handshake_timeout_s": 30.0, "request_timeout_s": 30.0, "keep_alive_s": 30.0, "max_handshakes": 8,
          "max_connections": 4}


@pytest.mark.parametrize("threaded", [CAPPED], indirect=True)
def test_many_idle_connections_do_not_lock_out_an_sae(threaded):
    """Timeouts long, caps small: over a cap the oldest idle connections are dropped, the newcomer is served
    (uvicorn's limit_concurrency alone would answer it 503 while idle connections hold the slots)."""
    base, kme = threaded
    raw = [socket.create_connection(("127.0.0.1", base.config.port)) for _ in range(40)]
    assert wait_for(lambda: connection_counts(kme.server)["handshaking"] == CAPPED["max_handshakes"])
    idle_tls = [tls_socket(base, sae) for sae in ("alice", "bob") * 4]
    try:
        t0 = time.monotonic()
        with SaeClient(base.url, str(base.pki["bob"]), str(base.pki["bob.key"]), str(base.pki["ca"]), 5) as bob:
            assert bob.status("alice")["stored_key_count"] == 20
            assert bob.enc_keys("alice", number=1)
        assert time.monotonic() - t0 < 3
        counts = connection_counts(kme.server)
        assert counts["handshaking"] <= CAPPED["max_handshakes"]
        assert counts["established"] <= CAPPED["max_connections"]
        dropped = [s for s in idle_tls if closed_after(s, 0.2) is not None]
        assert len(dropped) >= len(idle_tls) + 1 - CAPPED["max_connections"]  # the oldest went first
        assert closed_after(idle_tls[-1], 0.2) is None  # the newest idle one is still there
    finally:
        for s in raw + idle_tls:
            s.close()


def test_a_connection_flood_under_a_low_open_file_limit_does_not_lock_out_an_sae(tmp_path):
    """The reported lockout: more idle TCP connections than the process may open files. Before, each held a file
    descriptor for asyncio's 60 s handshake timeout, accept() failed (EMFILE) and SAEs could not connect."""
    base = LocalKme.create(tmp_path, ["alice", "bob"], connections={
        "handshake_timeout_s": 30.0, "request_timeout_s": 30.0, "max_handshakes": 16, "max_connections": 16})
    base.fill("alice", "bob", 5)
    with open(tmp_path / "kme.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "qfabric.kms.server", str(base.config_path)], stderr=log,
                                preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128)))
    flood = []
    try:
        assert wait_for(lambda: _listens(base.config.port) or proc.poll() is not None, 30) and proc.poll() is None
        for _ in range(300):
            with contextlib.suppress(OSError):  # a connect that times out is no flood connection
                flood.append(socket.create_connection(("127.0.0.1", base.config.port), timeout=2))
        assert len(flood) > 200
        time.sleep(0.5)
        t0 = time.monotonic()
        with base.client("alice", timeout=5) as alice:
            assert alice.status("bob")["stored_key_count"] == 5
        assert time.monotonic() - t0 < 5
    finally:
        for s in flood:
            s.close()
        proc.kill()
        proc.wait(10)


def _listens(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


# ---- 9 and 13. kms serve ------------------------------------------------------------------------------------

def serve(tmp_path, scenario: dict, port: int, *extra: str) -> subprocess.Popen:
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(scenario))
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 (the process writes it until the test ends)
    return subprocess.Popen([sys.executable, "-m", "qfabric.cli.main", "kms", "serve",
                             str(tmp_path / "s.yaml"), "--kme", "kme-x", "--pki", str(tmp_path / "pki"), "--port",
                             str(port), *extra], stdout=log, stderr=log, env=dict(os.environ, COLUMNS="400"))


def test_serve_listens_at_once_and_reports_the_supply_filling(tmp_path, kms_scenario):
    slow = kms_scenario
    for q in slow["qkd"]:
        q["max_simulated_pulses"] = 4e8  # several seconds of distillation per link before the first key
    pki = make_dev_pki(tmp_path / "pki", kmes=["kme-x"], saes=["alice", "bob", "ops"])
    port = free_port()
    t0 = time.monotonic()
    proc = serve(tmp_path, slow, port, "--operator", "ops")
    try:
        assert wait_for(lambda: _listens(port) or proc.poll() is not None, 30) and proc.poll() is None, \
            (tmp_path / "serve.log").read_text()
        listening_s = time.monotonic() - t0  # the interpreter and imports take a few seconds on a busy machine
        with SaeClient(f"https://127.0.0.1:{port}", str(pki["alice"]), str(pki["alice.key"]), str(pki["ca"])) as alice:
            first = alice.status("bob")
            ext = first["status_extension"]
            assert ext["supply_ready"] is False  # listening while the links are still being distilled
            assert ext["simulated_key_material"] is True and ext["pool_fill"] == 0.0
            assert first["stored_key_count"] == 0 and listening_s < 15
            assert wait_for(lambda: alice.status("bob")["status_extension"]["supply_ready"], 90)
            assert wait_for(lambda: alice.status("bob")["stored_key_count"] > 0, 30)
            assert alice.status("bob")["status_extension"]["pool_fill"] > 0
            assert alice.http.get("/metrics").status_code == 403  # an SAE is not an operator
            assert alice.http.get("/docs").status_code == 404  # no API docs unless --api-docs
        with SaeClient(f"https://127.0.0.1:{port}", str(pki["ops"]), str(pki["ops.key"]), str(pki["ca"])) as ops:
            metrics = ops.http.get("/metrics")
            assert metrics.status_code == 200 and "qfabric_kms" in metrics.text
        log = (tmp_path / "serve.log").read_text()
        assert "simulated QKD links" in log and "reproducible" in log
        assert log.index("serving SAEs") < log.index("key supply ready")
    finally:
        proc.terminate()
        proc.wait(30)


def test_serve_refuses_a_store_whose_kek_is_missing(tmp_path, kms_scenario):
    make_dev_pki(tmp_path / "pki", kmes=["kme-x"], saes=["alice", "bob"])
    KeyStore(f"sqlite:///{tmp_path / 'pki' / 'kme-x.db'}", os.urandom(32)).add_units("p", [os.urandom(32)])
    proc = serve(tmp_path, kms_scenario, free_port())
    assert proc.wait(60) == 2
    log = " ".join((tmp_path / "serve.log").read_text().split())
    assert f"{tmp_path / 'pki' / 'kme-x.kek'}: the key-encryption key is missing" in log
    assert not (tmp_path / "pki" / "kme-x.kek").exists()


# ---- 7. the running KME's ciphers --------------------------------------------------------------------------

def test_the_running_kme_refuses_a_tls12_client_that_offers_only_cbc(threaded):
    base, _ = threaded
    ctx = ssl.create_default_context(cafile=str(base.pki["ca"]))
    ctx.load_cert_chain(str(base.pki["alice"]), str(base.pki["alice.key"]))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE-RSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384")
    raw = socket.create_connection(("127.0.0.1", base.config.port), timeout=5)
    with pytest.raises(ssl.SSLError):
        ctx.wrap_socket(raw, server_hostname="127.0.0.1").close()
    raw.close()
    ctx.set_ciphers("ECDHE+AESGCM")  # the same client with an AEAD suite gets in
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", base.config.port), timeout=5),
                         server_hostname="127.0.0.1") as ok:
        assert ok.version() == "TLSv1.2" and "GCM" in ok.cipher()[0]
