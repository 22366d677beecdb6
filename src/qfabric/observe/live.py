"""Frames for a live view of a run: what the network looks like at one simulated time.

A frame is plain JSON-ready data: per link its state (``up``, ``cut`` or ``degraded``) and pair rate, per node
its state, per request and per tenant the pairs delivered, the rate and mean fidelity over the last ``window_s``
and the SLO state, the QKD links' key rate and QBER, the federation's rounds and key pools, and the events since
the previous frame. Two sources make them:

* :class:`LiveView` reads the simulation's own objects while it runs (request records, link counters, faults,
  the controller's events), one frame per step of :func:`qfabric.scenario.build.run_scenario`;
* :func:`report_frame` reads a finished run's report (its per-request timelines, link conditions, QKD
  conditions, federation rounds), to replay it.

>>> report = {"scenario": {"name": "x", "duration_s": 10.0}, "nodes": [{"name": "a"}, {"name": "b"}],
...     "links": [{"name": "a-b", "between": ["a", "b"], "pairs_per_s": 5.0, "success_rate": 0.01,
...                "conditions": [{"start_s": 0.0, "end_s": 4.0, "up": True, "extra_loss_db": 0.0,
...                                "detector_factor": 1.0},
...                               {"start_s": 4.0, "end_s": 10.0, "up": False, "extra_loss_db": 0.0,
...                                "detector_factor": 1.0}]}],
...     "requests": [], "tenants": [], "events": [], "faults": [], "qkd": []}
>>> report_frame(report, 5.0)["links"]["a-b"]["state"]
'cut'
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

from qfabric.control import Fault, FaultKind, RequestRecord, link_conditions
from qfabric.network import Network
from qfabric.observe.report import LinkRecord

UP, CUT, DEGRADED, DOWN = "up", "cut", "degraded", "down"


def topology(report_or_scenario: dict) -> dict:
    """What does not change during a run, from a report (or a report-shaped dict): the scenario's name and
    duration, nodes (with positions), links (with lengths), requests (endpoints, tenant), tenants, QKD links and
    whether there is a federation.

    >>> topology({"scenario": {"name": "x", "duration_s": 1.0}, "nodes": [{"name": "a"}], "links": [],
    ...           "requests": [], "tenants": [], "qkd": []})["nodes"]
    [{'name': 'a', 'position_km': None}]
    """
    r = report_or_scenario
    return {
        "name": r["scenario"]["name"], "duration_s": r["scenario"]["duration_s"],
        "description": r["scenario"].get("description"),
        "nodes": [{"name": n["name"], "position_km": n.get("position_km")} for n in r["nodes"]],
        "links": [{"name": x["name"], "between": list(x["between"]), "length_km": x.get("length_km"),
                   "profile": x.get("profile"), "scheme": x.get("scheme")} for x in r["links"]],
        "requests": [{"name": q["name"], "between": list(q["between"]), "tenant": q.get("tenant")}
                     for q in r["requests"]],
        "tenants": [t["name"] for t in r.get("tenants", [])],
        "qkd": [{"name": q["name"], "link": q.get("link"), "between": q.get("between")} for q in r.get("qkd", [])],
        "federation": r.get("federated") is not None or bool(r.get("has_federation")),
        "slo_requests": [q["name"] for q in r["requests"] if q.get("slo")],
    }


def _condition_state(up: bool, extra_loss_db: float, detector_factor: float) -> str:
    if not up:
        return CUT
    return DEGRADED if extra_loss_db > 0 or detector_factor < 1 else UP


def _at(rows: Sequence[dict], t_s: float) -> dict | None:
    """The row of consecutive ``[start_s, end_s)`` intervals that holds ``t_s`` (the last one holds its end)."""
    for row in rows:
        if row["start_s"] <= t_s < row["end_s"]:
            return row
    return rows[-1] if rows and t_s >= rows[-1]["end_s"] else None


def _tenants(requests: dict[str, dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for row in requests.values():
        t = out.setdefault(row["tenant"] or "default", {"requests": 0, "pairs_delivered": 0, "rate_hz": 0.0,
                                                        "slo_violated": 0, "refused": 0})
        t["requests"] += 1
        t["pairs_delivered"] += row["pairs_delivered"]
        t["rate_hz"] += row["rate_hz"] or 0.0
        t["slo_violated"] += row["slo"] == "violated"
        t["refused"] += row["slo"] == "refused"
    return out


def _node_states(faults: Sequence[Fault], nodes: Sequence[str], t_s: float) -> dict[str, dict]:
    states = {name: {"state": UP} for name in nodes}
    for f in faults:
        if f.target in states and f.start_s <= t_s and (f.end_s is None or t_s < f.end_s):
            if f.kind is FaultKind.NODE:
                states[f.target]["state"] = DOWN
            elif f.kind is FaultKind.MEMORY and states[f.target]["state"] != DOWN:
                states[f.target]["state"] = DEGRADED
    return states


class LiveView:
    """Frames of a running simulation; keeps the previous link counters to give each link's pair rate over
    the last step (and each link's states under the fault schedule, which the build fixes).

    ``window_s``: the span the request rates and fidelities are averaged over (the report's timeline step)."""

    def __init__(self, links: Sequence[LinkRecord], *, window_s: float):
        self.links = list(links)
        self.window_s = window_s
        self._last_t, self._first = 0.0, True
        self._last_successes: dict[str, int] = {}
        self._last_attempts: dict[str, int] = {}
        self._conditions: dict[str, list] = {}

    def frame(self, t_s: float, *, records: Sequence[RequestRecord], network: Network, faults: Sequence[Fault],
              events: Sequence[dict]) -> dict:
        """The frame at simulated time ``t_s`` (the simulation has run up to it)."""
        dt = t_s - self._last_t
        links: dict[str, dict] = {}
        for rec, live in zip(self.links, network.links, strict=True):
            stats = live.stats
            new_pairs = stats.successes - self._last_successes.get(rec.name, 0)
            new_attempts = stats.attempts - self._last_attempts.get(rec.name, 0)
            if rec.name not in self._conditions:  # the fault schedule is fixed when the network is built
                self._conditions[rec.name] = link_conditions(list(faults), rec.name, rec.between, math.inf)
            state = next((c for c in self._conditions[rec.name] if c.start_s <= t_s < c.end_s), None)
            links[rec.name] = {
                "state": _condition_state(state.up, state.extra_loss_db, state.detector_factor) if state else UP,
                "attempts": stats.attempts, "successes": stats.successes,
                "pairs_per_s": new_pairs / dt if dt > 0 else None,
                "success_ratio": new_pairs / new_attempts if new_attempts else None,
            }
            self._last_successes[rec.name], self._last_attempts[rec.name] = stats.successes, stats.attempts
        spt = network.seconds_per_tick
        requests = {r.request.name: self._request(r, t_s, spt) for r in records}
        new_events = [e for e in events if e["t_s"] <= t_s and (self._first or e["t_s"] > self._last_t)]
        self._last_t, self._first = t_s, False
        return {"t_s": t_s, "links": links, "nodes": _node_states(faults, list(network.nodes), t_s),
                "requests": requests, "tenants": _tenants(requests), "qkd": {}, "events": new_events,
                "rounds": [], "pools": {}}

    def _request(self, record: RequestRecord, t_s: float, seconds_per_tick: float) -> dict:
        ticks = record.delivery_ticks
        lo = bisect.bisect_right(ticks, (t_s - self.window_s) / seconds_per_tick)
        recent = record.delivered_weights[lo:]
        monitor = record.monitor
        if record.refused is not None:
            slo = "refused"
        elif monitor is None:
            slo = "none"
        elif monitor.violations and monitor.violations[-1].end_s is None:
            slo = "violated"
        else:
            slo = "met"
        return {"tenant": record.request.tenant, "pairs_delivered": len(ticks),
                "rate_hz": len(recent) / self.window_s if record.started_tick is not None else None,
                "fidelity": sum(w[0] for w in recent) / len(recent) if recent else None,
                "slo": slo, "violations": len(monitor.violations) if monitor else 0,
                "routes": [list(route) for route in record.routes]}


def _request_at(row: dict, t_s: float) -> dict:
    """A report's request row at ``t_s``: its timeline bin, pairs so far (from the timeline) and SLO state."""
    line = row.get("timeline") or {"t_s": [], "rate_hz": [], "fidelity": []}
    i = bisect.bisect_right(line["t_s"], t_s) - 1
    edges = [*line["t_s"], row["window_s"][1]] if line["t_s"] else []
    pairs = sum(rate * (edges[k + 1] - edges[k]) for k, rate in enumerate(line["rate_hz"][:max(i, 0)]))
    if i >= 0:  # the bin in progress, pro rata
        pairs += line["rate_hz"][i] * (min(t_s, edges[i + 1]) - edges[i])
    slo = row.get("slo")
    if row.get("refused") is not None:
        state, count = "refused", 0
    elif slo is None:
        state, count = "none", 0
    else:
        started = [v for v in slo["violations"] if v["start_s"] <= t_s]
        count = len(started)
        state = "violated" if any(v["end_s"] is None or t_s < v["end_s"] for v in started) else "met"
    return {"tenant": row.get("tenant"), "pairs_delivered": round(pairs),
            "rate_hz": line["rate_hz"][i] if i >= 0 else None, "fidelity": line["fidelity"][i] if i >= 0 else None,
            "slo": state, "violations": count, "routes": row.get("paths", [])}


def qkd_at(report: dict, t_s: float) -> dict[str, dict]:
    """Each QKD link's secret-key rate (bit/s) and QBER at ``t_s`` from the report's conditions (BBM92 links,
    which have none, hold their run average), with the key made so far (bits)."""
    out = {}
    for q in report.get("qkd", []):
        rows = q.get("conditions") or [{"start_s": 0.0, "end_s": report["scenario"]["duration_s"], "up": True,
                                        "secret_key_rate_bps": q.get("secret_key_rate_bps", 0.0),
                                        "qber": q.get("qber")}]
        now = _at(rows, t_s)
        made = sum(r["secret_key_rate_bps"] * max(0.0, min(t_s, r["end_s"]) - r["start_s"]) for r in rows)
        out[q["name"]] = {"link": q.get("link") or q.get("request"), "between": q.get("between"),
                          "key_rate_bps": now["secret_key_rate_bps"] if now else None,
                          "qber": now.get("qber") if now else None, "key_bits": made, "up": now["up"] if now else None}
    return out


def rounds_at(report: dict, t_s: float) -> tuple[list[dict], dict[str, int]]:
    """The federation's rounds done by ``t_s`` (round ``r`` at ``warmup_s + (r - 1) * round_period_s`` of the
    key supply's simulated time) in short form, and the key pools (keys per organisation pair) after the last of
    them. The key supply may run past the network's ``duration_s``: at the end of the run every round is done."""
    fed = report.get("federated")
    if not fed:
        return [], {}
    done, pools = [], {}
    curve = {c["round"]: c for c in fed.get("curves", {}).get("secure", [])}
    end = t_s >= report["scenario"]["duration_s"]
    for row in fed.get("per_round", []):
        at = fed.get("warmup_s", 0.0) + (row["round"] - 1) * fed.get("round_period_s", 0.0)
        if at > t_s and not end:
            break
        done.append({"round": row["round"], "t_s": at, "participants": len(row.get("participants", [])),
                     "failed": row.get("failed"), "sessions_by_mode": row.get("sessions_by_mode", {}),
                     "fallbacks": len(row.get("fallbacks", [])), "waited_s": row.get("waited_s"),
                     "accuracy": curve.get(row["round"], {}).get("accuracy")})
        pools = dict(row.get("pools_after") or row.get("pools_start") or {})
    return done, pools


def report_frame(report: dict, t_s: float, since_s: float | None = None) -> dict:
    """The frame of a finished run's report at ``t_s``; ``events`` holds those in ``(since_s, t_s]`` (all up to
    ``t_s`` without ``since_s``). Link pair rates are the run's averages while the link is up (the report has
    no per-link timeline)."""
    links = {}
    for row in report["links"]:
        now = _at(row.get("conditions") or [], t_s)
        state = _condition_state(now["up"], now["extra_loss_db"], now["detector_factor"]) if now else UP
        links[row["name"]] = {"state": state, "attempts": None, "successes": None,
                              "pairs_per_s": row.get("pairs_per_s") if state != CUT else 0.0,
                              "success_ratio": row.get("success_rate") if state != CUT else None}
    faults = [Fault(f["kind"], f["target"], f["start_s"], f["end_s"]) for f in report.get("faults", [])
              if f["kind"] in (FaultKind.NODE, FaultKind.MEMORY)]
    requests = {row["name"]: _request_at(row, t_s) for row in report["requests"]}
    events = [e for e in report.get("events", []) if e["t_s"] <= t_s and (since_s is None or e["t_s"] > since_s)]
    rounds, pools = rounds_at(report, t_s)
    return {"t_s": t_s, "links": links, "nodes": _node_states(faults, [n["name"] for n in report["nodes"]], t_s),
            "requests": requests, "tenants": _tenants(requests), "qkd": qkd_at(report, t_s), "events": events,
            "rounds": rounds, "pools": pools}
