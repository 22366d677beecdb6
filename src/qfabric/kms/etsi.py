"""The key delivery API of ETSI GS QKD 014 V1.1.1, served by a KME.

    GET        /api/v1/keys/{slave_SAE_ID}/status
    POST, GET  /api/v1/keys/{slave_SAE_ID}/enc_keys     called by the master SAE
    POST, GET  /api/v1/keys/{master_SAE_ID}/dec_keys    called by the slave SAE, naming the master
    GET        /metrics                                  Prometheus metrics, for ``KmeConfig.operators`` only
    POST       /api/v1/kme/forward                       keys from a neighbour KME (``KmeConfig.forwarder``,
                                                         :mod:`qfabric.kms.interkme`)
    GET        /docs, /redoc, /openapi.json              only with ``KmeConfig.api_docs``

The caller's SAE ID is the common name of its client certificate (verified by the TLS handshake);
nothing in a request's path, body or headers can change who the caller is. SAE IDs are 1 to 64
characters A-Z a-z 0-9 . _ - starting with a letter or digit. Every refusal of the application (400,
401, 403, 404, 405, 413, 503) answers ``{"message": ..., "details": [...]}``, is written to the store's
audit log, and never changes a pool.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import math
import re
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from qfabric.errors import QfabricError
from qfabric.kms.certs import common_name
from qfabric.kms.client import MAX_LINK_QBER
from qfabric.kms.naming import SAE_ID_RULE, valid_sae_id
from qfabric.kms.relay import pool_name
from qfabric.kms.store import KeysExhausted, KeysNotForCaller, KeysNotFound, KeyStore

log = logging.getLogger(__name__)

NOT_FOUND = "one or more keys specified are not found on KME"
EXTENSIONS_UNSUPPORTED = "not all extension_mandatory parameters are supported"
SIZE_MULTIPLE = "size shall be a multiple of 8"
UNKNOWN_SAE = "the client certificate names no SAE of this KME"
NOT_A_SLAVE = "the caller is not a slave SAE of one or more keys specified"
NOT_AN_OPERATOR = "only operators may read the metrics"
MAX_JSON_DEPTH = 16  # a request body nested deeper is refused (the standard's bodies are 3 deep)

_ASCII_DIGITS = re.compile(r"[0-9]+")


@dataclass
class KmeConfig:
    """One KME: its ID, the SAEs it knows (SAE ID -> the ID of the KME it is attached to), and its limits."""

    kme_id: str
    saes: dict[str, str]
    key_size: int = 256
    max_key_count: int = 100_000
    max_key_per_request: int = 128
    max_key_size: int = 1024
    min_key_size: int = 64
    max_sae_id_count: int = 4
    max_body_bytes: int = 65_536
    supported_extensions: frozenset[str] = field(default_factory=frozenset)
    status_extension: Callable[[str, str], dict | None] | None = None  # e.g. the QBER of the pair's links
    # the worst QBER of the pair's links, for the max_link_qber extension (default: the status extension's)
    link_qber: Callable[[str, str], float | None] | None = None
    operators: frozenset[str] = field(default_factory=frozenset)  # certificate common names that read /metrics
    api_docs: bool = False  # serve /docs, /redoc and /openapi.json
    forwarder: Any = None  # a qfabric.kms.interkme.Forwarder: keys for SAEs of other KMEs (``saes`` names them)

    def __post_init__(self) -> None:
        self.operators = frozenset(self.operators)  # a list when read from JSON
        self.supported_extensions = frozenset(self.supported_extensions)
        bad = sorted(repr(s) for s in (*self.saes, *self.operators) if not valid_sae_id(s))
        if bad:
            raise QfabricError(f"SAE IDs and operator names shall be {SAE_ID_RULE}: {', '.join(bad)}")

    def pool(self, master: str, slave: str) -> str:
        """The key pool shared by an SAE pair (the same pool in both directions)."""
        return pool_name("sae", *sorted((master, slave)))


# ---- OpenAPI schemas (the document matches these shapes) ----------------------------------------

class Status(BaseModel):
    model_config = {"extra": "allow"}
    source_KME_ID: str
    target_KME_ID: str
    master_SAE_ID: str
    slave_SAE_ID: str
    key_size: int
    stored_key_count: int
    max_key_count: int
    max_key_per_request: int
    max_key_size: int
    min_key_size: int
    max_SAE_ID_count: int


class KeyRequest(BaseModel):
    number: int | None = None
    size: int | None = None
    additional_slave_SAE_IDs: list[str] | None = None
    extension_mandatory: list[dict] | None = None
    extension_optional: list[dict] | None = None


class Key(BaseModel):
    key_ID: str
    key: str


class KeyContainer(BaseModel):
    keys: list[Key]


class KeyID(BaseModel):
    key_ID: str


class KeyIDs(BaseModel):
    key_IDs: list[KeyID]


class Error(BaseModel):
    message: str
    details: list[dict] | None = None


class Refusal(Exception):
    """An ETSI error response (any status); ``reason`` labels it in the metrics and the audit log."""

    def __init__(self, status: int, message: str, details: list | None = None, reason: str = "bad_request",
                 headers: dict | None = None):
        self.status, self.message, self.details, self.reason = status, message, details or [], reason
        self.headers = headers


ERRORS = {400: {"model": Error, "description": "Bad request format"},
          401: {"model": Error, "description": "Unauthorized"},
          503: {"model": Error, "description": "Error on server side"}}


class _BadJson(ValueError):
    """A request body the standard's JSON does not allow (its message is the refusal's)."""


def _no_constant(name: str):
    raise _BadJson(f"request body is not valid JSON: {name} is not a number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _BadJson(f"request body holds a number out of range: {text[:40]}")
    return value


def _object(pairs: list) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _BadJson("request body repeats a member name in an object")
    return out


# the strict decoder, built once (json.loads with these hooks builds one per call)
_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite, object_pairs_hook=_object)


def _depth(value) -> int:
    """The nesting depth of parsed JSON (objects and arrays), without recursion; stops past MAX_JSON_DEPTH."""
    deepest, stack = 0, [(value, 1)]
    while stack and deepest <= MAX_JSON_DEPTH:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _error_response(r: Refusal) -> Response:
    """The ETSI error body; escaped to ASCII, so echoed input (a lone surrogate, say) always encodes."""
    try:
        content = json.dumps({"message": r.message, "details": r.details}, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        content = json.dumps({"message": r.message, "details": []})
    return Response(content, status_code=r.status, media_type="application/json", headers=r.headers)


def _column(text: str | None) -> str | None:
    return None if text is None else text[:200]  # the audit table's sae and peer columns


@functools.lru_cache(maxsize=4096)
def _certificate_name(pem: str) -> str | None:
    """The common name of a verified client certificate (PEM, as the ASGI TLS extension gives it); parsed once
    per certificate, not per request."""
    return common_name(ssl.PEM_cert_to_DER_cert(pem))


def _body_schema(model: type[BaseModel]) -> dict:
    return {"requestBody": {"required": False, "content": {"application/json": {"schema": model.model_json_schema()}}}}


def _key_container(keys) -> bytes:
    """The ETSI key container as compact JSON, written directly: key IDs (UUIDs) and base64 are ASCII, so this is
    ``json.dumps({"keys": [{"key_ID": ..., "key": ...}, ...]}, separators=(",", ":"))`` without its encoder.

    >>> from qfabric.kms.store import Delivery
    >>> _key_container([Delivery("1b4e28ba-2fa1-11d2-883f-0016d3cca427", bytes(4), 32)])
    b'{"keys":[{"key_ID":"1b4e28ba-2fa1-11d2-883f-0016d3cca427","key":"AAAAAA=="}]}'
    """
    return b'{"keys":[%s]}' % b",".join(b'{"key_ID":"%s","key":"%s"}' % (k.key_id.encode("ascii"),
                                                                         base64.b64encode(k.material))
                                         for k in keys)


class HotPath:
    """ASGI middleware: requests ``METHOD /api/v1/keys/{SAE_ID}/{call}`` with a handler in ``calls``
    (``(method, call) -> (path parameter name, handler(sae_id, request))``) are answered by that handler
    directly; everything else goes on to ``app``."""

    def __init__(self, app, calls: dict):
        self.app, self.calls = app, calls

    @classmethod
    def in_front_of(cls, app):
        """``app`` (from :func:`create_app`) with its hot path also in front of FastAPI's own layers (error and
        exception middleware, as the server runs it): the hot calls skip them, the rest reaches ``app`` as before.
        An app without a hot path comes back as it is.

        >>> # uvicorn.Config(HotPath.in_front_of(create_app(config, store)), ...)
        """
        for middleware in getattr(app, "user_middleware", ()):
            if middleware.cls is cls:
                return cls(app, *middleware.args, **middleware.kwargs)
        return app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            parts = scope["path"].split("/")  # ["", "api", "v1", "keys", SAE_ID, call], as FastAPI's {SAE_ID}
            if len(parts) == 6 and parts[4] and parts[1] == "api" and parts[2] == "v1" and parts[3] == "keys":
                hot = self.calls.get((scope["method"], parts[5]))
                if hot is not None:
                    param, handler = hot
                    scope["path_params"] = {param: parts[4]}
                    response = await handler(parts[4], Request(scope, receive))
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def create_app(config: KmeConfig, store: KeyStore) -> FastAPI:
    """The KME's ASGI application."""
    docs = config.api_docs
    app = FastAPI(title=f"qfabric KME {config.kme_id}", version="1.1.1",
                  description="ETSI GS QKD 014 V1.1.1 key delivery API", docs_url="/docs" if docs else None,
                  redoc_url="/redoc" if docs else None, openapi_url="/openapi.json" if docs else None)
    registry = CollectorRegistry()
    served = Counter("qfabric_kms_keys_served_total", "Keys handed to SAEs", ["kme", "call"], registry=registry)
    refused = Counter("qfabric_kms_refusals_total", "Requests refused", ["kme", "status", "reason"], registry=registry)
    latency = Histogram("qfabric_kms_request_seconds", "Request latency", ["kme", "call"], registry=registry,
                        buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0))
    pool_level = Gauge("qfabric_kms_pool_keys", "Keys of key_size available per pool", ["kme", "pool"],
                       registry=registry)
    app.state.registry = registry
    timer = functools.lru_cache(maxsize=None)(lambda call: latency.labels(config.kme_id, call))  # per call, once
    counter = functools.lru_cache(maxsize=None)(lambda call: served.labels(config.kme_id, call))
    pool_of = functools.lru_cache(maxsize=4096)(config.pool)  # per SAE pair, once (both IDs checked known first)

    def certificate_name(request: Request) -> str | None:
        chain = request.scope.get("extensions", {}).get("tls", {}).get("client_cert_chain")
        return _certificate_name(chain[0]) if chain else None

    def caller(request: Request) -> str:
        sae = certificate_name(request)
        if sae is None or config.saes.get(sae) != config.kme_id:  # an SAE of this KME, not one of another
            raise Refusal(401, UNKNOWN_SAE, reason="unknown_sae")
        return sae

    def peer(sae_id: str, caller_id: str, role: str) -> str:
        if not sae_id or not sae_id.strip():
            raise Refusal(400, f"{role}_SAE_ID shall not be empty")
        if not valid_sae_id(sae_id):
            raise Refusal(400, f"{role}_SAE_ID shall be {SAE_ID_RULE}", [{f"{role}_SAE_ID": sae_id[:100]}],
                          reason="bad_sae_id")
        if sae_id not in config.saes:
            raise Refusal(400, f"{role}_SAE_ID {sae_id!r} is not known to this KME", reason="unknown_peer")
        if sae_id == caller_id:
            raise Refusal(400, f"{role}_SAE_ID shall differ from the caller's SAE ID")
        return sae_id

    async def read_json(request: Request) -> dict | None:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > config.max_body_bytes:
            raise Refusal(413, "request body too large", reason="too_large")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > config.max_body_bytes:
                raise Refusal(413, "request body too large", reason="too_large")
        if not body:
            return None
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise Refusal(400, "Content-Type shall be application/json", [{"content_type": ctype}])
        too_deep = f"request body shall be nested at most {MAX_JSON_DEPTH} levels deep"
        try:
            data = _DECODER.decode(body.decode(json.detect_encoding(body), "surrogatepass"))  # as json.loads(body)
        except _BadJson as err:
            raise Refusal(400, str(err)) from None
        except RecursionError:
            raise Refusal(400, too_deep) from None
        except (ValueError, UnicodeDecodeError) as err:
            raise Refusal(400, "request body is not valid JSON", [{"error": str(err)[:200]}]) from None
        if not isinstance(data, dict):
            raise Refusal(400, "request body shall be a JSON object")
        # (no deeper than its count of [ and { bytes, so most bodies need no walk; UTF-16/32 keep those bytes)
        if body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH and _depth(data) > MAX_JSON_DEPTH:
            raise Refusal(400, too_deep)
        return data

    def integer(name: str, value, default: int, query: bool) -> int:
        """A JSON integer from a body, or a string of ASCII digits from a query."""
        if value is None:
            return default
        if query and isinstance(value, str) and _ASCII_DIGITS.fullmatch(value):
            try:
                return int(value)
            except ValueError:  # more digits than Python converts
                pass
        elif not query and isinstance(value, int) and not isinstance(value, bool):
            return value
        raise Refusal(400, f"{name} shall be an integer", [{name: value}])

    def query(request: Request, allowed: set[str], message: str) -> dict[str, str]:
        """The query parameters, each at most once and all in ``allowed``."""
        params = request.query_params
        if not set(params) <= allowed or any(len(params.getlist(k)) > 1 for k in params):
            raise Refusal(400, message, [{"query": [[k, v] for k, v in params.multi_items()][:10]}])
        return dict(params)

    async def refuse(call: str, request: Request, r: Refusal) -> Response:
        """Count, audit and answer a refusal."""
        refused.labels(config.kme_id, str(r.status), r.reason).inc()
        named = request.path_params.get("slave_SAE_ID", request.path_params.get("master_SAE_ID"))
        detail = json.dumps({"call": call, "status": r.status, "reason": r.reason, "message": r.message})
        try:
            await run_in_threadpool(store.record, "refused", _column(certificate_name(request)), _column(named),
                                    detail)
        except Exception as err:  # the refusal stands; say why it is missing from the audit log
            log.error("refusal not audited (%s: %s): %s", type(err).__name__, err, detail)
        return _error_response(r)

    async def guarded(call: str, request: Request, work) -> Response:
        t0 = time.perf_counter()
        try:
            return await work()
        except Refusal as r:
            return await refuse(call, request, r)
        except Exception as err:  # never a 500, never a half-done change (the store is transactional)
            return await refuse(call, request, Refusal(503, "internal error", [{"error": type(err).__name__}],
                                                       reason="internal"))
        finally:
            timer(call).observe(time.perf_counter() - t0)

    async def http_refusal(request: Request, exc: StarletteHTTPException) -> Response:
        """404 and 405 from routing, as ETSI error bodies, audited like any refusal."""
        return await refuse("http", request, Refusal(exc.status_code, str(exc.detail), reason="routing",
                                                     headers=exc.headers))

    app.add_exception_handler(StarletteHTTPException, http_refusal)

    async def refuse_above_qber(master: str, slave: str, limits: list) -> None:
        """The ``max_link_qber`` extension: no key when the pair's links are noisier than the caller accepts."""
        if any(isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 0.5 for v in limits):
            raise Refusal(400, f"{MAX_LINK_QBER} shall be a number between 0 and 0.5", [{MAX_LINK_QBER: limits}])
        qber = config.link_qber(master, slave) if config.link_qber is not None else \
            (config.status_extension(master, slave) or {}).get("link_qber")
        if qber is not None and qber > min(limits):
            raise Refusal(503, f"link QBER {qber:.4f} above {MAX_LINK_QBER} {min(limits)}",
                          [{"link_qber": qber, MAX_LINK_QBER: min(limits)}], reason="qber")

    def delivered(call: str, keys) -> Response:
        """The ETSI key container, counted in the metrics."""
        counter(call).inc(len(keys))
        return Response(_key_container(keys), media_type="application/json")

    async def forwarded(master: str, slaves: list[str], number: int, size: int):
        """Keys for slaves of another KME, forwarded there first (:mod:`qfabric.kms.interkme`)."""
        if config.forwarder is None:
            raise Refusal(503, f"no route to the KME of {slaves[0]!r} (this KME forwards to no other)",
                          reason="no_route")
        try:
            return await config.forwarder.send(master, slaves, number, size)
        except QfabricError as err:
            raise Refusal(getattr(err, "status", 503), getattr(err, "message", str(err)), getattr(err, "details", []),
                          reason=getattr(err, "reason", "forward")) from None

    def status_of(master: str, slave: str) -> dict:
        if config.saes[slave] != config.kme_id:  # keys forwarded to another KME: what the way there allows
            count = config.forwarder.available(master, slave, config.key_size) if config.forwarder else 0
        else:
            pool = config.pool(master, slave)
            count = store.available(pool, config.key_size)
            pool_level.labels(config.kme_id, pool).set(count)
        status = Status(source_KME_ID=config.kme_id, target_KME_ID=config.saes[slave], master_SAE_ID=master,
                      slave_SAE_ID=slave, key_size=config.key_size, stored_key_count=min(count, config.max_key_count),
                      max_key_count=config.max_key_count, max_key_per_request=config.max_key_per_request,
                      max_key_size=config.max_key_size, min_key_size=config.min_key_size,
                      max_SAE_ID_count=config.max_sae_id_count).model_dump()
        extension = config.status_extension(master, slave) if config.status_extension else None
        return status if extension is None else status | {"status_extension": extension}

    @app.get("/api/v1/keys/{slave_SAE_ID}/status", response_model=Status, responses=ERRORS)
    async def get_status(slave_SAE_ID: str, request: Request):
        async def work():
            master = caller(request)
            slave = peer(slave_SAE_ID, master, "slave")
            return JSONResponse(await run_in_threadpool(status_of, master, slave))
        return await guarded("status", request, work)

    async def enc_keys(slave_SAE_ID: str, request: Request, in_query: bool):
        async def work():
            master = caller(request)
            slave = peer(slave_SAE_ID, master, "slave")
            if in_query:
                data = query(request, {"number", "size"}, "only number and size are allowed as query parameters, "
                                                          "each at most once")
            else:
                data = await read_json(request) or {}
            number = integer("number", data.get("number"), 1, in_query)
            size = integer("size", data.get("size"), config.key_size, in_query)
            if number < 1 or number > config.max_key_per_request:
                raise Refusal(400, f"number shall be between 1 and max_key_per_request ({config.max_key_per_request})",
                              [{"number": number}])
            if size <= 0 or size % 8:
                raise Refusal(400, SIZE_MULTIPLE, [{"size": size}])
            if not config.min_key_size <= size <= config.max_key_size:
                raise Refusal(400, f"size shall be between min_key_size ({config.min_key_size}) and max_key_size "
                              f"({config.max_key_size})", [{"size": size}])
            extra = data.get("additional_slave_SAE_IDs") or []
            if not isinstance(extra, list) or not all(isinstance(x, str) for x in extra):
                raise Refusal(400, "additional_slave_SAE_IDs shall be a list of SAE IDs")
            if len(extra) > config.max_sae_id_count:
                raise Refusal(400, f"at most max_SAE_ID_count ({config.max_sae_id_count}) additional slave SAEs",
                              [{"additional_slave_SAE_IDs": extra}])
            if len(set(extra)) != len(extra) or slave in extra or master in extra:
                raise Refusal(400, "additional_slave_SAE_IDs shall be distinct and differ from the master and slave",
                              [{"additional_slave_SAE_IDs": extra}])
            for sae in extra:
                peer(sae, master, "additional_slave")
            mandatory = data.get("extension_mandatory") or []
            qber_known = config.status_extension is not None or config.link_qber is not None
            supported = config.supported_extensions | ({MAX_LINK_QBER} if qber_known else set())
            if not isinstance(mandatory, list) or any(
                    not isinstance(e, dict) or not set(e) <= supported for e in mandatory):
                raise Refusal(400, EXTENSIONS_UNSUPPORTED, [{"extension_mandatory": mandatory}], reason="extension")
            limits = [e[MAX_LINK_QBER] for e in mandatory if MAX_LINK_QBER in e]
            if limits:
                await refuse_above_qber(master, slave, limits)
            if config.saes[slave] != config.kme_id or any(config.saes[s] != config.kme_id for s in extra):
                return delivered("enc_keys", await forwarded(master, [slave, *extra], number, size))
            try:
                pool, slaves = pool_of(master, slave), [slave, *extra]
                keys = await (store.reserve_async(pool, master, slaves, number, size) if store.group_commit else
                              run_in_threadpool(store.reserve, pool, master, slaves, number, size))
            except KeysExhausted as err:
                raise Refusal(503, "not enough keys available", [{"reason": str(err)}], reason="exhausted") from None
            return delivered("enc_keys", keys)
        return await guarded("enc_keys", request, work)

    @app.post("/api/v1/keys/{slave_SAE_ID}/enc_keys", response_model=KeyContainer, responses=ERRORS,
              openapi_extra=_body_schema(KeyRequest))
    async def post_enc_keys(slave_SAE_ID: str, request: Request):
        return await enc_keys(slave_SAE_ID, request, False)

    @app.get("/api/v1/keys/{slave_SAE_ID}/enc_keys", response_model=KeyContainer, responses=ERRORS)
    async def get_enc_keys(slave_SAE_ID: str, request: Request, number: str | None = None, size: str | None = None):
        return await enc_keys(slave_SAE_ID, request, True)  # number, size: declared for the document, read raw

    async def dec_keys(master_SAE_ID: str, request: Request, in_query: bool):
        async def work():
            slave = caller(request)
            master = peer(master_SAE_ID, slave, "master")
            if in_query:
                one_id = "GET dec_keys takes exactly one key_ID query parameter"
                params = query(request, {"key_ID"}, one_id)
                if "key_ID" not in params:
                    raise Refusal(400, one_id)
                key_ids = [params["key_ID"]]
            else:
                data = await read_json(request)
                if data is None or not isinstance(data.get("key_IDs"), list):
                    raise Refusal(400, "key_IDs shall be a list of {\"key_ID\": ...}")
                key_ids = []
                for item in data["key_IDs"]:
                    if not isinstance(item, dict) or not isinstance(item.get("key_ID"), str):
                        raise Refusal(400, "each entry of key_IDs shall be {\"key_ID\": str}", [{"entry": item}])
                    key_ids.append(item["key_ID"])
            if not key_ids:
                raise Refusal(400, "key_IDs shall not be empty")
            if len(key_ids) > config.max_key_per_request:
                raise Refusal(400, f"at most max_key_per_request ({config.max_key_per_request}) key IDs")
            if len(set(key_ids)) != len(key_ids):
                raise Refusal(400, "key_IDs shall be distinct")
            for k in key_ids:
                try:
                    uuid.UUID(k)
                except ValueError:
                    raise Refusal(400, "key_ID shall be a UUID", [{"key_ID": k}]) from None
            try:
                keys = await (store.claim_async(slave, master, key_ids) if store.group_commit else
                              run_in_threadpool(store.claim, slave, master, key_ids))
            except KeysNotForCaller:
                raise Refusal(401, NOT_A_SLAVE, reason="not_a_slave") from None
            except KeysNotFound as err:
                raise Refusal(400, NOT_FOUND, [{"key_IDs": list(err.args[0])}], reason="not_found") from None
            return delivered("dec_keys", keys)
        return await guarded("dec_keys", request, work)

    @app.post("/api/v1/keys/{master_SAE_ID}/dec_keys", response_model=KeyContainer, responses=ERRORS,
              openapi_extra=_body_schema(KeyIDs))
    async def post_dec_keys(master_SAE_ID: str, request: Request):
        return await dec_keys(master_SAE_ID, request, False)

    @app.get("/api/v1/keys/{master_SAE_ID}/dec_keys", response_model=KeyContainer, responses=ERRORS)
    async def get_dec_keys(master_SAE_ID: str, request: Request, key_ID: str | None = None):
        return await dec_keys(master_SAE_ID, request, True)

    # The hot calls skip FastAPI's routing, dependency solving and middleware layers: a thin ASGI layer matches
    # /api/v1/keys/{SAE_ID}/{call} itself and runs the same handlers (same checks, refusals, audit and
    # metrics). Anything else (other methods, other paths, /metrics, the docs) goes to FastAPI as before.
    hot_calls = {("POST", "enc_keys"): ("slave_SAE_ID", lambda sae, request: enc_keys(sae, request, False)),
                 ("GET", "enc_keys"): ("slave_SAE_ID", lambda sae, request: enc_keys(sae, request, True)),
                 ("POST", "dec_keys"): ("master_SAE_ID", lambda sae, request: dec_keys(sae, request, False)),
                 ("GET", "dec_keys"): ("master_SAE_ID", lambda sae, request: dec_keys(sae, request, True)),
                 ("GET", "status"): ("slave_SAE_ID", lambda sae, request: get_status(sae, request))}
    app.add_middleware(HotPath, calls=hot_calls)

    if config.forwarder is not None:
        @app.post("/api/v1/kme/forward", include_in_schema=False)
        async def forward(request: Request):
            """Keys a neighbour KME forwards (:mod:`qfabric.kms.interkme`); the caller is the KME its certificate
            names."""
            async def work():
                data = await read_json(request) or {}
                try:
                    return JSONResponse(await config.forwarder.receive(certificate_name(request), data))
                except QfabricError as err:
                    raise Refusal(getattr(err, "status", 503), getattr(err, "message", str(err)),
                                  getattr(err, "details", []), reason=getattr(err, "reason", "forward")) from None
            return await guarded("kme_forward", request, work)

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request):
        async def work():
            name = certificate_name(request)
            if name is None:
                raise Refusal(401, "a client certificate is required", reason="no_certificate")
            if name not in config.operators:
                raise Refusal(403, NOT_AN_OPERATOR, reason="not_an_operator")
            return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
        return await guarded("metrics", request, work)

    return app
