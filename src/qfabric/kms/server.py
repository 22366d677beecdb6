"""Run a KME: HTTPS on a loopback address with mandatory client certificates from one CA.

    python -m qfabric.kms.server kme.json

``kme.json`` holds the :class:`ServerConfig` fields. The process serves until stopped; the store is the
durable state, so a killed KME restarted on the same database carries on.

The key-encryption key (KEK) of the store is read from ``$QFABRIC_KEK`` (64 hex digits or base64 of 32 bytes)
if set, else from ``secret_file`` (created owner-only on first use). A KME whose store holds keys refuses to
start without its KEK, or with another one, rather than answer every request with an error.

Connections are bounded (:class:`ConnectionLimits`): the TLS handshake, and then each request's headers and
body, must arrive within a timeout; an idle keep-alive connection is closed after a few seconds; and over the
caps on connections in the handshake and established, the oldest waiting ones are dropped to make room, so
idle or half-open connections can neither pile up nor lock out an SAE.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import base64
import binascii
import contextlib
import functools
import json
import logging
import os
import ssl
import sys
import tempfile
import weakref
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

try:  # uvloop has no Windows wheels: there the KME runs on asyncio's loop (the same KME, more CPU per request)
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

from qfabric.errors import QfabricError
from qfabric.kms.etsi import HotPath, KmeConfig, create_app
from qfabric.kms.store import KeyStore, WrongKek, redacted
from qfabric.kms.tls import ClientCertH11Protocol, ClientCertHttpToolsProtocol, server_ssl_context

log = logging.getLogger("qfabric.kms.server")
KEK_ENV = "QFABRIC_KEK"


@dataclass(frozen=True)
class ConnectionLimits:
    """Timeouts and caps of a KME's connections (``ServerConfig.connections`` holds these fields)."""

    handshake_timeout_s: float = 10.0  # the TLS handshake, from the TCP connection on
    request_timeout_s: float = 10.0  # a request's headers and body, from the connection or its first byte on
    keep_alive_s: float = 5.0  # idle between two requests
    shutdown_timeout_s: float = 2.0  # waiting for the client's TLS close_notify when closing
    max_handshakes: int = 64  # connections in the TLS handshake at once; over it, the oldest is dropped
    max_connections: int = 256  # established connections; over it, the one waiting longest for a request goes
    max_header_bytes: int = 16_384  # request line and headers
    backlog: int = 128  # the listening socket's queue

    def __post_init__(self) -> None:
        for name in ("handshake_timeout_s", "request_timeout_s", "keep_alive_s", "shutdown_timeout_s"):
            if not getattr(self, name) > 0:
                raise QfabricError(f"connections.{name} = {getattr(self, name)}: expected a positive number")
        for name in ("max_handshakes", "max_connections", "max_header_bytes", "backlog"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise QfabricError(f"connections.{name} = {getattr(self, name)}: expected a positive integer")


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
    connections: dict = field(default_factory=dict)  # ConnectionLimits fields: timeouts and caps
    key_lifetime_s: float | None = 86_400.0  # material of undelivered and unclaimed keys is erased after it

    def kme(self) -> KmeConfig:
        return KmeConfig(kme_id=self.kme_id, saes=self.saes, **self.limits)

    def connection_limits(self) -> ConnectionLimits:
        try:
            return ConnectionLimits(**self.connections)
        except TypeError as err:
            raise QfabricError(f"connections: {err}") from None

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> ServerConfig:
        return cls(**json.loads(Path(path).read_text()))


# ---- the key-encryption key -------------------------------------------------------------------------

def parse_kek(text: str, source: str = KEK_ENV) -> bytes:
    """32 bytes from 64 hex digits or their base64 (what ``$QFABRIC_KEK`` holds)."""
    text = text.strip()
    try:
        secret = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        secret = b""
    if len(secret) != 32:
        raise QfabricError(f"{source}: expected a 32-byte key-encryption key as 64 hex digits or base64")
    return secret


def _create_secret(path: Path) -> None:
    """A fresh KEK in ``path``, owner-only from its first byte, complete or not there at all (durably)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600 from creation
    try:
        os.write(fd, os.urandom(32))
        os.fsync(fd)
        os.close(fd)
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile: that one stays
            os.link(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        os.unlink(tmp)


def kek_source(path: str | Path) -> str:
    """Where the KEK comes from: ``$QFABRIC_KEK`` if set, else the file."""
    return f"${KEK_ENV}" if os.environ.get(KEK_ENV) else str(path)


def load_or_create_secret(path: str | Path, db_url: str | None = None) -> bytes:
    """The 32-byte key-encryption key of the store: ``$QFABRIC_KEK`` if set, else the file ``path``.

    A missing file is created (readable by the owner only, from its first byte), unless ``db_url`` names a
    store that already holds keys: then the KEK is lost or misplaced, and a new one would make every key
    unreadable, so this refuses with an error naming the file."""
    env = os.environ.get(KEK_ENV)
    if env:
        return parse_kek(env)
    path = Path(path)
    if not path.exists():
        if db_url is not None and KeyStore.holds_keys(db_url):
            raise QfabricError(f"{path}: the key-encryption key is missing, but the store {redacted(db_url)} holds "
                               f"keys encrypted under one; restore the file (or give the key in ${KEK_ENV}). "
                               f"Refusing to start with a new key.")
        _create_secret(path)
    if path.stat().st_mode & 0o077:
        log.warning("%s: the key-encryption key is readable by others than its owner (chmod 600)", path)
    secret = path.read_bytes()
    if len(secret) != 32:
        raise QfabricError(f"{path}: the key-encryption secret must be 32 bytes, found {len(secret)}")
    return secret


def open_store(cfg: ServerConfig) -> KeyStore:
    """The KME's key store under its KEK; a clear error naming the KEK's source if it is missing or wrong."""
    secret = load_or_create_secret(cfg.secret_file, cfg.db_url)
    try:
        return KeyStore(cfg.db_url, secret, key_lifetime_s=cfg.key_lifetime_s)
    except WrongKek as err:
        raise QfabricError(f"{kek_source(cfg.secret_file)}: wrong key-encryption key: {err}") from None


# ---- connections ------------------------------------------------------------------------------------

_handshaking: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # server state -> {TlsAccept: None}


def connection_counts(server: uvicorn.Server) -> dict[str, int]:
    """Connections of a running server in the TLS handshake and established (for tests and operators)."""
    return {"handshaking": len(_handshaking.get(server.server_state, ())),
            "established": len(server.server_state.connections)}


class BoundedRequests:
    """For a uvicorn HTTP protocol class (the HTTP side of a connection): a request's headers and body must
    arrive within ``request_timeout_s`` of the connection (or of the request's first byte, after a keep-alive
    pause), and over ``max_connections`` the connection that has waited longest for a request is closed.
    The protocol calls :meth:`_request_in` once a request's body is complete."""

    cycle: Any
    connections: set
    loop: asyncio.AbstractEventLoop
    transport: Any

    def __init__(self, *args, limits: ConnectionLimits, **kwargs):
        super().__init__(*args, **kwargs)
        self.limits = limits
        self._request_timer: asyncio.TimerHandle | None = None
        self._request_deadline: float | None = None  # loop time by which the request under way must be in
        self._timed_cycle = None
        self.waiting_since = self.loop.time()

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()
        self._make_room()

    def _arm(self) -> None:
        """Start the request timeout. One timer serves many requests (rather than one made and cancelled per
        request): a timer still pending from an earlier request moves on to the new deadline when it fires."""
        self._timed_cycle = self.cycle
        self._request_deadline = self.loop.time() + self.limits.request_timeout_s
        if self._request_timer is None:
            self._request_timer = self.loop.call_at(self._request_deadline, self._request_timed_out)

    def _disarm(self) -> None:
        self._request_deadline = None  # the timer, when it fires, finds no request to time out

    def _waiting(self) -> bool:
        """No request of this connection is being handled: between requests, or one not fully received."""
        return self.cycle is None or self.cycle is self._timed_cycle or self.cycle.response_complete

    def _make_room(self) -> None:
        over = len(self.connections) - self.limits.max_connections
        if over > 0:
            idle = sorted((c for c in self.connections if c is not self and isinstance(c, BoundedRequests)
                           and c._waiting()), key=lambda c: c.waiting_since)
            for c in idle[:over]:
                self.connections.discard(c)  # now, not when its connection_lost comes: uvicorn counts this set
                c.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._request_deadline is None and (self.cycle is None or self.cycle.response_complete):
            self._arm()  # a new request begins: its headers and body have request_timeout_s
        super().data_received(data)

    def _request_in(self) -> None:
        if self.cycle is not None and self.cycle is not self._timed_cycle and not self.cycle.more_body:
            self._disarm()  # the request is in: the app answers it, then the keep-alive timeout runs

    def on_response_complete(self) -> None:
        self.waiting_since = self.loop.time()
        super().on_response_complete()

    def _request_timed_out(self) -> None:
        self._request_timer = None
        if self._request_deadline is None:  # the request came in: nothing to time out
            return
        if self.loop.time() < self._request_deadline:  # armed again since, for a later request
            self._request_timer = self.loop.call_at(self._request_deadline, self._request_timed_out)
            return
        if not self.transport.is_closing() and (self.cycle is None or self.cycle is self._timed_cycle
                                                or self.cycle.more_body):
            self.transport.abort()  # no close_notify wait: a stalled client gets nothing more

    def connection_lost(self, exc) -> None:
        self._disarm()
        if self._request_timer is not None:
            self._request_timer.cancel()
            self._request_timer = None
        super().connection_lost(exc)


class KmeH11Protocol(BoundedRequests, ClientCertH11Protocol):
    """uvicorn's h11 protocol with the client certificate in the scope and bounded requests (h11 limits the
    request line and headers to ``max_header_bytes`` itself)."""

    def handle_events(self) -> None:
        super().handle_events()
        self._request_in()


class KmeHttpToolsProtocol(BoundedRequests, ClientCertHttpToolsProtocol):
    """uvicorn's httptools protocol (the llhttp parser, in C: a fraction of h11's CPU per request) with the client
    certificate in the scope and bounded requests. A request line and headers over ``max_header_bytes`` get
    uvicorn's 400 for an invalid request and a closed connection: counted as the bytes received while the headers
    are incomplete, and once they are complete (h11 bounds only the former)."""

    _pending_bytes = 0  # bytes received since its first byte while its headers are incomplete
    _in_headers = False

    def data_received(self, data: bytes) -> None:
        started = self._in_headers
        super().data_received(data)
        if self._in_headers and not self.transport.is_closing():  # the parser took all of data as header bytes
            self._pending_bytes = (self._pending_bytes if started else 0) + len(data)
            if self._pending_bytes > self.limits.max_header_bytes:
                self.send_400_response("Invalid HTTP request received.")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True

    def on_headers_complete(self) -> None:
        self._in_headers = False
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)  # ": " and CRLF
        if size > self.limits.max_header_bytes:  # httptools turns this into HttpParserError: 400
            raise ValueError(f"request line and headers over {self.limits.max_header_bytes} bytes")
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and type(cycle.transport) is not OneWrite and cycle.scope["method"] != "HEAD":
            cycle.transport = OneWrite(cycle.transport, cycle)  # (a HEAD response has no body to carry its head)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._request_in()


HTTP_PROTOCOLS = {"httptools": KmeHttpToolsProtocol, "h11": KmeH11Protocol}


class OneWrite:
    """A connection's transport as one response cycle of uvicorn's httptools protocol sees it: the status line and
    headers, which the cycle writes when the app starts its response, are held back and written with the first
    bytes of the body, so that a response leaves as one TLS record and one ``send`` rather than two (the two writes
    were a fifth of the event loop's time). ``close`` writes a held head first; anything else is the transport's.

    >>> # cycle.transport = OneWrite(transport, cycle)
    """

    __slots__ = ("transport", "cycle", "head", "passing")

    def __init__(self, transport, cycle):
        self.transport, self.cycle = transport, cycle
        self.head: bytes | None = None
        self.passing = False  # the head has gone: writes pass straight through

    def write(self, data: bytes) -> None:
        if self.passing:
            self.transport.write(data)
        elif self.head is not None:
            self.passing = True
            self.transport.write(self.head + data)
            self.head = None
        elif self.cycle.response_started:  # the cycle writes the head right after marking the response started
            self.head = data
        else:  # before the response: "100 Continue"
            self.transport.write(data)

    def close(self) -> None:
        if self.head is not None:
            self.write(b"")
        self.transport.close()

    def __getattr__(self, name: str):
        return getattr(self.transport, name)


class TlsAccept(asyncio.Protocol):
    """What the listening socket accepts: a TCP connection, put at once under the event loop's own TLS layer
    (its ``SSLProtocol``, as ``loop.create_server(ssl=...)`` does), with a handshake timeout and a cap on
    connections in the handshake (over it, the oldest is dropped). Once the handshake is done, the TLS layer
    hands the connection to the HTTP protocol ``http`` (:class:`KmeHttpToolsProtocol`, or :class:`KmeH11Protocol`).
    uvicorn's own TLS has neither bound: a connection that never completes the handshake holds a file descriptor
    for a minute.

    The TLS layer is installed inside ``connection_made``, before the loop reads the connection: uvloop starts
    reading as soon as ``connection_made`` returns (``loop.start_tls``, run from a task, would come too late for
    the ClientHello), asyncio's loop right after."""

    def __init__(self, config: uvicorn.Config, server_state, app_state, _loop=None, *, tls: ssl.SSLContext,
                 limits: ConnectionLimits, http: type[BoundedRequests] = KmeHttpToolsProtocol):
        self.loop = _loop or asyncio.get_event_loop()
        self.tls, self.limits = tls, limits
        self.http = http(config, server_state, app_state, _loop, limits=limits)
        self.pending = _handshaking.setdefault(server_state, {})
        self.raw: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.raw = transport
        handshake = self.loop.create_future()  # done when the handshake ends, however it ends
        handshake.add_done_callback(self._handshake_over)
        layer = _ssl_protocol_class(self.loop)(self.loop, self.http, self.tls, handshake, server_side=True,
                                               ssl_handshake_timeout=self.limits.handshake_timeout_s,
                                               ssl_shutdown_timeout=self.limits.shutdown_timeout_s)
        transport.set_protocol(layer)
        layer.connection_made(transport)  # starts the handshake (and its timeout); the HTTP protocol's
        # connection_made comes from the TLS layer once the handshake is done
        self.pending[self] = None
        while len(self.pending) > self.limits.max_handshakes:
            next(iter(self.pending)).drop()

    def drop(self) -> None:
        self.pending.pop(self, None)
        if self.raw is not None:
            self.raw.abort()

    def _handshake_over(self, handshake: asyncio.Future) -> None:
        self.pending.pop(self, None)
        if not handshake.cancelled():
            handshake.exception()  # a failed handshake is the client's problem: retrieved, not logged

    # the transport's protocol only until connection_made has put the TLS layer in its place
    def data_received(self, data: bytes) -> None:
        if self.raw is not None:  # (no loop reads before connection_made) plain bytes would bypass TLS: drop
            self.raw.abort()

    def connection_lost(self, exc) -> None:
        self.pending.pop(self, None)


DEFAULT_LOOP = "uvloop" if uvloop is not None else "asyncio"


def _ssl_protocol_class(loop: asyncio.AbstractEventLoop) -> type:
    """The TLS layer of ``loop``: uvloop's (in Cython) on a uvloop loop, else asyncio's."""
    if uvloop is not None and isinstance(loop, uvloop.Loop):
        return uvloop.loop.SSLProtocol
    return asyncio.sslproto.SSLProtocol


def uvicorn_config(cfg: ServerConfig, app, own_process: bool = True, http: str = "httptools",
                   loop: str = DEFAULT_LOOP) -> uvicorn.Config:
    """``own_process=False`` for a KME in a thread of someone else's program: uvicorn then leaves the process's
    logging alone (its default config binds handlers to whatever ``sys.stderr`` is at that moment). ``http``:
    ``"httptools"`` or ``"h11"``; ``loop``: ``"uvloop"`` or ``"asyncio"`` (both serve the same KME).

    TLS is done by :class:`TlsAccept` (so uvicorn itself is given no certificate): see
    :func:`~qfabric.kms.tls.server_ssl_context` for the context (TLS 1.2+, ECDHE with AEAD only)."""
    if not cfg.host.startswith("127.") and cfg.host not in ("localhost", "::1"):
        raise QfabricError(f"host {cfg.host!r}: a development KME listens on loopback only")
    limits = cfg.connection_limits()
    tls = server_ssl_context(cfg.certfile, cfg.keyfile, cfg.cafile)
    protocol = functools.partial(TlsAccept, tls=tls, limits=limits, http=HTTP_PROTOCOLS[http])
    return uvicorn.Config(HotPath.in_front_of(app), host=cfg.host, port=cfg.port,
                          http=protocol,  # type: ignore[arg-type]
                          timeout_keep_alive=limits.keep_alive_s, backlog=limits.backlog,
                          h11_max_incomplete_event_size=limits.max_header_bytes,
                          # requests in flight: over it (all connections busy), 503 rather than a queue
                          limit_concurrency=limits.max_connections + 1,
                          # uvloop (libuv, and a TLS layer in Cython): about a third less CPU per request
                          loop=loop,
                          # no proxy in front of a KME: X-Forwarded-* headers are not trusted (nor parsed per request)
                          proxy_headers=False,
                          server_header=False,  # no "server: uvicorn" in every response (and nothing to advertise)
                          log_level="warning", access_log=False, lifespan="off", ws="none",
                          **({} if own_process else {"log_config": None}))


def raise_open_file_limit(limits: ConnectionLimits) -> None:
    """Let this process hold its connection caps' worth of sockets (the soft limit up to the hard one)."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    needed = limits.max_handshakes + limits.max_connections + 64
    if soft != resource.RLIM_INFINITY and soft < needed:
        log.warning("open file limit %d is below the connection caps (%d handshaking + %d established + 64)",
                    soft, limits.max_handshakes, limits.max_connections)


def build(cfg: ServerConfig):
    store = open_store(cfg)
    return store, create_app(cfg.kme(), store)


def main(argv: list[str] | None = None) -> None:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        raise SystemExit("usage: python -m qfabric.kms.server kme.json")
    cfg = ServerConfig.load(args[0])
    try:
        store, app = build(cfg)
        config = uvicorn_config(cfg, app)
        store.writer()  # the database's write path (its thread and connection) opens now, not on a first request
    except QfabricError as err:
        raise SystemExit(f"qfabric.kms.server: {err}") from None
    raise_open_file_limit(cfg.connection_limits())
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
