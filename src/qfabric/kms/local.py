"""Run a development KME as a separate process on loopback (for demos, tests and benchmarks).

>>> # kme = LocalKme.create(tmp_dir, saes=["alice", "bob"]); kme.start(); ...; kme.stop()
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import uvicorn

from qfabric.errors import QfabricError
from qfabric.kms.certs import make_dev_pki
from qfabric.kms.client import SaeClient
from qfabric.kms.etsi import create_app
from qfabric.kms.server import DEFAULT_LOOP, ServerConfig, open_store, uvicorn_config
from qfabric.kms.store import KeyStore


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, log: Path | None = None, timeout_s: float = 30,
                   poll_s: float = 0.05) -> None:
    """Return once something listens on 127.0.0.1:``port``; :class:`~qfabric.errors.QfabricError` (with the end
    of ``log``, if given) if ``proc`` exits first or nothing listens within ``timeout_s``."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError as err:
            if proc.poll() is not None:
                tail = f": {log.read_text(errors='replace')[-2000:]}" if log is not None else ""
                raise QfabricError(f"{Path(str(proc.args[0])).name} exited with {proc.returncode}{tail}") from err
            time.sleep(poll_s)
    raise QfabricError(f"nothing listens on port {port} after {timeout_s} s")


class LocalKme:
    """A KME process with its own dev PKI and database in ``directory``; the caller's process can open the
    same store to fill pools and check accounting."""

    def __init__(self, directory: Path, config: ServerConfig, pki: dict[str, Path]):
        self.directory, self.config, self.pki = directory, config, pki
        self.config_path = config.save(directory / f"{config.kme_id}.json")
        self.store = open_store(config)
        self.proc: subprocess.Popen | None = None

    @classmethod
    def create(cls, directory: str | Path, saes: list[str], kme_id: str = "kme-a", db_url: str | None = None,
               connections: dict | None = None, key_lifetime_s: float | None = 86_400.0, **limits) -> LocalKme:
        """``connections``: :class:`~qfabric.kms.server.ConnectionLimits` fields; ``limits``: KmeConfig fields."""
        directory = Path(directory)
        pki = make_dev_pki(directory / "pki", kmes=[kme_id], saes=saes)
        config = ServerConfig(kme_id=kme_id, saes={s: kme_id for s in saes},
                              db_url=db_url or f"sqlite:///{directory / (kme_id + '.db')}",
                              secret_file=str(directory / "kek.bin"), certfile=str(pki[kme_id]),
                              keyfile=str(pki[f"{kme_id}.key"]), cafile=str(pki["ca"]), port=free_port(),
                              limits=limits, connections=connections or {}, key_lifetime_s=key_lifetime_s)
        return cls(directory, config, pki)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.config.port}"

    def start(self, timeout_s: float = 30, env: dict[str, str] | None = None) -> None:
        """Start the KME process (with environment ``env``, default this process's) and wait until it listens."""
        log = self.directory / "kme.log"
        with open(log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "qfabric.kms.server", str(self.config_path)],
                                         env=dict(env or os.environ, PYTHONUNBUFFERED="1"), stdout=subprocess.DEVNULL,
                                         stderr=out)
        wait_listening(self.config.port, self.proc, log, timeout_s)

    def kill(self) -> None:
        """SIGKILL: no shutdown of any kind."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def client(self, sae: str, timeout: float = 10.0) -> SaeClient:
        return SaeClient(self.url, str(self.pki[sae]), str(self.pki[f"{sae}.key"]), str(self.pki["ca"]), timeout)

    def fill(self, a: str, b: str, units: int, unit_bytes: int = 32) -> None:
        pool = self.config.kme().pool(a, b)
        for start in range(0, units, 10_000):
            self.store.add_units(pool, [os.urandom(unit_bytes) for _ in range(min(10_000, units - start))])

    def accounting(self, a: str, b: str) -> dict:
        return self.store.accounting(self.config.kme().pool(a, b))


class ThreadedKme:
    """A KME serving HTTPS on loopback from a thread of this process, on a store this process also feeds
    (used where the caller drives the key supply itself, in simulated time).

    >>> # kme = ThreadedKme(config, store, kme_config); kme.start(); ...; kme.stop()
    """

    def __init__(self, config: ServerConfig, store: KeyStore, kme_config=None, http: str = "httptools",
                 loop: str = DEFAULT_LOOP):
        self.config, self.store = config, store
        self.kme_config = kme_config or config.kme()
        self.server = uvicorn.Server(uvicorn_config(config, create_app(self.kme_config, store), own_process=False,
                                                    http=http, loop=loop))
        self._thread = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.config.port}"

    def start(self, timeout_s: float = 30) -> None:
        self.store.writer()  # the database's write path (its thread and connection) opens now, not on a first request
        self._thread = threading.Thread(target=self.server.run, name=f"kme-{self.config.kme_id}", daemon=True)
        self._thread.start()
        deadline = time.time() + timeout_s
        while not self.server.started:
            if not self._thread.is_alive() or time.time() > deadline:
                raise QfabricError(f"the KME {self.config.kme_id} did not start on port {self.config.port}")
            time.sleep(0.02)

    def close_forwarder(self, timeout_s: float = 2.0) -> None:
        """Close the forwarder's kept-alive connections to the neighbour KMEs, on this server's event loop (a KME
        that stops waits up to a second for each client connection still open: close them all before stopping
        neighbours). Nothing to do without a forwarder or before serving."""
        import asyncio

        forwarder, servers = self.kme_config.forwarder, self.server.servers
        if forwarder is not None and servers:
            asyncio.run_coroutine_threadsafe(forwarder.aclose(), servers[0].get_loop()).result(timeout=timeout_s)

    def stop(self, grace_s: float = 1.0) -> None:
        """Stop serving; connections a client left open (keep-alive) are dropped after ``grace_s``."""
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(grace_s)
            if self._thread.is_alive():  # an idle TLS connection waits for its client's close_notify
                self.server.force_exit = True
                self._thread.join(10)
            if self._thread.is_alive():
                raise QfabricError(f"the KME {self.config.kme_id} did not stop within {grace_s + 10:.0f} s")
