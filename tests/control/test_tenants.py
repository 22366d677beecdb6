"""Tenants: tokens refuse every bad input with its reason, quotas hold exactly, the ledger round-trips as CSV,
shares follow weights, preemption picks the fewest lowest-priority, newest requests."""

import base64
import csv
import hashlib
import hmac
import io
import json
import math
import random
import time
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qfabric.control.tenants import (
    EVENTS,
    LEDGER_COLUMNS,
    Quota,
    QuotaBook,
    QuotaExceeded,
    Tenant,
    TokenError,
    TokenReason,
    UsageLedger,
    issue_token,
    preemption_victims,
    verify_token,
)
from qfabric.errors import ParameterError, QfabricError

BANK = Tenant("bank", weight=2.0, priority=1, secret=b"bank-secret")
LAB = Tenant("lab", secret=b"lab-secret")
GUEST = Tenant("guest")  # no secret: needs no token, accepts none
TENANTS = {t.name: t for t in (BANK, LAB, GUEST)}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(claims_json: bytes, secret: bytes) -> str:
    """A token with arbitrary claims bytes, correctly signed (what a holder of the key could send)."""
    payload = b64(claims_json)
    return payload + "." + b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())


def refused(token, *, request="r1", now_s=10.0, tenants=TENANTS) -> TokenError:
    with pytest.raises(TokenError) as info:
        verify_token(token, tenants, request=request, now_s=now_s)
    assert isinstance(info.value, QfabricError)
    assert str(info.value).startswith(str(info.value.reason))
    return info.value


# ------------------------------------------------------------------------------------------------ tokens


@pytest.mark.parametrize("request_name", ["r1", "", "späť-請求", "a.b,c\"d\n", "\ud800"])
def test_token_round_trip(request_name):
    token = issue_token(BANK, request=request_name, not_after_s=100.0, now_s=5.0)
    assert token.isascii() and token.count(".") == 1 and "=" not in token
    assert verify_token(token, TENANTS, request=request_name, now_s=5.0) == "bank"
    assert verify_token(token, TENANTS, request=request_name, now_s=100.0) == "bank"
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert claims == {"tenant": "bank", "request": request_name, "iat": 5.0, "exp": 100.0}
    # deterministic: the same claims give the same token
    assert issue_token(BANK, request=request_name, not_after_s=100.0, now_s=5.0) == token


def test_issue_token_checks_its_inputs():
    with pytest.raises(ParameterError, match="secret"):
        issue_token(GUEST, request="r1", not_after_s=1.0)
    with pytest.raises(ParameterError, match="not_after_s"):
        issue_token(BANK, request="r1", not_after_s=1.0, now_s=2.0)
    with pytest.raises(ParameterError, match="not_after_s"):
        issue_token(BANK, request="r1", not_after_s=math.inf)
    with pytest.raises(ParameterError, match="now_s"):
        issue_token(BANK, request="r1", not_after_s=1.0, now_s=math.nan)


@pytest.mark.parametrize("token", [
    "", ".", "abc", "a.b.c", "abc.", ".abc", "ab c.def", "a+b.c/d", "YQ==.YQ", 12, None, b"abc.def",
    "e30.sig",  # {} : missing claims
    b64(b"[1,2]") + ".x",
    b64(b"\xff\xfe") + ".x",  # not UTF-8
    b64(b"{") + ".x",  # not JSON
    "a.x",  # not base64 (one character)
    b64(b'{"tenant":"bank","request":"r1","iat":0,"exp":NaN}') + ".x",
    b64(b'{"tenant":"bank","request":"r1","iat":0,"exp":1e999}') + ".x",
    b64(b'{"tenant":"bank","request":"r1","iat":0,"exp":1' + b"0" * 400 + b"}") + ".x",
    b64(b'{"tenant":"bank","request":"r1","iat":0,"exp":1' + b"0" * 5000 + b"}") + ".x",
    b64(b'{"tenant":"bank","request":"r1","iat":0,"exp":true}') + ".x",
    b64(b'{"tenant":["bank"],"request":"r1","iat":0,"exp":1}') + ".x",
    b64(b'{"tenant":"bank","request":1,"iat":0,"exp":1}') + ".x",
    b64(b'{"tenant":"bank","request":"r1","iat":0,"exp":1,"admin":true}') + ".x",
    b64(b"[" * 100_000) + ".x",  # nesting deep enough to blow the JSON parser's recursion
])
def test_malformed_tokens(token):
    error = refused(token)
    assert error.reason == TokenReason.MALFORMED == "malformed token"
    assert error.tenant is None


def test_unknown_tenant():
    ghost = Tenant("ghost", secret=b"x")
    error = refused(issue_token(ghost, request="r1", not_after_s=100.0))
    assert error.reason == "unknown tenant" and error.tenant == "ghost" and "'ghost'" in str(error)


def test_bad_signature_wrong_key_and_tenant_without_secret():
    forged = Tenant("bank", secret=b"guessed")
    error = refused(issue_token(forged, request="r1", not_after_s=100.0))
    assert error.reason == TokenReason.BAD_SIGNATURE and error.tenant == "bank"
    # a guest has no key: a token naming it cannot be checked, so it is refused (HMAC with an empty key is forgeable)
    error = refused(signed(b'{"exp":100.0,"iat":0.0,"request":"r1","tenant":"guest"}', b""))
    assert error.reason == TokenReason.BAD_SIGNATURE and "no secret" in str(error)


def test_tampered_payload_and_signature():
    token = issue_token(LAB, request="r1", not_after_s=100.0)
    payload, signature = token.split(".")
    # a re-encoded payload for another request, a later expiry, another tenant: signature no longer matches
    for claims in ({"tenant": "lab", "request": "r2", "iat": 0.0, "exp": 100.0},
                   {"tenant": "lab", "request": "r1", "iat": 0.0, "exp": 1e9},
                   {"tenant": "bank", "request": "r1", "iat": 0.0, "exp": 100.0}):
        forged = b64(json.dumps(claims, sort_keys=True, separators=(",", ":")).encode()) + "." + signature
        assert refused(forged, request=claims["request"]).reason == TokenReason.BAD_SIGNATURE
    # any single-character change anywhere is refused (malformed or bad signature), never accepted
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    rng = random.Random(1)
    for i in range(len(token)):
        if token[i] == ".":
            continue
        changed = token[:i] + rng.choice(alphabet.replace(token[i], "")) + token[i + 1:]
        assert refused(changed).reason in (TokenReason.MALFORMED, TokenReason.UNKNOWN_TENANT,
                                           TokenReason.BAD_SIGNATURE)
    # the signature's last character carries 2 unused bits: a non-canonical encoding of the same MAC is refused
    last = alphabet.index(signature[-1])
    twin = alphabet[last ^ 1]
    assert base64.urlsafe_b64decode(signature[:-1] + twin + "=") == base64.urlsafe_b64decode(signature + "=")
    assert refused(payload + "." + signature[:-1] + twin).reason == TokenReason.BAD_SIGNATURE
    assert refused(payload + "." + signature[:-1]).reason in (TokenReason.MALFORMED, TokenReason.BAD_SIGNATURE)
    assert refused(token + "A").reason in (TokenReason.MALFORMED, TokenReason.BAD_SIGNATURE)


def test_expiry_and_issue_time_boundaries():
    token = issue_token(LAB, request="r1", not_after_s=50.0, now_s=20.0)
    assert verify_token(token, TENANTS, request="r1", now_s=50.0) == "lab"
    assert verify_token(token, TENANTS, request="r1", now_s=20.0) == "lab"
    error = refused(token, now_s=math.nextafter(50.0, math.inf))
    assert error.reason == TokenReason.EXPIRED == "expired" and "50.0" in str(error)
    error = refused(token, now_s=math.nextafter(20.0, -math.inf))
    assert error.reason == TokenReason.NOT_YET_VALID == "issued in the future" and "20.0" in str(error)


def test_token_for_another_request():
    token = issue_token(LAB, request="r1", not_after_s=50.0)
    error = refused(token, request="r2")
    assert error.reason == TokenReason.WRONG_REQUEST and "'r1'" in str(error) and "'r2'" in str(error)


def test_all_reasons_have_distinct_messages():
    assert len({r.value for r in TokenReason}) == len(TokenReason) == 6


def check_only_token_errors(token, request="r1", now_s=10.0):
    try:
        name = verify_token(token, TENANTS, request=request, now_s=now_s)
    except TokenError as error:
        assert isinstance(error.reason, TokenReason)
    else:
        assert name in TENANTS


TOKENISH = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ", max_size=120)
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)
CLAIMS = st.fixed_dictionaries({"tenant": st.sampled_from(["bank", "lab", "guest", "ghost"]) | JSON,
                                "request": st.just("r1") | JSON, "iat": st.floats() | JSON,
                                "exp": st.floats() | st.integers() | JSON}) | JSON


@settings(max_examples=300, deadline=None)
@given(st.text() | TOKENISH)
def test_fuzz_any_string_only_raises_token_error(token):
    check_only_token_errors(token)


@settings(max_examples=150, deadline=None)
@given(CLAIMS, st.sampled_from([b"bank-secret", b"lab-secret", b"", b"other"]), st.floats(allow_nan=False,
                                                                                             allow_infinity=False))
def test_fuzz_signed_arbitrary_claims_only_raise_token_error(claims, secret, now_s):
    text = json.dumps(claims, allow_nan=True).encode()
    check_only_token_errors(signed(text, secret), now_s=now_s)
    check_only_token_errors(b64(text) + ".sig", now_s=now_s)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_fuzz_mutated_valid_tokens(data):
    token = issue_token(BANK, request="r1", not_after_s=100.0)
    i = data.draw(st.integers(0, len(token)))
    j = data.draw(st.integers(i, min(len(token), i + 5)))
    mutated = token[:i] + data.draw(TOKENISH) + token[j:]
    check_only_token_errors(mutated)


# ------------------------------------------------------------------------------------------------ tenants, quotas


@pytest.mark.parametrize(("field", "value"), [
    ("max_concurrent_requests", -1), ("max_concurrent_requests", 1.5), ("max_concurrent_requests", True),
    ("max_rate_hz", -0.1), ("max_rate_hz", math.nan), ("max_rate_hz", math.inf), ("max_rate_hz", "1"),
    ("max_pairs_per_window", -3), ("window_s", 0), ("window_s", -1.0), ("window_s", math.inf), ("window_s", None),
    ("max_memory_qubits", -1), ("max_memory_qubits", 2.0),
])
def test_quota_validates_each_field(field, value):
    with pytest.raises(ParameterError) as info:
        Quota(**{field: value})
    assert info.value.name == field and field in str(info.value)


def test_quota_and_tenant_accept_valid_values():
    quota = Quota(max_concurrent_requests=0, max_rate_hz=0, max_pairs_per_window=0, window_s=0.5,
                  max_memory_qubits=0)
    assert quota.max_rate_hz == 0.0 and isinstance(quota.max_rate_hz, float)
    assert Tenant("t", weight=3, priority=-2, quota=quota, secret=bytearray(b"k")).secret == b"k"


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"name": ""}, "name"), ({"name": "t", "weight": 0}, "weight"), ({"name": "t", "weight": -1}, "weight"),
    ({"name": "t", "weight": math.nan}, "weight"), ({"name": "t", "priority": 1.5}, "priority"),
    ({"name": "t", "quota": {}}, "quota"), ({"name": "t", "secret": "text"}, "secret"),
])
def test_tenant_validates(kwargs, field):
    with pytest.raises(ParameterError) as info:
        Tenant(**kwargs)
    assert info.value.name == field
    assert "text" not in str(info.value)  # a secret is never echoed


def quota_error(call) -> QuotaExceeded:
    with pytest.raises(QuotaExceeded) as info:
        call()
    return info.value


def test_each_refusal_names_its_quota_and_numbers():
    bank = Tenant("bank", quota=Quota(max_concurrent_requests=2, max_rate_hz=10.0, max_memory_qubits=6,
                                      max_pairs_per_window=1, window_s=60.0))
    book = QuotaBook({"bank": bank})
    book.admit("bank", "a", rate_hz=7.5, memory_qubits=4, now_s=0.0)
    error = quota_error(lambda: book.admit("bank", "b", rate_hz=5.0, memory_qubits=1, now_s=0.0))
    assert (error.tenant, error.quota, error.limit, error.wanted) == ("bank", "max_rate_hz", 10.0, 12.5)
    assert str(error) == "tenant 'bank': max_rate_hz 10.0 exceeded (7.5 admitted + 5.0 asked = 12.5)"
    error = quota_error(lambda: book.admit("bank", "b", rate_hz=2.5, memory_qubits=3, now_s=0.0))
    assert (error.quota, error.limit, error.wanted) == ("max_memory_qubits", 6, 7)
    assert str(error) == "tenant 'bank': max_memory_qubits 6 exceeded (4 reserved + 3 asked = 7)"
    book.admit("bank", "b", rate_hz=2.5, memory_qubits=2, now_s=0.0)
    error = quota_error(lambda: book.admit("bank", "c", rate_hz=None, memory_qubits=0, now_s=0.0))
    assert (error.quota, error.limit, error.wanted) == ("max_concurrent_requests", 2, 3)
    assert str(error) == "tenant 'bank': max_concurrent_requests 2 reached (2 active)"
    book.record_delivery("bank", "a", 61.0)
    assert not book.may_deliver("bank", 119.0)
    error = quota_error(lambda: book.record_delivery("bank", "b", 119.5))
    assert (error.quota, error.limit, error.wanted) == ("max_pairs_per_window", 1, 2)
    assert str(error) == "tenant 'bank': max_pairs_per_window 1 reached in window [60.0, 120.0) s (1 delivered)"
    assert book.usage("bank") == {"active_requests": 2, "admitted_rate_hz": 10.0, "reserved_memory_qubits": 6,
                                  "window_start_s": 60.0, "window_pairs": 1, "pairs_total": 1}


def test_rates_sum_with_a_float_tolerance_counts_exactly():
    book = QuotaBook({"t": Tenant("t", quota=Quota(max_rate_hz=0.3))})
    for name in "abc":
        book.admit("t", name, rate_hz=0.1, memory_qubits=0, now_s=0.0)  # 0.1 + 0.1 + 0.1 > 0.3 in floats
    assert quota_error(lambda: book.admit("t", "d", rate_hz=1e-6, memory_qubits=0, now_s=0.0)).quota == "max_rate_hz"
    book.admit("t", "e", rate_hz=None, memory_qubits=0, now_s=0.0)  # no target rate: counts 0


def test_zero_quotas_refuse_everything():
    zero = Tenant("z", quota=Quota(max_concurrent_requests=0, max_pairs_per_window=0))
    book = QuotaBook({"z": zero})
    assert quota_error(lambda: book.admit("z", "a", rate_hz=1.0, memory_qubits=0, now_s=0.0)).limit == 0
    assert not book.may_deliver("z", 0.0) and not book.may_deliver("z", 1e6)


def test_book_rejects_misuse():
    book = QuotaBook({"lab": LAB, "bank": BANK})
    with pytest.raises(ParameterError, match=r"\['bank', 'lab'\]"):
        book.admit("nobody", "r", rate_hz=None, memory_qubits=0, now_s=0.0)
    for call in (lambda: book.release("nobody", "r", 0.0), lambda: book.may_deliver("nobody", 0.0),
                 lambda: book.usage("nobody"), lambda: book.next_window_s("nobody", 0.0)):
        with pytest.raises(ParameterError):
            call()
    book.admit("lab", "r", rate_hz=None, memory_qubits=1, now_s=0.0)
    with pytest.raises(ParameterError, match="already active"):
        book.admit("lab", "r", rate_hz=None, memory_qubits=1, now_s=0.0)
    with pytest.raises(ParameterError, match="memory_qubits"):
        book.admit("lab", "s", rate_hz=None, memory_qubits=-1, now_s=0.0)
    with pytest.raises(ParameterError, match="rate_hz"):
        book.admit("lab", "s", rate_hz=-1.0, memory_qubits=1, now_s=0.0)
    with pytest.raises(ParameterError, match="active request"):
        book.record_delivery("lab", "other", 0.0)
    book.record_delivery("lab", "r", 130.0)
    with pytest.raises(ParameterError, match="now_s"):
        book.may_deliver("lab", 10.0)  # back into an earlier window
    with pytest.raises(ParameterError, match="now_s"):
        book.may_deliver("lab", math.nan)
    book.release("lab", "r", 131.0)
    book.release("lab", "r", 131.0)  # idempotent
    book.release("lab", "never-admitted", 131.0)
    assert book.usage("lab")["reserved_memory_qubits"] == 0 and book.usage("lab")["pairs_total"] == 1


@pytest.mark.parametrize("window_s", [60.0, 0.1, 0.3, 1 / 3, 7.0, 1e-3])
def test_windows_roll_over_at_multiples_of_window_s(window_s):
    book = QuotaBook({"t": Tenant("t", quota=Quota(max_pairs_per_window=3, window_s=window_s))})
    book.admit("t", "r", rate_hz=None, memory_qubits=0, now_s=0.0)
    now = 0.0
    for k in range(25):
        start = k * window_s
        assert book.next_window_s("t", start) == (k + 1) * window_s
        if k:
            assert book.next_window_s("t", math.nextafter(start, -math.inf)) == start
        now = max(now, start)
        assert book.may_deliver("t", now)
        for _ in range(3):
            book.record_delivery("t", "r", now)
        assert not book.may_deliver("t", now)
        last = math.nextafter((k + 1) * window_s, -math.inf)
        assert not book.may_deliver("t", last)  # still this window
        assert book.usage("t", last)["window_pairs"] == 3
        now = book.next_window_s("t", now)
        assert now == (k + 1) * window_s
        assert book.may_deliver("t", now)  # the service resumes exactly there
        assert book.usage("t", now)["window_pairs"] == 0
    assert book.usage("t")["pairs_total"] == 75


class Model:
    """An independent model of the quotas, with exact rational windows (times and windows are dyadic here)."""

    def __init__(self, quotas):
        self.quotas = quotas
        self.active = {name: {} for name in quotas}
        self.pairs = {name: {} for name in quotas}  # tenant -> window index -> pairs
        self.total = dict.fromkeys(quotas, 0)

    def window(self, tenant, now_s):
        return math.floor(Fraction(now_s) / Fraction(self.quotas[tenant].window_s))

    def admit(self, tenant, request, rate, qubits):
        q, active = self.quotas[tenant], self.active[tenant]
        if q.max_concurrent_requests is not None and len(active) >= q.max_concurrent_requests:
            return ("max_concurrent_requests", q.max_concurrent_requests, len(active) + 1)
        wanted_rate = sum(r for r, _ in active.values()) + (rate or 0.0)
        if q.max_rate_hz is not None and rate and wanted_rate > q.max_rate_hz:
            return ("max_rate_hz", q.max_rate_hz, wanted_rate)
        wanted_qubits = sum(n for _, n in active.values()) + qubits
        if q.max_memory_qubits is not None and wanted_qubits > q.max_memory_qubits:
            return ("max_memory_qubits", q.max_memory_qubits, wanted_qubits)
        active[request] = (rate or 0.0, qubits)
        return None

    def may_deliver(self, tenant, now_s):
        limit = self.quotas[tenant].max_pairs_per_window
        return limit is None or self.pairs[tenant].get(self.window(tenant, now_s), 0) < limit

    def deliver(self, tenant, now_s):
        k = self.window(tenant, now_s)
        self.pairs[tenant][k] = self.pairs[tenant].get(k, 0) + 1
        self.total[tenant] += 1


def random_quota(rng):
    def maybe(value):
        return None if rng.random() < 0.25 else value

    return Quota(max_concurrent_requests=maybe(rng.randint(0, 4)), max_rate_hz=maybe(rng.randint(0, 16) * 0.5),
                 max_pairs_per_window=maybe(rng.randint(0, 6)), window_s=rng.choice([0.5, 1.0, 2.0, 8.0]),
                 max_memory_qubits=maybe(rng.randint(0, 10)))


@pytest.mark.parametrize("seed", range(8))
def test_quotas_hold_exactly_against_an_independent_model(seed):
    rng = random.Random(seed)
    quotas = {f"t{i}": random_quota(rng) for i in range(3)}
    book = QuotaBook({name: Tenant(name, quota=q) for name, q in quotas.items()})
    model = Model(quotas)
    now, counter, refusals = 0.0, 0, 0
    for _ in range(1500):
        now += rng.choice([0.0, 0.0, 0.25, 0.5, 1.0])
        tenant = rng.choice(list(quotas))
        action = rng.random()
        if action < 0.3:
            counter += 1
            request = f"r{counter}"
            rate = rng.choice([None, 0.5, 1.0, 2.5, 4.0])
            qubits = rng.randint(0, 4)
            expected = model.admit(tenant, request, rate, qubits)
            try:
                book.admit(tenant, request, rate_hz=rate, memory_qubits=qubits, now_s=now)
            except QuotaExceeded as error:
                refusals += 1
                assert expected == (error.quota, error.limit, error.wanted)
                assert str(error).startswith(f"tenant {tenant!r}: {error.quota} {error.limit!r}")
                assert repr(error.wanted) in str(error) or f"({len(model.active[tenant])} active)" in str(error)
            else:
                assert expected is None
        elif action < 0.45:
            if model.active[tenant]:
                request = rng.choice(sorted(model.active[tenant]))
                del model.active[tenant][request]
            else:
                request = "gone"
            book.release(tenant, request, now)
        else:
            allowed = book.may_deliver(tenant, now)
            assert allowed == model.may_deliver(tenant, now)
            if model.active[tenant]:
                request = rng.choice(sorted(model.active[tenant]))
                if allowed:
                    book.record_delivery(tenant, request, now)
                    model.deliver(tenant, now)
                else:
                    error = quota_error(lambda t=tenant, r=request, n=now: book.record_delivery(t, r, n))
                    assert error.quota == "max_pairs_per_window" and error.wanted == error.limit + 1
        for name, q in quotas.items():  # invariants: nothing ever exceeds its quota
            usage = book.usage(name)
            active = model.active[name]
            assert usage["active_requests"] == len(active)
            assert usage["reserved_memory_qubits"] == sum(n for _, n in active.values())
            assert usage["admitted_rate_hz"] == sum(r for r, _ in active.values())
            assert usage["pairs_total"] == model.total[name]
            if q.max_concurrent_requests is not None:
                assert usage["active_requests"] <= q.max_concurrent_requests
            if q.max_memory_qubits is not None:
                assert usage["reserved_memory_qubits"] <= q.max_memory_qubits
            if q.max_rate_hz is not None:
                assert usage["admitted_rate_hz"] <= q.max_rate_hz
            if q.max_pairs_per_window is not None:
                assert usage["window_pairs"] <= q.max_pairs_per_window
                assert all(n <= q.max_pairs_per_window for n in model.pairs[name].values())
    assert refusals > 0


# ------------------------------------------------------------------------------------------------ ledger


def test_ledger_csv_round_trips_through_dictreader(tmp_path):
    ledger = UsageLedger(delivery_window_s=None)
    awkward = ['plain', 'with,comma', 'with "quotes"', 'multi\nline\r\nend', 'ünïcødé', ' leading space', '']
    times = [0.0, 0.1 + 0.2, 1e-17, 123456789.123456789, 2.0 / 3.0, 5.0]
    rng = random.Random(3)
    for i, t_s in enumerate(times):
        for event in EVENTS:
            pairs = rng.randint(0, 5) if event == "delivered" else 0
            ledger.record(t_s, f"tenant{i % 2},x", awkward[i % len(awkward)], event, pairs,
                          detail=awkward[(i + 3) % len(awkward)] if event != "delivered" else "d")
    expected = ledger.rows()
    assert len(expected) == len(times) * len(EVENTS)
    text = ledger.csv_text()
    assert text.startswith(",".join(LEDGER_COLUMNS) + "\r\n")
    path = ledger.to_csv(tmp_path / "usage.csv")
    assert path.read_bytes() == text.encode("utf-8")
    with path.open(newline="", encoding="utf-8") as stream:
        read = list(csv.DictReader(stream))
    assert [list(r) for r in read] == [list(LEDGER_COLUMNS)] * len(read)
    back = [{**r, "t_s": float(r["t_s"]), "pairs": int(r["pairs"])} for r in read]
    assert back == expected
    assert list(csv.DictReader(io.StringIO(text, newline=""))) == read


def test_ledger_aggregates_deliveries_per_request_and_window():
    ledger = UsageLedger(delivery_window_s=10.0)
    ledger.record(0.0, "lab", "a", "started")
    ledger.record(0.0, "lab", "b", "started")
    for i in range(30):
        ledger.record(1.0 + i * 0.5, "lab", "a" if i % 3 else "b", "delivered")  # t = 1.0 .. 15.5
    ledger.record(16.0, "lab", "a", "paused", detail="window quota")
    ledger.record(16.5, "lab", "a", "delivered", pairs=4)  # a pause closes the row: a new one starts
    ledger.record(20.0, "lab", "a", "resumed")
    ledger.record(30.0, "lab", "a", "ended")
    ledger.record(30.0, "lab", "b", "preempted", detail="by bank/r9")
    rows = [(r["t_s"], r["request"], r["event"], r["pairs"], r["detail"]) for r in ledger.rows()]
    assert rows == [
        (0.0, "a", "started", 0, ""),
        (0.0, "b", "started", 0, ""),
        (1.0, "b", "delivered", 6, "last_s=8.5"),  # window [0, 10): i = 0, 3, ..., 15
        (1.5, "a", "delivered", 12, "last_s=9.5"),
        (10.0, "b", "delivered", 4, "last_s=14.5"),  # window [10, 20)
        (10.5, "a", "delivered", 8, "last_s=15.5"),
        (16.0, "a", "paused", 0, "window quota"),
        (16.5, "a", "delivered", 4, "last_s=16.5"),
        (20.0, "a", "resumed", 0, ""),
        (30.0, "a", "ended", 0, ""),
        (30.0, "b", "preempted", 0, "by bank/r9"),
    ]
    totals = ledger.totals()["lab"]
    assert totals["pairs_delivered"] == 34 == sum(r[3] for r in rows)
    assert totals["service_s"] == 16.0 + 10.0 + 30.0  # a: 0-16 and 20-30; b: 0-30
    assert (totals["started"], totals["paused"], totals["resumed"], totals["ended"], totals["preempted"]) == \
        (2, 1, 1, 1, 1)


def test_ledger_totals_per_tenant():
    ledger = UsageLedger()
    for tenant, request, event in [("bank", "r1", "submitted"), ("bank", "r1", "admitted"),
                                   ("bank", "r2", "submitted"), ("bank", "r2", "refused"),
                                   ("lab", "r3", "submitted"), ("lab", "r3", "refused"),
                                   ("bank", "r1", "started")]:
        ledger.record(1.0, tenant, request, event)
    ledger.record(2.0, "bank", "r1", "delivered", pairs=5)
    totals = ledger.totals()
    assert totals["bank"]["submitted"] == 2 and totals["bank"]["admitted"] == 1 and totals["bank"]["refused"] == 1
    assert totals["lab"]["refused"] == 1 and totals["lab"]["pairs_delivered"] == 0
    assert totals["bank"]["pairs_delivered"] == 5 and totals["bank"]["service_s"] == 0.0
    assert ledger.totals(until_s=4.0)["bank"]["service_s"] == 3.0  # r1 still being served
    totals["bank"]["refused"] = 99  # a copy
    assert ledger.totals()["bank"]["refused"] == 1


def test_ledger_rejects_bad_records():
    ledger = UsageLedger()
    with pytest.raises(ParameterError, match="event"):
        ledger.record(0.0, "t", "r", "exploded")
    with pytest.raises(ParameterError, match="pairs"):
        ledger.record(0.0, "t", "r", "delivered", pairs=-1)
    with pytest.raises(ParameterError, match="t_s"):
        ledger.record(math.inf, "t", "r", "delivered")
    with pytest.raises(ParameterError, match="delivery_window_s"):
        UsageLedger(delivery_window_s=0)
    assert len(ledger) == 0


def test_ledger_meters_many_deliveries_cheaply():
    ledger = UsageLedger(delivery_window_s=1.0)
    start = time.perf_counter()
    for i in range(100_000):
        ledger.record(i * 1e-3, "bank", "r1" if i % 2 else "r2", "delivered")
    elapsed = time.perf_counter() - start
    assert len(ledger) == 200 and ledger.totals()["bank"]["pairs_delivered"] == 100_000
    assert sum(r["pairs"] for r in ledger.rows()) == 100_000
    assert elapsed < 1.5


# ------------------------------------------------------------------------------------------------ sharing, preemption

ACTIVE = [("a", 0, 1.0), ("b", 0, 5.0), ("c", 1, 9.0), ("d", 2, 0.0), ("e", 1, 9.0), ("f", 0, 5.0)]


@pytest.mark.parametrize(("needed", "priority", "expected"), [
    (1, 1, ["b"]),  # lowest priority, then most recent start, then name
    (2, 1, ["b", "f"]),
    (3, 1, ["b", "f", "a"]),
    (4, 1, []),  # only three below priority 1
    (4, 2, ["b", "f", "a", "c"]),
    (5, 2, ["b", "f", "a", "c", "e"]),
    (6, 2, []),
    (6, 3, ["b", "f", "a", "c", "e", "d"]),
    (1, 0, []),  # nobody strictly below priority 0
    (0, 5, []),
    (1, -1, []),
])
def test_preemption_victims(needed, priority, expected):
    assert preemption_victims(ACTIVE, needed, priority) == expected


def test_preemption_victims_edge_cases():
    assert preemption_victims([], 1, 10) == []
    with pytest.raises(ParameterError, match="needed"):
        preemption_victims(ACTIVE, -1, 1)
    rng = random.Random(5)
    for _ in range(200):
        active = [(f"r{i}", rng.randint(0, 3), float(rng.randint(0, 5))) for i in range(rng.randint(0, 8))]
        needed, priority = rng.randint(1, 8), rng.randint(0, 4)
        victims = preemption_victims(active, needed, priority)
        lower = [a for a in active if a[1] < priority]
        if len(lower) < needed:
            assert victims == []
            continue
        assert len(victims) == needed == len(set(victims))
        chosen = [a for a in active if a[0] in victims]
        spared = [a for a in lower if a[0] not in victims]
        for v in chosen:  # no spared candidate is a better victim than a chosen one
            for s in spared:
                assert (v[1], -v[2]) <= (s[1], -s[2])
