"""A real KME on loopback: its own process (so tests can kill -9 it), a dev PKI, a SQLite store."""

import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qfabric.kms.certs import make_dev_pki
from qfabric.kms.client import SaeClient
from qfabric.kms.server import ServerConfig, load_or_create_secret
from qfabric.kms.store import KeyStore

SAES = ["alice", "bob", "carol", "dave", "erin", "frank"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Kme:
    """A KME server process plus what tests need to talk to it and to inspect its store."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.pki = make_dev_pki(tmp / "pki", kmes=["kme-a"], saes=SAES)
        self.foreign = make_dev_pki(tmp / "foreign", kmes=[], saes=["mallory"], ca_name="other-ca")
        self.config = ServerConfig(
            kme_id="kme-a", saes={s: "kme-a" for s in SAES}, db_url=f"sqlite:///{tmp / 'kme-a.db'}",
            secret_file=str(tmp / "kek.bin"), certfile=str(self.pki["kme-a"]), keyfile=str(self.pki["kme-a.key"]),
            cafile=str(self.pki["ca"]), port=free_port(), max_key_per_request=64, max_sae_id_count=2)
        self.config_path = self.config.save(tmp / "kme-a.json")
        self.store = KeyStore(self.config.db_url, load_or_create_secret(self.config.secret_file))
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.config.port}"

    def start(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(self.tmp / "kme.log", "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen([sys.executable, "-m", "qfabric.kms.server", str(self.config_path)],
                                         env=env, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.config.port), timeout=0.5):
                    return
            except OSError as err:
                if self.proc.poll() is not None:
                    raise RuntimeError((self.tmp / "kme.log").read_text()) from err
                time.sleep(0.05)
        raise RuntimeError("KME did not start")

    def kill(self) -> None:
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

    def client(self, sae: str) -> SaeClient:
        return SaeClient(self.url, str(self.pki[sae]), str(self.pki[f"{sae}.key"]), str(self.pki["ca"]))

    def fill(self, a: str, b: str, units: int, unit_bytes: int = 32) -> None:
        self.store.add_units(self.config.kme().pool(a, b), [os.urandom(unit_bytes) for _ in range(units)])

    def accounting(self, a: str, b: str) -> dict:
        return self.store.accounting(self.config.kme().pool(a, b))

    def ssl_context(self, sae: str | None, foreign: bool = False) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki["ca"]))
        if sae:
            pki = self.foreign if foreign else self.pki
            ctx.load_cert_chain(str(pki[sae]), str(pki[f"{sae}.key"]))
        return ctx


@pytest.fixture(name="free_port")
def free_port_fixture() -> int:
    return free_port()


@pytest.fixture
def kme(tmp_path):
    server = Kme(tmp_path)
    server.start()
    yield server
    server.stop()
