"""SLO monitors: violation intervals match the injected outage (closed form for evenly spaced deliveries, a
stated tolerance for Poisson ones), causes name what broke, the error budget adds up, p99 agrees with numpy,
observe is O(1), and bad parameters name their field."""

import math
import time
from fractions import Fraction

import numpy as np
import pytest

from qfabric.control.slo import SLO, SloMonitor, Violation, evaluate
from qfabric.errors import ParameterError, QfabricError

# the outage scenario of the issue: 500 pairs/s, nothing delivered in [2.0, 3.5) s, a rate SLO of 300/s over 0.2 s
LAM, OUT_START, OUT_END, RUN_S = 500, Fraction(2), Fraction(7, 2), Fraction(5)
RATE_MIN, WINDOW, STEP = 300, Fraction(1, 5), Fraction(1, 100)
CHECKS = [k / 100 for k in range(int(RUN_S / STEP) + 1)]
RATE_SLO = SLO("outage", window_s=float(WINDOW), rate_hz_min=RATE_MIN, availability_min=0.9)


def even_deliveries(rate_hz, end_s, outage=None, fidelity=0.9):
    """Deliveries at (n + 1/2) / rate_hz: half a period off every check time and window edge, so no ties."""
    times = (np.arange(int(end_s * rate_hz)) + 0.5) / rate_hz
    if outage is not None:
        times = times[(times < outage[0]) | (times >= outage[1])]
    return [(t, fidelity) for t in times.tolist()]


def poisson_deliveries(seed, rate_hz, end_s, outage):
    rng = np.random.default_rng(seed)
    times = np.cumsum(rng.exponential(1 / rate_hz, int(rate_hz * end_s * 1.5)))
    times = times[(times < end_s) & ((times < outage[0]) | (times >= outage[1]))]
    return [(t, 0.9) for t in times.tolist()]


def closed_form_boundaries():
    """Exact check times at which the violation opens and closes, for evenly spaced deliveries.

    A window needs n = ceil(RATE_MIN * WINDOW) pairs. Once the outage starts, the window at check t holds the
    pairs of (t - WINDOW, OUT_START): (OUT_START + WINDOW - t) * LAM of them, fewer than n once
    t > OUT_START + WINDOW - n / LAM; the violation opens at the first check strictly after that. After the
    outage the window holds the pairs of [OUT_END, t]: (t - OUT_END) * LAM, at least n from
    t = OUT_END + n / LAM; the violation closes at the first check at or after that."""
    n = math.ceil(Fraction(RATE_MIN) * WINDOW)
    open_at = (math.floor((OUT_START + WINDOW - Fraction(n, LAM)) / STEP) + 1) * STEP
    close_at = math.ceil((OUT_END + Fraction(n, LAM)) / STEP) * STEP
    return float(open_at), float(close_at)


def test_closed_form_is_what_the_issue_expects():
    open_at, close_at = closed_form_boundaries()
    # the window needs W (1 - R / lambda) = 0.08 s to drop below the threshold, then at most one check step
    assert (open_at, close_at) == (2.09, 3.62)
    lag = float(WINDOW) * (1 - RATE_MIN / LAM)
    assert float(OUT_START) + lag < open_at <= float(OUT_START) + lag + float(STEP)


def test_even_deliveries_violation_matches_outage_exactly():
    deliveries = even_deliveries(LAM, float(RUN_S), (float(OUT_START), float(OUT_END)))
    monitor = SloMonitor(RATE_SLO, 0.0)
    causes_at, pending = {}, iter(deliveries)
    nxt = next(pending)
    for t in CHECKS:  # the live loop: deliveries up to t, then a check at t
        while nxt is not None and nxt[0] <= t:
            monitor.observe(*nxt)
            nxt = next(pending, None)
        causes_at[t] = monitor.check(t)
    monitor.finish(CHECKS[-1])
    open_at, close_at = closed_form_boundaries()
    assert len(monitor.violations) == 1
    v = monitor.violations[0]
    assert abs(v.start_s - open_at) < float(STEP) / 2 and abs(v.end_s - close_at) < float(STEP) / 2
    assert [t for t, c in causes_at.items() if c] == [t for t in CHECKS if open_at - 1e-9 < t < close_at - 1e-9]
    # no pair in the window from the check after last pair + W (1.999 + 0.2) to the last check before 3.501
    no_pair = [t for t, c in causes_at.items() if any(x.startswith("no pair for") for x in c)]
    assert no_pair == [t for t in CHECKS if 2.2 - 1e-9 < t < 3.5 + 1e-9]
    assert causes_at[2.5] == ["rate 0.0/s < 300/s over 0.2 s", "no pair for 0.501 s"]
    assert causes_at[2.09] == ["rate 275.0/s < 300/s over 0.2 s"]
    assert v.causes == {"rate 0.0/s < 300/s over 0.2 s", "no pair for 1.5 s"}  # each kind at its worst
    assert v.kinds == {"rate", "no_pair"} and not v.open
    ok = [t for t, is_ok, *_ in monitor.timeline if not is_ok]
    assert ok[0] == v.start_s and len(monitor.timeline) == len(CHECKS)
    assert monitor.violated_s(float(RUN_S)) == pytest.approx(close_at - open_at)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_poisson_deliveries_violation_matches_outage_within_tolerance(seed):
    """The window count crosses n = 60 pairs at a Gamma(60, 500)-distributed time: its standard deviation is
    sqrt(60) / 500 = 15.5 ms, so both boundaries sit within 50 ms (over 3 sigma) plus one check step of the
    closed form. The count is monotone through both crossings, so the violation cannot flap."""
    deliveries = poisson_deliveries(seed, LAM, float(RUN_S), (float(OUT_START), float(OUT_END)))
    monitor = evaluate(RATE_SLO, 0.0, deliveries, CHECKS)
    open_at, close_at = closed_form_boundaries()
    tolerance = 0.05 + float(STEP)
    assert len(monitor.violations) == 1
    v = monitor.violations[0]
    assert abs(v.start_s - open_at) <= tolerance and abs(v.end_s - close_at) <= tolerance
    assert float(OUT_START) < v.start_s and v.end_s > float(OUT_END)
    assert "no_pair" in v.kinds and "rate 0.0/s < 300/s over 0.2 s" in v.causes


def test_fidelity_drop():
    """1000 pairs/s at 0.95, at 0.80 during [1.0, 1.5): the mean of a 0.1 s window (100 pairs, m of them low)
    is 0.95 - 0.15 m / 100 < 0.85 once m >= 67, i.e. from the check at 1.07 to the one before 1.54."""
    times = (np.arange(2500) + 0.5) / 1000
    deliveries = [(t, 0.80 if 1.0 <= t < 1.5 else 0.95) for t in times.tolist()]
    slo = SLO("quality", window_s=0.1, fidelity_min=0.85)
    monitor = evaluate(slo, 0.0, deliveries, [k / 100 for k in range(251)])
    assert [(v.start_s, v.end_s) for v in monitor.violations] == [(1.07, 1.54)]
    assert monitor.violations[0].causes == {"fidelity 0.8 < 0.85"}
    fidelity_at = {t: f for t, _, _, f, _ in monitor.timeline}
    assert fidelity_at[1.3] == pytest.approx(0.80) and fidelity_at[2.0] == pytest.approx(0.95)
    assert fidelity_at[0.0] is None  # no pair yet: no fidelity, and not a violation


def test_first_pair_late_and_on_time():
    slo = SLO("first", window_s=1.0, first_pair_s_max=0.5)
    checks = [k / 100 for k in range(100, 401)]
    late = [(2.2 + k / 100, 0.9) for k in range(150)]  # service starts at 1.0, first pair 1.2 s later
    monitor = evaluate(slo, 1.0, late, checks)
    assert monitor.first_pair_s == 2.2
    assert [(v.start_s, v.end_s) for v in monitor.violations] == [(1.51, 2.2)]
    assert monitor.violations[0].causes == {"first pair after 1.2 s > 0.5 s"}
    waiting = SloMonitor(slo, 1.0)
    assert waiting.check(1.5) == [] and waiting.check(1.8) == ["no first pair after 0.8 s > 0.5 s"]
    on_time = [(1.4 + k / 100, 0.9) for k in range(150)]
    assert evaluate(slo, 1.0, on_time, checks).violations == []


def test_first_pair_is_judged_during_the_grace_time_and_the_rest_is_not():
    slo = SLO("graced", window_s=0.5, rate_hz_min=10, first_pair_s_max=0.1, grace_s=0.5)
    monitor = SloMonitor(slo, 0.0)
    assert monitor.check(0.2) == ["no first pair after 0.2 s > 0.1 s"]  # rate not judged before 0 + 0.5 + 0.5
    assert monitor.check(0.99) == ["no first pair after 0.99 s > 0.1 s"]
    assert monitor.check(1.0) == ["no first pair after 1 s > 0.1 s", "rate 0.0/s < 10/s over 0.5 s",
                                  "no pair for 1 s"]


def test_error_budget_arithmetic():
    deliveries = even_deliveries(LAM, float(RUN_S), (float(OUT_START), float(OUT_END)))
    monitor = evaluate(RATE_SLO, 0.0, deliveries, CHECKS)
    used = 3.62 - 2.09
    budget = monitor.error_budget(5.0)
    assert budget["service_s"] == 5.0
    assert budget["allowed_s"] == pytest.approx(0.5) and budget["used_s"] == pytest.approx(used)
    assert budget["left_s"] == pytest.approx(0.5 - used)
    assert budget["left_fraction"] == pytest.approx((0.5 - used) / 0.5)
    assert monitor.availability(5.0) == pytest.approx(1 - used / 5.0)
    # until the middle of the violation only its first part counts; before it nothing is used
    assert monitor.violated_s(3.0) == pytest.approx(3.0 - 2.09)
    assert monitor.error_budget(2.0) == pytest.approx(
        {"service_s": 2.0, "allowed_s": 0.2, "used_s": 0.0, "left_s": 0.2, "left_fraction": 1.0})
    assert monitor.availability(0.0) == 1.0
    # an open violation counts up to the time asked
    live = SloMonitor(SLO("live", window_s=1.0, rate_hz_min=1.0, availability_min=0.5), 10.0)
    assert live.check(11.0) == ["rate 0.0/s < 1/s over 1 s", "no pair for 1 s"]
    assert live.violations[0].open and live.violated_s(14.0) == 3.0 and live.availability(14.0) == 0.25
    assert live.error_budget(14.0) == {"service_s": 4.0, "allowed_s": 2.0, "used_s": 3.0, "left_s": -1.0,
                                       "left_fraction": -0.5}
    live.finish(12.5)
    assert live.violations[0].end_s == 12.5 and live.violated_s(14.0) == 1.5
    # no availability objective: no budget; availability 1: nothing allowed
    assert SloMonitor(SLO("r", 1.0, rate_hz_min=1.0), 0.0).error_budget(3.0) == {
        "service_s": 3.0, "allowed_s": None, "used_s": 0.0, "left_s": None, "left_fraction": None}
    strict = SloMonitor(SLO("s", 1.0, rate_hz_min=1.0, availability_min=1.0), 0.0)
    assert strict.error_budget(3.0)["left_fraction"] is None  # nothing allowed: no fraction of it (JSON has no inf)
    strict.check(1.0)
    budget = strict.error_budget(3.0)
    assert budget["left_fraction"] is None and budget["left_s"] < 0


def test_p99_of_gaps_matches_numpy_on_the_same_window():
    rng = np.random.default_rng(11)
    times = np.cumsum(rng.gamma(0.3, 1 / 150, 3000))  # bursty: mean gap 2 ms, heavy spread
    times = np.concatenate([times[times < 3.0], times[times >= 3.4]])  # and a 0.4 s stall, longer than W
    window = 0.25
    slo = SLO("wait", window_s=window, wait_p99_s_max=0.03)
    checks = [k / 50 for k in range(1, int(times[-1] * 50))]
    monitor = evaluate(slo, 0.0, [(t, 0.9) for t in times.tolist()], checks)
    for t, _, rate, _, p99 in monitor.timeline:
        win = times[(times > t - window) & (times <= t)]
        last = times[times <= t].max()
        expected = np.percentile(np.append(np.diff(win), t - last), 99)
        assert p99 == pytest.approx(expected, rel=1e-12, abs=1e-15)
        assert rate == pytest.approx(len(win) / window)
    stalled = [v for v in monitor.violations if v.start_s < 3.4 < v.end_s]
    assert len(stalled) == 1 and {"wait_p99", "no_pair"} <= stalled[0].kinds


def test_observe_is_constant_time():
    """Measured: 10^6 deliveries replayed with 100 checks in about 0.3 s (0.3 us per pair) on the dev box."""
    rng = np.random.default_rng(5)
    n = 10**6
    times = np.cumsum(rng.exponential(1 / 500, n))
    deliveries = list(zip(times.tolist(), rng.uniform(0.86, 0.95, n).tolist(), strict=True))
    slo = SLO("load", window_s=0.2, rate_hz_min=300, fidelity_min=0.85, availability_min=0.99)
    start = time.perf_counter()
    monitor = evaluate(slo, 0.0, deliveries, [times[-1] * k / 100 for k in range(1, 101)])
    elapsed = time.perf_counter() - start
    assert monitor.delivered == n and len(monitor.window()) < 200  # the window keeps only its own pairs
    assert elapsed < 2.0, f"{n} deliveries took {elapsed:.2f} s"


@pytest.mark.parametrize(("field", "value"), [
    ("name", ""), ("window_s", 0.0), ("window_s", math.nan), ("rate_hz_min", 0.0), ("rate_hz_min", -5.0),
    ("fidelity_min", 1.2), ("fidelity_min", 0.0), ("first_pair_s_max", -1.0), ("wait_p99_s_max", 0.0),
    ("availability_min", 0.0), ("availability_min", 1.5), ("grace_s", -0.1), ("grace_s", math.inf),
])
def test_bad_parameters_name_their_field(field, value):
    kwargs = {"name": "x", "window_s": 1.0, "rate_hz_min": 10.0, field: value}
    with pytest.raises(ParameterError, match=field) as info:
        SLO(**kwargs)
    assert info.value.name == field and isinstance(info.value, QfabricError)


def test_bad_use_raises():
    with pytest.raises(ParameterError, match="objectives"):
        SLO("none", window_s=1.0)
    monitor = SloMonitor(SLO("x", 1.0, rate_hz_min=1.0), 5.0)
    with pytest.raises(ParameterError, match="t_s"):
        monitor.observe(4.0, 0.9)  # before the start
    monitor.observe(6.0, 0.9)
    with pytest.raises(ParameterError, match="t_s"):
        monitor.check(5.5)  # time went back
    with pytest.raises(ParameterError, match="fidelity"):
        monitor.observe(6.5, 1.5)
    with pytest.raises(ParameterError, match="start_s"):
        SloMonitor(SLO("x", 1.0, rate_hz_min=1.0), math.nan)


def test_violation_keeps_the_worst_reading_per_kind():
    v = Violation(1.0)
    v.note("rate", -250.0, "rate 250.0/s < 300/s over 0.2 s")
    v.note("rate", -100.0, "rate 100.0/s < 300/s over 0.2 s")
    v.note("rate", -200.0, "rate 200.0/s < 300/s over 0.2 s")
    assert v.causes == {"rate 100.0/s < 300/s over 0.2 s"} and v.open
