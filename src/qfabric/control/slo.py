"""Service levels: objectives per request or tenant, judged over sliding windows of simulated time.

An :class:`SLO` says what a request or tenant was promised: a rate at least, a mean delivered fidelity at
least, a time to first pair and a 99th-percentile waiting time at most, each over a sliding window of
``window_s`` simulated seconds, and an availability at least (the share of the service time during which all
the other objectives held), which sets the error budget. A :class:`SloMonitor` is fed every delivered pair
(:meth:`~SloMonitor.observe`) and judged at a fixed step (:meth:`~SloMonitor.check`); it records each
violation with its start, end and causes, and reports the error budget left.

>>> slo = SLO("gold", window_s=1.0, rate_hz_min=8.0, availability_min=0.9)
>>> deliveries = [((k + 0.5) / 10, 0.9) for k in range(100) if not 40 <= k < 60]  # 10/s, none in [4, 6) s
>>> monitor = evaluate(slo, 0.0, deliveries, [k / 10 for k in range(101)])  # check every 0.1 s
>>> [(v.start_s, v.end_s) for v in monitor.violations]
[(4.3, 6.8)]
>>> sorted(monitor.violations[0].causes)  # each cause at its worst reading
['no pair for 2.05 s', 'rate 0.0/s < 8/s over 1 s']
>>> {k: round(v, 3) for k, v in monitor.error_budget(10.0).items()}
{'service_s': 10.0, 'allowed_s': 1.0, 'used_s': 2.5, 'left_s': -1.5, 'left_fraction': -1.5}

Boundaries: the state a check sees holds until the next check, so a violation opens at the first check that
finds a cause and closes at the first check that finds none; both are exact to one check step. The sliding
window of a check at ``t`` is ``(t - window_s, t]``; the window objectives (rate, fidelity, p99 wait) are not
judged before ``start_s + window_s + grace_s`` (the first full window), the time to first pair from the start.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from qfabric.errors import ParameterError

# a window "holds at least rate_hz_min * window_s pairs" up to this many pairs of rounding (counts are integers)
_COUNT_TOLERANCE = 1e-9


@dataclass(frozen=True)
class SLO:
    """What a request or tenant was promised; every objective left ``None`` is not judged.

    ``rate_hz_min``: pairs per second over the window, at least. ``fidelity_min``: mean delivered fidelity over
    the window, at least (a window with no pair has no fidelity to judge). ``first_pair_s_max``: time from the
    start of service to the first pair, at most. ``wait_p99_s_max``: 99th percentile of the gaps between
    deliveries in the window, at most; the time since the last delivery counts as a gap in progress, so a
    stalled service violates it. ``availability_min``: share of the service time during which all the other
    objectives held, at least; it sets the error budget and is reported, not judged per check.
    ``grace_s``: extra time after the first full window before the window objectives are judged.
    """

    name: str
    window_s: float
    rate_hz_min: float | None = None
    fidelity_min: float | None = None
    first_pair_s_max: float | None = None
    wait_p99_s_max: float | None = None
    availability_min: float | None = None
    grace_s: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ParameterError("name", self.name, "a non-empty string")
        if not (self.window_s > 0 and math.isfinite(self.window_s)):
            raise ParameterError("window_s", self.window_s, "a finite window length > 0 (seconds)")
        if self.rate_hz_min is not None and not (self.rate_hz_min > 0 and math.isfinite(self.rate_hz_min)):
            raise ParameterError("rate_hz_min", self.rate_hz_min, "a finite rate > 0 (pairs per second)")
        if self.fidelity_min is not None and not 0 < self.fidelity_min <= 1:
            raise ParameterError("fidelity_min", self.fidelity_min, "a fidelity in (0, 1]")
        if self.first_pair_s_max is not None and not (
                self.first_pair_s_max >= 0 and math.isfinite(self.first_pair_s_max)):
            raise ParameterError("first_pair_s_max", self.first_pair_s_max, "a finite time >= 0 (seconds)")
        if self.wait_p99_s_max is not None and not (self.wait_p99_s_max > 0 and math.isfinite(self.wait_p99_s_max)):
            raise ParameterError("wait_p99_s_max", self.wait_p99_s_max, "a finite time > 0 (seconds)")
        if self.availability_min is not None and not 0 < self.availability_min <= 1:
            raise ParameterError("availability_min", self.availability_min, "a share in (0, 1]")
        if not (self.grace_s >= 0 and math.isfinite(self.grace_s)):
            raise ParameterError("grace_s", self.grace_s, "a finite time >= 0 (seconds)")
        if all(v is None for v in (self.rate_hz_min, self.fidelity_min, self.first_pair_s_max,
                                   self.wait_p99_s_max, self.availability_min)):
            raise ParameterError("objectives", None, "at least one of rate_hz_min, fidelity_min, first_pair_s_max, "
                                 "wait_p99_s_max, availability_min")


@dataclass
class Violation:
    """One interval during which some objective did not hold: ``[start_s, end_s)``, ``end_s`` None while open.

    ``worst`` keeps, per kind of cause (``"rate"``, ``"no_pair"``, ``"fidelity"``, ``"wait_p99"``,
    ``"first_pair"``), the worst reading seen during the violation as ``(severity, message)``."""

    start_s: float
    end_s: float | None = None
    worst: dict[str, tuple[float, str]] = field(default_factory=dict)

    @property
    def causes(self) -> set[str]:
        """The human-readable causes seen during the violation, one per kind, at its worst reading."""
        return {message for _, message in self.worst.values()}

    @property
    def kinds(self) -> set[str]:
        return set(self.worst)

    @property
    def open(self) -> bool:
        return self.end_s is None

    def note(self, kind: str, severity: float, message: str) -> None:
        if kind not in self.worst or severity >= self.worst[kind][0]:
            self.worst[kind] = (severity, message)


class SloMonitor:
    """Judges one :class:`SLO` for a service that started at ``start_s``.

    Call :meth:`observe` for every delivered pair and :meth:`check` at a fixed step; times never go back.
    ``observe`` is O(1) amortised (the window is a pair of deques); ``check`` costs O(pairs in the window)
    for the p99 of the gaps."""

    def __init__(self, slo: SLO, start_s: float):
        if not math.isfinite(start_s):
            raise ParameterError("start_s", start_s, "a finite time (seconds)")
        self.slo = slo
        self.start_s = float(start_s)
        self.violations: list[Violation] = []
        self.timeline: list[tuple[float, bool, float, float | None, float]] = []
        self.first_pair_s: float | None = None  # time of the first delivery
        self.delivered = 0
        self._times: deque[float] = deque()
        self._fidelities: deque[float] = deque()
        self._fidelity_sum = 0.0
        self._last_s: float | None = None  # last delivery, in or out of the window
        self._now = self.start_s
        self._judge_from = self.start_s + slo.window_s + slo.grace_s
        self._current: Violation | None = None

    def _advance(self, t_s: float) -> None:
        if not t_s >= self._now:
            raise ParameterError("t_s", t_s, f"a time >= {self._now} (times never go back)")
        self._now = t_s
        cutoff = t_s - self.slo.window_s
        times, fidelities = self._times, self._fidelities
        while times and times[0] <= cutoff:
            times.popleft()
            self._fidelity_sum -= fidelities.popleft()
        if not times:
            self._fidelity_sum = 0.0  # no drift survives an empty window

    def observe(self, t_s: float, fidelity: float) -> None:
        """One pair delivered at ``t_s`` with ``fidelity``."""
        if not 0.0 <= fidelity <= 1.0:
            raise ParameterError("fidelity", fidelity, "a fidelity in [0, 1]")
        self._advance(t_s)
        self._times.append(t_s)
        self._fidelities.append(fidelity)
        self._fidelity_sum += fidelity
        self._last_s = t_s
        self.delivered += 1
        if self.first_pair_s is None:
            self.first_pair_s = t_s

    def window(self) -> list[float]:
        """Delivery times in the current window ``(now - window_s, now]``."""
        return list(self._times)

    def gaps(self) -> np.ndarray:
        """The gaps the p99 is taken over: between consecutive deliveries in the window, then the gap in
        progress (now minus the last delivery, or minus the start if none yet), always last."""
        last = self._last_s if self._last_s is not None else self.start_s
        times = np.fromiter(self._times, dtype=float, count=len(self._times))
        return np.append(np.diff(times), self._now - last)

    def check(self, t_s: float) -> list[str]:
        """Judge the objectives at ``t_s`` over ``(t_s - window_s, t_s]``; returns the causes violated now."""
        self._advance(t_s)
        slo, n, w = self.slo, len(self._times), self.slo.window_s
        rate = n / w
        fidelity = self._fidelity_sum / n if n else None
        p99 = float(np.percentile(self.gaps(), 99))
        idle = t_s - (self._last_s if self._last_s is not None else self.start_s)
        elapsed = t_s - self.start_s
        found: list[tuple[str, float, str]] = []  # (kind, severity, message)
        if slo.first_pair_s_max is not None and self.first_pair_s is None and elapsed > slo.first_pair_s_max:
            found.append(("first_pair", elapsed, f"no first pair after {elapsed:.3g} s > {slo.first_pair_s_max:g} s"))
        if t_s >= self._judge_from - 1e-12 * max(1.0, abs(self._judge_from)):
            stalled = False
            if slo.rate_hz_min is not None and n + _COUNT_TOLERANCE < slo.rate_hz_min * w:
                found.append(("rate", -rate, f"rate {rate:.1f}/s < {slo.rate_hz_min:g}/s over {w:g} s"))
                stalled = n == 0
            if slo.wait_p99_s_max is not None and p99 > slo.wait_p99_s_max:
                found.append(("wait_p99", p99, f"p99 wait {p99:.3g} s > {slo.wait_p99_s_max:g} s"))
                stalled = stalled or n == 0
            if stalled:
                found.append(("no_pair", idle, f"no pair for {idle:.3g} s"))
            if slo.fidelity_min is not None and fidelity is not None and fidelity < slo.fidelity_min:
                found.append(("fidelity", -fidelity, f"fidelity {fidelity:.3g} < {slo.fidelity_min:g}"))
        current = self._current
        if current is not None and "first_pair" in current.worst and self.first_pair_s is not None:
            late = self.first_pair_s - self.start_s  # the first pair came during this violation: its final word
            current.note("first_pair", late, f"first pair after {late:.3g} s > {slo.first_pair_s_max:g} s")
        if found:
            if current is None:
                current = self._current = Violation(t_s)
                self.violations.append(current)
            for kind, severity, message in found:
                current.note(kind, severity, message)
        elif current is not None:
            current.end_s = t_s
            self._current = None
        self.timeline.append((t_s, not found, rate, fidelity, p99))
        return [message for _, _, message in found]

    def finish(self, t_s: float) -> None:
        """The service ends at ``t_s``: close any open violation there."""
        self._advance(t_s)
        if self._current is not None:
            self._current.end_s = t_s
            self._current = None

    def violated_s(self, until_s: float) -> float:
        """Seconds of violation from the start to ``until_s`` (an open violation counts up to ``until_s``)."""
        total = 0.0
        for v in self.violations:
            end = until_s if v.end_s is None else min(v.end_s, until_s)
            total += max(0.0, end - v.start_s)
        return total

    def availability(self, until_s: float) -> float:
        """Share of the service time ``[start_s, until_s]`` during which every objective held."""
        service = until_s - self.start_s
        return 1.0 if service <= 0 else 1.0 - self.violated_s(until_s) / service

    def error_budget(self, until_s: float) -> dict[str, float | None]:
        """``allowed_s`` = (1 - availability_min) x service time, ``used_s`` = violated time, ``left_s`` (negative
        once overspent) and ``left_fraction`` of the allowance (None without an availability objective or when
        nothing is allowed)."""
        service = max(0.0, until_s - self.start_s)
        used = self.violated_s(until_s)
        if self.slo.availability_min is None:
            return {"service_s": service, "allowed_s": None, "used_s": used, "left_s": None, "left_fraction": None}
        allowed = (1.0 - self.slo.availability_min) * service
        left = allowed - used
        fraction = left / allowed if allowed > 0 else None  # a fraction of nothing; left_s says it all
        return {"service_s": service, "allowed_s": allowed, "used_s": used, "left_s": left, "left_fraction": fraction}


def evaluate(slo: SLO, start_s: float, deliveries: Iterable[tuple[float, float]],
             check_times: Iterable[float]) -> SloMonitor:
    """Replay ``deliveries`` (``(t_s, fidelity)``, in time order) against ``slo``, checking at each of
    ``check_times`` (in order) after the deliveries up to and including it; the service finishes at the last
    check (deliveries after it are not seen)."""
    monitor = SloMonitor(slo, start_s)
    pending = iter(deliveries)
    nxt = next(pending, None)
    observe, check = monitor.observe, monitor.check
    last = None
    for t in check_times:
        while nxt is not None and nxt[0] <= t:
            observe(nxt[0], nxt[1])
            nxt = next(pending, None)
        check(t)
        last = t
    if last is not None:
        monitor.finish(last)
    return monitor
