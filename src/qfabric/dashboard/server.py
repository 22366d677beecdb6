"""The dashboard's web server: the page, its data as server-sent events, controls, and ``/metrics``.

Routes (all on 127.0.0.1):

    GET  /               the page (static/index.html, its script and the vendored libraries under /static)
    GET  /api/stream     server-sent events: ``topology``, ``frames`` (a list), ``state``
    GET  /api/state      status, pause, speed, simulated time reached
    GET  /api/frames     every frame so far (``?since=N`` from the N-th)
    GET  /api/report     the finished run's report (404 until it is finished)
    POST /api/control    ``{"paused": true|false, "speed": X}`` (either or both)
    GET  /metrics        the simulation's metrics for Prometheus (:mod:`qfabric.dashboard.metrics`)

>>> from fastapi.testclient import TestClient
>>> from qfabric.dashboard.hub import Hub
>>> hub = Hub({"name": "x", "duration_s": 1.0}, mode="replay", speed=1.0)
>>> TestClient(create_app(hub)).post("/api/control", json={"speed": 4}).json()["speed"]
4.0
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from pathlib import Path

import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from qfabric.dashboard.hub import Hub
from qfabric.dashboard.metrics import registry

STATIC = Path(__file__).parent / "static"
POLL_S = 0.1  # how often the event stream looks for new frames


class Control(BaseModel):
    model_config = ConfigDict(extra="forbid")
    paused: bool | None = None
    speed: float | None = Field(default=None, gt=0, le=1e12, description="simulated seconds per wall-clock second")


def _sse(event: str, data) -> str:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n"


def create_app(hub: Hub) -> FastAPI:
    """The dashboard's ASGI application over ``hub``."""
    app = FastAPI(title="qfabric dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    metrics = registry(hub)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    @app.get("/api/state")
    def state() -> dict:
        return hub.state()

    @app.get("/api/frames")
    def frames(since: int = 0) -> JSONResponse:
        return JSONResponse(hub.frames[max(since, 0):])

    @app.get("/api/report")
    def report() -> JSONResponse:
        if hub.report is None:
            raise HTTPException(404, "the run is not finished")
        return JSONResponse(json.loads(json.dumps(hub.report, default=str)))

    @app.post("/api/control")
    def control(body: Control) -> dict:
        return hub.control(paused=body.paused, speed=body.speed)

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/stream")
    async def stream(request: Request) -> StreamingResponse:
        async def events():
            sent, generation, last_state = 0, None, None
            while not hub.stopping and not await request.is_disconnected():
                if hub.generation != generation:  # first time, or earlier frames were rewritten: send all again
                    generation, sent = hub.generation, 0
                    yield _sse("topology", hub.topology)
                new = hub.frames[sent:]
                if new or sent == 0:
                    yield _sse("frames", {"from": sent, "frames": new})
                    sent += len(new)
                now = hub.state()
                if now != last_state:
                    yield _sse("state", now)
                    last_state = now
                await asyncio.sleep(POLL_S)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    return app


class DashboardServer:
    """The dashboard served by uvicorn in a background thread, on 127.0.0.1 (``port=0``: a free port).

    >>> server = DashboardServer(Hub({"name": "x", "duration_s": 1.0}, mode="replay", speed=1.0)).start()
    >>> server.url.startswith("http://127.0.0.1:")
    True
    >>> server.stop()
    """

    def __init__(self, hub: Hub, *, port: int = 0):
        self.hub = hub
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", port))  # raises OSError when the port is taken
        self.port = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        config = uvicorn.Config(create_app(hub), log_level="warning", timeout_graceful_shutdown=2,
                                lifespan="off", ws="none")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=lambda: asyncio.run(self._server.serve(sockets=[self._socket])),
                                        name="qfabric-dashboard-server", daemon=True)

    def start(self, timeout_s: float = 10.0) -> DashboardServer:
        """Serve in the background; returns once the server accepts connections."""
        self._thread.start()
        for _ in range(int(timeout_s / 0.02)):
            if self._server.started:
                return self
            if not self._thread.is_alive():
                break
            threading.Event().wait(0.02)
        raise RuntimeError(f"the dashboard server did not start on {self.url}")

    def wait(self) -> None:
        """Block until the server stops (Ctrl-C in the CLI)."""
        while self._thread.is_alive():
            self._thread.join(0.5)

    def stop(self, grace_s: float = 3.0) -> None:
        """Stop the run's thread and the server, and close the socket; connections still open after ``grace_s``
        (a browser's event stream) are dropped."""
        self.hub.stop()
        self._server.should_exit = True
        self._thread.join(grace_s)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(5)
        self._socket.close()
