"""Run a KME: HTTPS on a loopback address with mandatory client certificates from one CA.

    python -m qfabric.kms.server kme.json

``kme.json`` holds the :class:`ServerConfig` fields. The process serves until stopped; the store is the
durable state, so a killed KME restarted on the same database carries on.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import uvicorn

from qfabric.errors import QfabricError
from qfabric.kms.etsi import KmeConfig, create_app
from qfabric.kms.store import KeyStore
from qfabric.kms.tls import ClientCertH11Protocol


@dataclass
class ServerConfig:
    kme_id: str
    saes: dict[str, str]
    db_url: str
    secret_file: str
    certfile: str
    keyfile: str
    cafile: str
    host: str = "127.0.0.1"
    port: int = 8443
    limits: dict = field(default_factory=dict)  # KmeConfig fields: key_size, max_key_per_request, ...

    def kme(self) -> KmeConfig:
        return KmeConfig(kme_id=self.kme_id, saes=self.saes, **self.limits)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> ServerConfig:
        return cls(**json.loads(Path(path).read_text()))


def load_or_create_secret(path: str | Path) -> bytes:
    """The 32-byte key-encryption key of the store (created on first use, readable by the owner only)."""
    path = Path(path)
    if not path.exists():
        path.write_bytes(os.urandom(32))
        path.chmod(0o600)
    secret = path.read_bytes()
    if len(secret) != 32:
        raise QfabricError(f"{path}: the key-encryption secret must be 32 bytes, found {len(secret)}")
    return secret


def uvicorn_config(cfg: ServerConfig, app, own_process: bool = True) -> uvicorn.Config:
    """``own_process=False`` for a KME in a thread of someone else's program: uvicorn then leaves the process's
    logging alone (its default config binds handlers to whatever ``sys.stderr`` is at that moment)."""
    if not cfg.host.startswith("127.") and cfg.host not in ("localhost", "::1"):
        raise QfabricError(f"host {cfg.host!r}: a development KME listens on loopback only")
    return uvicorn.Config(app, host=cfg.host, port=cfg.port, ssl_certfile=cfg.certfile, ssl_keyfile=cfg.keyfile,
                          ssl_ca_certs=cfg.cafile, ssl_cert_reqs=ssl.CERT_REQUIRED, http=ClientCertH11Protocol,
                          log_level="warning", access_log=False, lifespan="off", ws="none",
                          **({} if own_process else {"log_config": None}))


def build(cfg: ServerConfig):
    store = KeyStore(cfg.db_url, load_or_create_secret(cfg.secret_file))
    return store, create_app(cfg.kme(), store)


def main(argv: list[str] | None = None) -> None:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        raise SystemExit("usage: python -m qfabric.kms.server kme.json")
    cfg = ServerConfig.load(args[0])
    _, app = build(cfg)
    uvicorn.Server(uvicorn_config(cfg, app)).run()


if __name__ == "__main__":
    main()
