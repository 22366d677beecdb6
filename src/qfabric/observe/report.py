"""Service-level indicators of a run, as plain JSON-ready data.

Lower layers hand over plain records (request records, circuit and link counters, link descriptions);
this module turns them into the numbers an operator reads: per request pairs/s with a confidence interval,
delivered fidelity, time to first pair and waiting times against its target; per link attempts,
utilisation and rates against the PLOB bound; per node memory utilisation; fairness across requests.

>>> rate_with_ci(n=400, duration_s=10.0, waits_s=[0.025] * 400)     # perfectly regular deliveries
(40.0, 40.0, 40.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.special import gammaincinv

from qfabric.control import RequestRecord
from qfabric.network import LinkStats, Network

Z95 = 1.959963984540054


@dataclass(frozen=True)
class LinkRecord:
    """What the report needs of one elementary link's model."""

    name: str
    between: tuple[str, str]
    length_km: float
    scheme: str
    profile: str
    capacity: tuple[int, int]
    success_probability: float
    attempt_period_s: float
    heralded_fidelity: float
    hashing_yield: float
    plob_bound_per_use: float
    relay_bound_per_use: float


def summarize(values: Sequence[float]) -> dict:
    """Mean, standard deviation and percentiles (empty input gives ``{"count": 0}``)."""
    a = np.asarray(values, dtype=float)
    if a.size == 0:
        return {"count": 0}
    p = np.percentile(a, [5, 50, 90, 95, 99])
    return {
        "count": int(a.size),
        "mean": float(a.mean()),
        "std": float(a.std(ddof=1)) if a.size > 1 else 0.0,
        "min": float(a.min()),
        "p5": float(p[0]),
        "p50": float(p[1]),
        "p90": float(p[2]),
        "p95": float(p[3]),
        "p99": float(p[4]),
        "max": float(a.max()),
    }


def histogram(values: Sequence[float], bins: int = 20, lo: float | None = None, hi: float | None = None) -> dict:
    a = np.asarray(values, dtype=float)
    if a.size == 0:
        return {"edges": [], "counts": []}
    lo = float(a.min()) if lo is None else lo
    hi = float(a.max()) if hi is None else hi
    if hi <= lo:
        hi = lo + 1e-9
    counts, edges = np.histogram(a, bins=bins, range=(lo, hi))
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


def rate_with_ci(n: int, duration_s: float, waits_s: Sequence[float]) -> tuple[float, float, float]:
    """Delivery rate and its 95 % interval.

    Deliveries form a renewal process: for n >= 10 the interval uses the renewal central limit
    theorem (``Var N(t) ~ t sigma^2 / mu^3`` of the inter-delivery times); below that, the
    exact Poisson interval of the count.
    """
    rate = n / duration_s
    if n >= 10:
        w = np.asarray(waits_s, dtype=float)
        mu, var = float(w.mean()), float(w.var(ddof=1))
        se = math.sqrt(var / mu**3 / duration_s) if mu > 0 else 0.0
        return rate, max(0.0, rate - Z95 * se), rate + Z95 * se
    # the exact (Garwood) interval: chi2.ppf(q, 2k) / 2 is the inverse regularised gamma function at (k, q)
    lo = 0.0 if n == 0 else gammaincinv(n, 0.025)
    hi = gammaincinv(n + 1, 0.975)
    return rate, float(lo) / duration_s, float(hi) / duration_s


def jain_index(values: Sequence[float]) -> float | None:
    """Jain's fairness index ``(sum x)^2 / (n sum x^2)``: 1 when all equal, ``1/n`` when one takes all.

    >>> jain_index([2, 2, 2]), round(jain_index([1, 0, 0]), 4)
    (1.0, 0.3333)
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0 or not np.any(x):
        return None
    return float(x.sum() ** 2 / (x.size * (x**2).sum()))


def timeline(ticks: Sequence[int], values: Sequence[float], *, seconds_per_tick: float, start_s: float,
             end_s: float, step_s: float) -> dict:
    """Pairs per second and mean fidelity in consecutive bins of ``step_s`` from ``start_s`` to ``end_s``
    (the last bin may be shorter; a bin without pairs has fidelity None).

    >>> timeline([5, 15, 16], [0.9, 0.75, 0.25], seconds_per_tick=0.1, start_s=0.0, end_s=2.0, step_s=1.0)
    {'t_s': [0.0, 1.0], 'rate_hz': [1.0, 2.0], 'fidelity': [0.9, 0.5]}
    """
    if end_s <= start_s:
        return {"t_s": [], "rate_hz": [], "fidelity": []}
    edges = np.append(np.arange(start_s, end_s, step_s), end_s)
    times = np.asarray(ticks, dtype=float) * seconds_per_tick
    bins = len(edges) - 1
    index = np.clip(np.searchsorted(edges, times, side="right") - 1, 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    sums = np.bincount(index, weights=np.asarray(values, dtype=float), minlength=bins)
    widths = np.diff(edges)
    return {"t_s": [float(t) for t in edges[:-1]],
            "rate_hz": [float(c / w) for c, w in zip(counts, widths, strict=True)],
            "fidelity": [float(x / c) if c else None for x, c in zip(sums, counts, strict=True)]}


def slo_row(record: RequestRecord, until_s: float) -> dict | None:
    """The request's objectives, each violation (start, end, causes), availability and error budget."""
    monitor = record.monitor
    if monitor is None:
        return None
    slo = asdict(monitor.slo)
    return {
        "objectives": {k: v for k, v in slo.items() if k != "name" and v is not None},
        "violations": [{"start_s": v.start_s, "end_s": v.end_s, "causes": sorted(v.causes)}
                       for v in monitor.violations],
        "availability": monitor.availability(until_s),
        "error_budget": monitor.error_budget(until_s),
        "met": monitor.slo.availability_min is None and not monitor.violations
        or monitor.slo.availability_min is not None and monitor.availability(until_s) >= monitor.slo.availability_min,
    }


def request_row(record: RequestRecord, *, duration_s: float, seconds_per_tick: float, scheme: str,
                step_s: float | None = None) -> dict:
    """The SLIs of one request: pairs, rate with its 95 % interval, fidelity, first pair, waiting times, target;
    its routes over time, service levels and (every ``step_s``, default a 100th of the run) its timeline."""
    req = record.request
    start = record.started_tick if record.started_tick is not None else round(req.start_s / seconds_per_tick)
    end_tick = record.ended_tick if record.ended_tick is not None else round(duration_s / seconds_per_tick)
    active_s = max((end_tick - start) * seconds_per_tick, 0.0)
    ticks = record.delivery_ticks
    n = len(ticks)
    waits = [(b - a) * seconds_per_tick for a, b in zip([start, *ticks], ticks, strict=False)]
    rate, lo, hi = rate_with_ci(n, active_s, waits) if active_s > 0 else (0.0, 0.0, 0.0)
    fidelities = [w[0] for w in record.delivered_weights]
    qber_z = [w[1] + w[3] for w in record.delivered_weights]
    qber_x = [w[2] + w[3] for w in record.delivered_weights]
    if req.pairs is not None:
        target, share = {"pairs": req.pairs}, n / req.pairs
    elif req.rate_hz is not None:
        target, share = {"rate_hz": req.rate_hz}, rate / req.rate_hz
    else:
        target, share = None, None
    stats = [c.stats for c in record.every_circuit]
    routes = record.all_routes
    return {
        "name": req.name,
        "tenant": req.tenant,
        "between": [req.source, req.target],
        "refused": record.refused,
        "paths": [list(r) for r in routes],
        "hops": [len(r) - 1 for r in routes],
        "scheme": scheme,
        "window_s": [start * seconds_per_tick, end_tick * seconds_per_tick],
        "active_s": active_s,
        "target": target,
        "fidelity_min": req.protocol.fidelity_min,
        "pairs_delivered": n,
        "pairs_per_path": [record.delivered_on.count(i) for i in range(len(routes))],
        "rate_hz": rate,
        "rate_ci95_hz": [lo, hi],
        "share_of_target": share,
        "fidelity": summarize(fidelities) | {"histogram": histogram(fidelities, 20, 0.25, 1.0)},
        "qber_z_mean": float(np.mean(qber_z)) if n else None,
        "qber_x_mean": float(np.mean(qber_x)) if n else None,
        "time_to_first_pair_s": (ticks[0] - start) * seconds_per_tick if n else None,
        "waiting_time_s": summarize(waits),
        "swaps": sum(s.swaps for s in stats),
        "swaps_failed": sum(s.swaps_failed for s in stats),
        "cutoff_discards": sum(s.cutoff_discards for s in stats),
        "doomed_discards": sum(s.doomed_discards for s in stats),
        "below_fidelity_discards": sum(s.below_fidelity for s in stats),
        "no_memory_share_on": sorted({name for c in record.circuits for name in c.no_memory_share}),
        "reroutes": [dict(r) for r in record.reroutes],
        "negotiated": None if record.offer is None or record.offer.plan is None else {
            "admitted": record.offer.admit, "plan": record.offer.plan.describe(),
            "purification_rounds": record.offer.plan.purification_rounds, "cutoff_s": record.offer.plan.cutoff_s,
            "predicted_rate_hz": record.offer.prediction.rate_hz,
            "predicted_fidelity": record.offer.prediction.fidelity, "reason": record.offer.reason},
        "preempted_by": record.preempted_by,
        "slo": slo_row(record, end_tick * seconds_per_tick),
        "timeline": timeline(ticks, fidelities, seconds_per_tick=seconds_per_tick, start_s=start * seconds_per_tick,
                             end_s=end_tick * seconds_per_tick, step_s=step_s or duration_s / 100)
        if record.started_tick is not None else None,
        "completed_s": record.completed_tick * seconds_per_tick if record.completed_tick is not None else None,
        "stalled_since_s": record.stalled_since_tick * seconds_per_tick
        if record.stalled_since_tick is not None else None,
    }


def link_row(record: LinkRecord, stats: LinkStats, *, duration_s: float, seconds_per_tick: float,
             requests: Sequence[str]) -> dict:
    """One link's attempts, successes, utilisation and distance to the repeaterless bound."""
    attempts_per_s = stats.attempts / duration_s
    ebits_per_s = stats.successes * record.hashing_yield / duration_s
    plob_per_s = record.plob_bound_per_use * attempts_per_s
    relay_per_s = record.relay_bound_per_use * attempts_per_s
    lanes = min(record.capacity)
    busy_s = stats.attempt_ticks * seconds_per_tick
    return asdict(record) | {
        "capacity": list(record.capacity),
        "requests": list(requests),
        "idle": stats.attempts == 0,
        "attempts": stats.attempts,
        "successes": stats.successes,
        "success_rate": stats.successes / stats.attempts if stats.attempts else None,
        "pairs_per_s": stats.successes / duration_s,
        "utilisation": busy_s / (duration_s * lanes) if lanes else None,
        "hashing_ebits_per_s": ebits_per_s,
        "plob_bound_ebits_per_s": plob_per_s,
        "fraction_of_plob": ebits_per_s / plob_per_s if plob_per_s else None,
        "relay_bound_ebits_per_s": relay_per_s,
        "fraction_of_relay_bound": ebits_per_s / relay_per_s if relay_per_s else None,
        "purifications": stats.purifications,
        "purifications_failed": stats.purifications_failed,
        "unbound_discards": stats.unbound_discards,
    }


def node_rows(network: Network, duration_s: float) -> list[dict]:
    """Per node: memory qubits and their time-averaged utilisation (share of qubit-seconds in use)."""
    busy = network.memory_busy_ticks()
    rows: dict[str, dict] = {name: {"name": name, "memory_qubits": 0, "busy_qubit_s": 0.0} for name in network.nodes}
    for link in network.links:
        for pool in (link.pool_a, link.pool_b):
            row = rows[pool.node]
            row["memory_qubits"] += pool.capacity
            row["busy_qubit_s"] += busy[(pool.node, link.name)] * network.seconds_per_tick
    for row in rows.values():
        qubits = row["memory_qubits"]
        row["memory_utilisation"] = row["busy_qubit_s"] / (qubits * duration_s) if qubits else None
    return list(rows.values())


def network_report(*, records: Sequence[RequestRecord], links: Sequence[LinkRecord], network: Network,
                   duration_s: float, schemes: dict[str, str], step_s: float | None = None) -> dict:
    """Per request, per link and per node SLIs of one run, and Jain's fairness index across the requests
    served."""
    spt = network.seconds_per_tick
    rows = [request_row(r, duration_s=duration_s, seconds_per_tick=spt, scheme=schemes[r.request.name],
                        step_s=step_s) for r in records]
    crossing: dict[str, list[str]] = {link.name: [] for link in links}
    for r in records:
        for c in r.every_circuit:
            for link in c.links:
                if r.request.name not in crossing[link.name]:
                    crossing[link.name].append(r.request.name)
    link_rows = [link_row(rec, live.stats, duration_s=duration_s, seconds_per_tick=spt, requests=crossing[rec.name])
                 for rec, live in zip(links, network.links, strict=True)]
    served = [row for row in rows if row["refused"] is None]
    shares = [row["share_of_target"] for row in served]
    fairness = {
        "jain_index_rate": jain_index([row["rate_hz"] for row in served]) if len(served) > 1 else None,
        "jain_index_share_of_target": jain_index(shares) if len(served) > 1 and None not in shares else None,
    }
    return {"requests": rows, "links": link_rows, "nodes": node_rows(network, duration_s), "fairness": fairness}
