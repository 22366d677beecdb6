"""Random bytes over HTTPS with mutual TLS, on the KMS's hardened server stack.

    GET /api/v1/random?bytes=N   -> {"bytes": N, "data": "<base64>"}    (1 <= N <= max_bytes_per_request)
    GET /api/v1/status           -> the source model, its min-entropies, the health tests and their state

Refusals answer ``{"message": ..., "details": [...]}`` as the ETSI GS QKD 014 API does: 400 for a bad or too
large request, 503 once a health test has failed (the output stays stopped). TLS (1.2+, ECDHE with AEAD,
a client certificate from the PKI's CA required), handshake and request timeouts and connection caps are
the KME's (:func:`qfabric.kms.server.uvicorn_config`); the server listens on loopback only.

>>> # server = QrngServer(QrngServerConfig(certfile="pki/qrng.pem", keyfile="pki/qrng.key", cafile="pki/ca.pem"))
>>> # server.start(); ...; server.stop()
"""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass, field

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from qfabric.apps.qrng.health import HealthTestFailure
from qfabric.apps.qrng.stream import Qrng
from qfabric.errors import QfabricError
from qfabric.kms.server import ConnectionLimits, uvicorn_config

DEFAULT_MAX_BYTES = 65_536


@dataclass
class QrngServerConfig:
    """Where and how to serve: the PKI files, the loopback address, the per-request limit, the KME's
    connection limits (``connections``: :class:`~qfabric.kms.server.ConnectionLimits` fields)."""

    certfile: str
    keyfile: str
    cafile: str
    host: str = "127.0.0.1"
    port: int = 8443
    max_bytes_per_request: int = DEFAULT_MAX_BYTES
    connections: dict = field(default_factory=dict)

    def connection_limits(self) -> ConnectionLimits:
        try:
            return ConnectionLimits(**self.connections)
        except TypeError as err:
            raise QfabricError(f"connections: {err}") from None


def _refusal(status: int, message: str, details: list | None = None) -> JSONResponse:
    return JSONResponse({"message": message, "details": details or []}, status_code=status)


def create_app(qrng: Qrng, max_bytes_per_request: int = DEFAULT_MAX_BYTES) -> FastAPI:
    """The ASGI app serving ``qrng``."""
    app = FastAPI(title="qfabric QRNG", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(StarletteHTTPException)
    async def http_refusal(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _refusal(exc.status_code, str(exc.detail))

    @app.get("/api/v1/random")
    def random(request: Request) -> JSONResponse:
        text = request.query_params.get("bytes")
        unknown = sorted(set(request.query_params) - {"bytes"})
        if unknown:
            return _refusal(400, "unknown query parameters", [{"query": unknown[:10]}])
        try:
            n = int(text) if text is not None else 32
        except ValueError:
            return _refusal(400, "bytes shall be an integer", [{"bytes": text[:100]}])
        if not 1 <= n <= max_bytes_per_request:
            return _refusal(400, f"bytes shall be between 1 and max_bytes_per_request ({max_bytes_per_request})",
                            [{"bytes": n, "max_bytes_per_request": max_bytes_per_request}])
        try:
            data = qrng.random_bytes(n)
        except HealthTestFailure as err:
            return _refusal(503, "the entropy source failed a health test: output stopped", [{"health": str(err)}])
        return JSONResponse({"bytes": n, "data": base64.b64encode(data).decode()})

    @app.get("/api/v1/status")
    def status() -> JSONResponse:
        return JSONResponse({**qrng.summary(), "max_bytes_per_request": max_bytes_per_request,
                             "health": "failed" if qrng.failed else "ok", "failure": qrng.failed,
                             "blocks_extracted": qrng.blocks})

    return app


def server(config: QrngServerConfig, qrng: Qrng, own_process: bool = True) -> uvicorn.Server:
    """A uvicorn server for ``qrng`` with the KME's TLS and connection handling (not started)."""
    if not isinstance(config.max_bytes_per_request, int) or config.max_bytes_per_request < 1:
        raise QfabricError(f"max_bytes_per_request = {config.max_bytes_per_request!r}: expected a positive integer")
    app = create_app(qrng, config.max_bytes_per_request)
    return uvicorn.Server(uvicorn_config(config, app, own_process=own_process))  # type: ignore[arg-type]


class QrngServer:
    """The service in a thread of this process (tests, notebooks): ``start()``, then ``stop()``."""

    def __init__(self, config: QrngServerConfig, qrng: Qrng | None = None):
        self.config = config
        self.qrng = qrng or Qrng()
        self.server = server(config, self.qrng, own_process=False)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"https://{self.config.host}:{self.config.port}"

    def start(self, timeout_s: float = 30) -> None:
        self._thread = threading.Thread(target=self.server.run, name="qrng-server", daemon=True)
        self._thread.start()
        deadline = time.time() + timeout_s
        while not self.server.started:
            if not self._thread.is_alive() or time.time() > deadline:
                raise QfabricError(f"the QRNG server did not start on port {self.config.port}")
            time.sleep(0.02)

    def stop(self, grace_s: float = 1.0) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(grace_s)
            if self._thread.is_alive():
                self.server.force_exit = True
                self._thread.join(10)
