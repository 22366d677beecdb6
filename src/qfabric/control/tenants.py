"""Tenants, credentials, quotas and metering: who may ask the entanglement service for what, and what they used.

A :class:`Tenant` has a :class:`Quota` (concurrent requests, admitted rate, pairs per fixed window, memory
qubits), a weight (its circuits' share of contended memories, split by the engine), a priority (a higher one may
preempt a lower one, :func:`preemption_victims`) and a secret: its requests carry a token signed with
HMAC-SHA256 (:func:`issue_token`, :func:`verify_token`). A :class:`QuotaBook` keeps the exact accounting the
service admits, pauses and delivers by, and a :class:`UsageLedger` meters every tenant (CSV export).
Times are simulated seconds.

>>> bank = Tenant("bank", weight=2.0, quota=Quota(max_concurrent_requests=1, max_pairs_per_window=2, window_s=10.0),
...               secret=b"bank-key")
>>> token = issue_token(bank, request="r1", not_after_s=100.0)
>>> verify_token(token, {"bank": bank}, request="r1", now_s=5.0)
'bank'
>>> book = QuotaBook({"bank": bank})
>>> book.admit("bank", "r1", rate_hz=None, memory_qubits=2, now_s=5.0)
>>> book.admit("bank", "r2", rate_hz=None, memory_qubits=2, now_s=5.0)
Traceback (most recent call last):
...
qfabric.control.tenants.QuotaExceeded: tenant 'bank': max_concurrent_requests 1 reached (1 active)
>>> for t_s in (5.0, 6.0, 7.0):
...     if book.may_deliver("bank", t_s):
...         book.record_delivery("bank", "r1", t_s)
>>> book.usage("bank")["window_pairs"], book.next_window_s("bank", 7.0)
(2, 10.0)
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import hmac
import io
import json
import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from qfabric.errors import ParameterError, QfabricError

__all__ = [
    "EVENTS",
    "LEDGER_COLUMNS",
    "Quota",
    "QuotaBook",
    "QuotaExceeded",
    "Tenant",
    "TokenError",
    "TokenReason",
    "UsageLedger",
    "issue_token",
    "preemption_victims",
    "verify_token",
]

RATE_REL_TOL = 1e-9
"""The admitted rate may exceed ``max_rate_hz`` by this relative amount (float sums: 3 x 0.1 Hz fits 0.3 Hz).
Counted quotas (requests, pairs, memory qubits) hold exactly."""


# --------------------------------------------------------------------------------------------------- validation


def _count(name: str, value: Any, *, optional: bool = True) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ParameterError(name, value, "a whole number >= 0" + (" or None" if optional else ""))
    return int(value)


def _real(name: str, value: Any, expected: str, *, positive: bool = False, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
            or value < 0 or (positive and value == 0)):
        raise ParameterError(name, value, expected)
    return float(value)


def _time(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ParameterError(name, value, "a finite time in seconds")
    return float(value)


def _window_index(t_s: float, window_s: float) -> int:
    """The k with ``k * window_s <= t_s < (k + 1) * window_s`` in floats, so that ``next_window_s`` is in the next."""
    k = math.floor(t_s / window_s)
    if k * window_s > t_s:
        k -= 1
    elif (k + 1) * window_s <= t_s:
        k += 1
    return k


# --------------------------------------------------------------------------------------------------- tenants


@dataclass(frozen=True)
class Quota:
    """What one tenant may hold at once; ``None`` means no limit.

    ``max_rate_hz`` bounds the sum of the target rates of its admitted, active requests (a request without a
    target rate counts 0); ``max_pairs_per_window`` bounds the pairs delivered in each fixed window
    ``[k * window_s, (k + 1) * window_s)``; ``max_memory_qubits`` the qubits its admitted requests reserve.

    >>> Quota(max_concurrent_requests=2, window_s=0)
    Traceback (most recent call last):
    ...
    qfabric.errors.ParameterError: window_s = 0: expected a window length in seconds > 0
    """

    max_concurrent_requests: int | None = None
    max_rate_hz: float | None = None
    max_pairs_per_window: int | None = None
    window_s: float = 60.0
    max_memory_qubits: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_concurrent_requests", "max_pairs_per_window", "max_memory_qubits"):
            object.__setattr__(self, name, _count(name, getattr(self, name)))
        object.__setattr__(self, "max_rate_hz",
                           _real("max_rate_hz", self.max_rate_hz, "a rate >= 0 or None", optional=True))
        object.__setattr__(self, "window_s",
                           _real("window_s", self.window_s, "a window length in seconds > 0", positive=True))


@dataclass(frozen=True)
class Tenant:
    """A customer of the network: its weight (> 0), priority (higher may preempt lower), quota and HMAC key.

    An empty ``secret`` means its requests need no token. The secret never shows in the repr.

    >>> lab = Tenant("lab", weight=0.5, secret=b"k")
    >>> lab.needs_token, "secret" in repr(lab), Tenant("guest").needs_token
    (True, False, False)
    """

    name: str
    weight: float = 1.0
    priority: int = 0
    quota: Quota = field(default_factory=Quota)
    secret: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ParameterError("name", self.name, "a non-empty tenant name")
        object.__setattr__(self, "weight", _real("weight", self.weight, "a weight > 0", positive=True))
        if isinstance(self.priority, bool) or not isinstance(self.priority, numbers.Integral):
            raise ParameterError("priority", self.priority, "a whole number")
        object.__setattr__(self, "priority", int(self.priority))
        if not isinstance(self.quota, Quota):
            raise ParameterError("quota", self.quota, "a Quota")
        if not isinstance(self.secret, bytes | bytearray):
            raise ParameterError("secret", "<hidden>", "bytes (an HMAC key; empty: no token needed)")
        object.__setattr__(self, "secret", bytes(self.secret))

    @property
    def needs_token(self) -> bool:
        """True when its requests must carry a token signed with its secret."""
        return bool(self.secret)


# --------------------------------------------------------------------------------------------------- tokens


class TokenReason(StrEnum):
    """Why a token was refused (:attr:`TokenError.reason`); each compares equal to its string."""

    MALFORMED = "malformed token"
    UNKNOWN_TENANT = "unknown tenant"
    BAD_SIGNATURE = "bad signature"
    EXPIRED = "expired"
    NOT_YET_VALID = "issued in the future"
    WRONG_REQUEST = "token for another request"


class TokenError(QfabricError):
    """A request's token is refused; ``reason`` is a :class:`TokenReason`, ``tenant`` the claimed one (or None)."""

    def __init__(self, reason: TokenReason, message: str, tenant: str | None = None):
        self.reason, self.tenant = reason, tenant
        super().__init__(f"{reason.value}: {message}")


_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_CLAIMS = {"tenant": str, "request": str, "iat": float, "exp": float}


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, payload: str) -> str:
    return _b64encode(hmac.new(secret, payload.encode("ascii"), hashlib.sha256).digest())


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def issue_token(tenant: Tenant, *, request: str, not_after_s: float, now_s: float = 0.0) -> str:
    """A token for ``tenant``'s ``request``, valid from ``now_s`` to ``not_after_s`` (inclusive).

    The token is ``base64url(claims) + "." + base64url(HMAC-SHA256(secret, first part))``, the claims the
    canonical JSON of ``tenant``, ``request``, ``iat`` (issued at) and ``exp`` (expires), without padding.

    >>> claims, signature = issue_token(Tenant("lab", secret=b"k"), request="r1", not_after_s=60.0).split(".")
    >>> _b64decode(claims), len(signature)
    (b'{"exp":60.0,"iat":0.0,"request":"r1","tenant":"lab"}', 43)
    """
    if not tenant.secret:
        raise ParameterError("secret", "<empty>", f"an HMAC key for tenant {tenant.name!r} to sign tokens with")
    if not isinstance(request, str):
        raise ParameterError("request", request, "a request name")
    iat, exp = _time("now_s", now_s), _time("not_after_s", not_after_s)
    if exp < iat:
        raise ParameterError("not_after_s", not_after_s, f"a time not before now_s ({iat})")
    claims = {"tenant": tenant.name, "request": request, "iat": iat, "exp": exp}
    payload = _b64encode(json.dumps(claims, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("ascii"))
    return f"{payload}.{_sign(tenant.secret, payload)}"


def _claims(token: object) -> tuple[str, dict[str, Any]]:
    """The signed part and the claims of a well-formed token; TokenError(MALFORMED) otherwise."""

    def malformed(why: str) -> TokenError:
        return TokenError(TokenReason.MALFORMED, why)

    if not isinstance(token, str):
        raise malformed(f"expected a string, got {type(token).__name__}")
    parts = token.split(".")
    if len(parts) != 2 or not all(_B64URL.fullmatch(part) for part in parts):
        raise malformed("expected two base64url parts joined by '.'")
    try:
        claims = json.loads(_b64decode(parts[0]).decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError, binascii.Error) as error:  # JSON, UTF-8 and base64 errors are ValueErrors
        raise malformed(f"claims are not base64url JSON ({type(error).__name__})") from None
    if not isinstance(claims, dict) or set(claims) != set(_CLAIMS):
        raise malformed(f"claims must be an object with exactly {sorted(_CLAIMS)}")
    for name, kind in _CLAIMS.items():
        value = claims[name]
        if kind is str and not isinstance(value, str):
            raise malformed(f"claim {name!r} must be a string")
        if kind is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise malformed(f"claim {name!r} must be a number")
            try:
                claims[name] = float(value)
            except OverflowError:
                raise malformed(f"claim {name!r} is out of range") from None
            if not math.isfinite(claims[name]):
                raise malformed(f"claim {name!r} must be finite")
    return parts[0], claims


def verify_token(token: str, tenants: Mapping[str, Tenant], *, request: str, now_s: float) -> str:
    """The tenant a valid ``token`` for ``request`` at ``now_s`` names; :class:`TokenError` otherwise.

    Checks, in order: well-formed, known tenant with a secret, signature (constant-time), not expired
    (``now_s <= exp``), not issued in the future (``iat <= now_s``), issued for this request. Any string
    yields either a tenant name or a TokenError.

    >>> lab = Tenant("lab", secret=b"k")
    >>> token = issue_token(lab, request="r1", not_after_s=60.0)
    >>> verify_token(token, {"lab": lab}, request="r1", now_s=61.0)
    Traceback (most recent call last):
    ...
    qfabric.control.tenants.TokenError: expired: token of tenant 'lab' expired at 60.0 s (now 61.0 s)
    """
    now_s = _time("now_s", now_s)
    payload, claims = _claims(token)
    name = claims["tenant"]
    tenant = tenants.get(name)
    if tenant is None:
        raise TokenError(TokenReason.UNKNOWN_TENANT, f"no tenant named {name!r}", name)
    if not tenant.secret:
        raise TokenError(TokenReason.BAD_SIGNATURE, f"tenant {name!r} has no secret to check a token with", name)
    signature = token.rsplit(".", 1)[1]
    if not hmac.compare_digest(_sign(tenant.secret, payload).encode("ascii"), signature.encode("ascii")):
        raise TokenError(TokenReason.BAD_SIGNATURE, f"token of tenant {name!r} is not signed with its secret", name)
    if now_s > claims["exp"]:
        raise TokenError(TokenReason.EXPIRED, f"token of tenant {name!r} expired at {claims['exp']!r} s "
                                              f"(now {now_s!r} s)", name)
    if claims["iat"] > now_s:
        raise TokenError(TokenReason.NOT_YET_VALID, f"token of tenant {name!r} issued at {claims['iat']!r} s, "
                                                    f"after now ({now_s!r} s)", name)
    if claims["request"] != request:
        raise TokenError(TokenReason.WRONG_REQUEST, f"token of tenant {name!r} is for request "
                                                    f"{claims['request']!r}, not {request!r}", name)
    return name


# --------------------------------------------------------------------------------------------------- quotas


class QuotaExceeded(QfabricError):
    """A request or a pair would break a quota: ``quota`` names the field, ``limit`` its value, ``wanted`` what
    the tenant would hold with it."""

    def __init__(self, tenant: str, quota: str, limit: float, wanted: float, message: str):
        self.tenant, self.quota, self.limit, self.wanted = tenant, quota, limit, wanted
        super().__init__(f"tenant {tenant!r}: {message}")


@dataclass
class _Account:
    tenant: Tenant
    active: dict[str, tuple[float, int]] = field(default_factory=dict)  # request -> (rate_hz, memory_qubits)
    reserved_qubits: int = 0
    window: int | None = None  # index k of the window the count is for
    window_pairs: int = 0
    pairs_total: int = 0


class QuotaBook:
    """The exact accounting of every tenant's quotas: admitted requests, their rates and qubits, pairs per window.

    No tenant ever holds more requests, qubits or pairs in a window than its quota: :meth:`admit` and
    :meth:`record_delivery` refuse with :class:`QuotaExceeded` instead. Time may not run backwards across
    windows.

    >>> book = QuotaBook({"lab": Tenant("lab", quota=Quota(max_memory_qubits=4, max_rate_hz=10.0))})
    >>> book.admit("lab", "a", rate_hz=6.0, memory_qubits=2, now_s=0.0)
    >>> book.admit("lab", "b", rate_hz=5.0, memory_qubits=2, now_s=1.0)
    Traceback (most recent call last):
    ...
    qfabric.control.tenants.QuotaExceeded: tenant 'lab': max_rate_hz 10.0 exceeded (6.0 admitted + 5.0 asked = 11.0)
    >>> book.release("lab", "a", now_s=2.0)
    >>> book.admit("lab", "b", rate_hz=5.0, memory_qubits=4, now_s=2.0)
    >>> book.usage("lab")["reserved_memory_qubits"]
    4
    """

    def __init__(self, tenants: Mapping[str, Tenant]):
        self.tenants: dict[str, Tenant] = dict(tenants)
        self._accounts = {name: _Account(tenant) for name, tenant in self.tenants.items()}

    def _account(self, tenant: str) -> _Account:
        account = self._accounts.get(tenant)
        if account is None:
            raise ParameterError("tenant", tenant, f"one of {sorted(self._accounts)}")
        return account

    def _roll(self, account: _Account, now_s: float) -> int:
        k = _window_index(_time("now_s", now_s), account.tenant.quota.window_s)
        if account.window is None or k > account.window:
            account.window, account.window_pairs = k, 0
        elif k < account.window:
            start = account.window * account.tenant.quota.window_s
            raise ParameterError("now_s", now_s, f"a time not before the current window, which starts at {start} s")
        return k

    def admit(self, tenant: str, request: str, *, rate_hz: float | None, memory_qubits: int, now_s: float) -> None:
        """Record ``request`` as active with its target rate and reserved qubits, or raise :class:`QuotaExceeded`
        naming the first quota it would break (concurrent requests, then rate, then memory)."""
        account = self._account(tenant)
        _time("now_s", now_s)
        rate = _real("rate_hz", rate_hz, "a rate >= 0 or None", optional=True)
        qubits = _count("memory_qubits", memory_qubits, optional=False)
        if request in account.active:
            raise ParameterError("request", request, f"a name not already active for tenant {tenant!r}")
        quota = account.tenant.quota
        active = len(account.active)
        if quota.max_concurrent_requests is not None and active + 1 > quota.max_concurrent_requests:
            raise QuotaExceeded(tenant, "max_concurrent_requests", quota.max_concurrent_requests, active + 1,
                                f"max_concurrent_requests {quota.max_concurrent_requests} reached ({active} active)")
        if quota.max_rate_hz is not None and rate:
            rates = [r for r, _ in account.active.values()]
            admitted, wanted = math.fsum(rates), math.fsum([*rates, rate])
            if wanted > quota.max_rate_hz * (1 + RATE_REL_TOL):
                raise QuotaExceeded(tenant, "max_rate_hz", quota.max_rate_hz, wanted,
                                    f"max_rate_hz {quota.max_rate_hz!r} exceeded ({admitted!r} admitted + {rate!r} "
                                    f"asked = {wanted!r})")
        if quota.max_memory_qubits is not None and account.reserved_qubits + qubits > quota.max_memory_qubits:
            wanted = account.reserved_qubits + qubits
            raise QuotaExceeded(tenant, "max_memory_qubits", quota.max_memory_qubits, wanted,
                                f"max_memory_qubits {quota.max_memory_qubits} exceeded ({account.reserved_qubits} "
                                f"reserved + {qubits} asked = {wanted})")
        account.active[request] = (rate or 0.0, qubits)
        account.reserved_qubits += qubits

    def release(self, tenant: str, request: str, now_s: float) -> None:
        """``request`` ended (or was preempted): free its rate and qubits. Releasing twice does nothing."""
        account = self._account(tenant)
        _time("now_s", now_s)
        held = account.active.pop(request, None)
        if held is not None:
            account.reserved_qubits -= held[1]

    def may_deliver(self, tenant: str, now_s: float) -> bool:
        """False when ``tenant`` has had ``max_pairs_per_window`` pairs in the window holding ``now_s`` (pause it
        until :meth:`next_window_s`)."""
        account = self._account(tenant)
        self._roll(account, now_s)
        limit = account.tenant.quota.max_pairs_per_window
        return limit is None or account.window_pairs < limit

    def record_delivery(self, tenant: str, request: str, now_s: float) -> None:
        """Count one pair delivered to the active ``request``; :class:`QuotaExceeded` if :meth:`may_deliver` is
        False (the caller checks first, so the count never passes its quota)."""
        account = self._account(tenant)
        k = self._roll(account, now_s)
        if request not in account.active:
            raise ParameterError("request", request, f"an active request of tenant {tenant!r}")
        quota = account.tenant.quota
        limit = quota.max_pairs_per_window
        if limit is not None and account.window_pairs >= limit:
            raise QuotaExceeded(tenant, "max_pairs_per_window", limit, account.window_pairs + 1,
                                f"max_pairs_per_window {limit} reached in window [{k * quota.window_s!r}, "
                                f"{(k + 1) * quota.window_s!r}) s ({account.window_pairs} delivered)")
        account.window_pairs += 1
        account.pairs_total += 1

    def next_window_s(self, tenant: str, now_s: float) -> float:
        """Where the window after the one holding ``now_s`` starts (a paused tenant resumes then)."""
        window_s = self._account(tenant).tenant.quota.window_s
        return (_window_index(_time("now_s", now_s), window_s) + 1) * window_s

    def usage(self, tenant: str, now_s: float | None = None) -> dict[str, Any]:
        """What ``tenant`` holds: active requests, admitted rate, reserved qubits, pairs in the current window (the
        one holding ``now_s`` if given, else the last one counted) and in total."""
        account = self._account(tenant)
        if now_s is not None:
            self._roll(account, now_s)
        window_s = account.tenant.quota.window_s
        return {
            "active_requests": len(account.active),
            "admitted_rate_hz": math.fsum(r for r, _ in account.active.values()),
            "reserved_memory_qubits": account.reserved_qubits,
            "window_start_s": None if account.window is None else account.window * window_s,
            "window_pairs": account.window_pairs,
            "pairs_total": account.pairs_total,
        }


# --------------------------------------------------------------------------------------------------- metering

EVENTS = ("submitted", "admitted", "refused", "started", "delivered", "paused", "resumed", "ended", "preempted")
"""What a ledger row records."""
LEDGER_COLUMNS = ("t_s", "tenant", "request", "event", "pairs", "detail")
_EVENTS = frozenset(EVENTS)
_STOPS = frozenset({"paused", "ended", "preempted"})


class UsageLedger:
    """Append-only metering: one row ``(t_s, tenant, request, event, pairs, detail)`` per event.

    Deliveries are aggregated: consecutive ``delivered`` events of one request in one metering window
    ``[k * delivery_window_s, (k + 1) * delivery_window_s)`` share a row whose ``t_s`` is its first pair, ``pairs``
    the count and ``detail`` ``"last_s=<time of its last pair>"``; any other event of that request closes the row.
    ``delivery_window_s=None`` keeps one row per call. :meth:`totals` counts per tenant; ``service_s`` sums the
    time each request spent being served (from started/resumed to paused/ended/preempted).

    >>> ledger = UsageLedger(delivery_window_s=1.0)
    >>> ledger.record(0.0, "lab", "r1", "started")
    >>> for t_s in (0.25, 0.5, 1.5):
    ...     ledger.record(t_s, "lab", "r1", "delivered")
    >>> ledger.record(2.0, "lab", "r1", "ended")
    >>> print(ledger.csv_text().replace("\\r", ""), end="")
    t_s,tenant,request,event,pairs,detail
    0.0,lab,r1,started,0,
    0.25,lab,r1,delivered,2,last_s=0.5
    1.5,lab,r1,delivered,1,last_s=1.5
    2.0,lab,r1,ended,0,
    >>> ledger.totals()["lab"]["pairs_delivered"], ledger.totals()["lab"]["service_s"]
    (3, 2.0)
    """

    def __init__(self, delivery_window_s: float | None = 1.0):
        self.delivery_window_s = _real("delivery_window_s", delivery_window_s, "a window in seconds > 0 or None",
                                       positive=True, optional=True)
        self._rows: list[list[Any]] = []  # t_s, tenant, request, event, pairs, detail, last_s
        self._open: dict[tuple[str, str], tuple[int, list[Any]]] = {}  # the delivery row being filled, by request
        self._serving: dict[tuple[str, str], float] = {}  # since when each request is being served
        self._totals: dict[str, dict[str, Any]] = {}

    def _tenant_totals(self, tenant: str) -> dict[str, Any]:
        totals = self._totals.get(tenant)
        if totals is None:
            totals = self._totals[tenant] = dict.fromkeys((e for e in EVENTS if e != "delivered"), 0)
            totals["pairs_delivered"] = 0
            totals["service_s"] = 0.0
        return totals

    def record(self, t_s: float, tenant: str, request: str, event: str, pairs: int | None = None,
               detail: str = "") -> None:
        """Append one event; ``pairs`` defaults to 1 for ``delivered`` and 0 otherwise."""
        if event not in _EVENTS:
            raise ParameterError("event", event, f"one of {EVENTS}")
        if pairs is None:
            pairs = 1 if event == "delivered" else 0
        elif isinstance(pairs, bool) or not isinstance(pairs, int) or pairs < 0:
            raise ParameterError("pairs", pairs, "a whole number >= 0")
        t_s = float(t_s)
        if not math.isfinite(t_s):
            raise ParameterError("t_s", t_s, "a finite time in seconds")
        key = (tenant, request)
        totals = self._totals.get(tenant) or self._tenant_totals(tenant)
        if event == "delivered":
            totals["pairs_delivered"] += pairs
            window_s = self.delivery_window_s
            if window_s is None:
                self._rows.append([t_s, tenant, request, event, pairs, detail, None])
                return
            k = _window_index(t_s, window_s)
            open_row = self._open.get(key)
            if open_row is not None and open_row[0] == k:
                row = open_row[1]
                row[4] += pairs
                row[6] = t_s
            else:
                row = [t_s, tenant, request, event, pairs, None, t_s]
                self._rows.append(row)
                self._open[key] = (k, row)
            return
        self._open.pop(key, None)
        totals[event] += 1
        if event == "started" or event == "resumed":
            self._serving.setdefault(key, t_s)
        elif event in _STOPS:
            since = self._serving.pop(key, None)
            if since is not None:
                totals["service_s"] += t_s - since
        self._rows.append([t_s, tenant, request, event, pairs, detail, None])

    def __len__(self) -> int:
        return len(self._rows)

    def rows(self) -> list[dict[str, Any]]:
        """Every row as a dict with the keys of :data:`LEDGER_COLUMNS`, in the order recorded."""
        return [dict(zip(LEDGER_COLUMNS, self._row(row), strict=True)) for row in self._rows]

    @staticmethod
    def _row(row: list[Any]) -> tuple[Any, ...]:
        detail = row[5] if row[5] is not None else f"last_s={row[6]!r}"
        return row[0], row[1], row[2], row[3], row[4], detail

    def totals(self, until_s: float | None = None) -> dict[str, dict[str, Any]]:
        """Per tenant: how many requests were submitted, admitted, refused, started, paused, resumed, ended and
        preempted, ``pairs_delivered`` and ``service_s`` (requests still being served count up to ``until_s``
        when it is given)."""
        out = {tenant: dict(totals) for tenant, totals in self._totals.items()}
        if until_s is not None:
            for (tenant, _), since in self._serving.items():
                out[tenant]["service_s"] += max(0.0, until_s - since)
        return out

    def csv_text(self) -> str:
        """The ledger as CSV (RFC 4180: a header row, CRLF line ends, fields quoted when needed; floats in full)."""
        buffer = io.StringIO(newline="")
        self._write(buffer)
        return buffer.getvalue()

    def to_csv(self, path: str | Path) -> Path:
        """Write :meth:`csv_text` to ``path``; returns the path."""
        path = Path(path)
        with path.open("w", newline="", encoding="utf-8") as stream:
            self._write(stream)
        return path

    def _write(self, stream: Any) -> None:
        writer = csv.writer(stream, lineterminator="\r\n")
        writer.writerow(LEDGER_COLUMNS)
        for row in self._rows:
            t_s, tenant, request, event, pairs, detail = self._row(row)
            writer.writerow((repr(t_s), tenant, request, event, pairs, detail))


# --------------------------------------------------------------------------------------------------- sharing


def preemption_victims(active: list[tuple[str, int, float]], needed: int, priority: int) -> list[str]:
    """Which active requests ``(name, priority, started_s)``, each holding one unit, to preempt to free ``needed``
    units for a request of ``priority``: the fewest, lowest priority first, then most recently started (then by
    name), all strictly below ``priority``; ``[]`` if they cannot free enough.

    >>> active = [("a", 0, 1.0), ("b", 0, 5.0), ("c", 1, 9.0), ("d", 2, 0.0)]
    >>> preemption_victims(active, 2, priority=2), preemption_victims(active, 4, priority=2)
    (['b', 'a'], [])
    """
    needed = _count("needed", needed, optional=False)
    if needed == 0:
        return []
    candidates = sorted((p, -started_s, name) for name, p, started_s in active if p < priority)
    if len(candidates) < needed:
        return []
    return [name for _, _, name in candidates[:needed]]
