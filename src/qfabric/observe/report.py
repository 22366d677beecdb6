"""Service-level indicators of a run, as plain JSON-ready data.

Lower layers hand over plain records (:class:`~qfabric.network.ChainStats`, link descriptions);
this module turns them into the numbers an operator reads: pairs/s with a confidence interval,
delivered fidelity, waiting times, per-link attempts and rates against the PLOB bound.

>>> rate_with_ci(n=400, duration_s=10.0, waits_s=[0.025] * 400)     # perfectly regular deliveries
(40.0, 40.0, 40.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as sps

from qfabric.network import ChainStats

Z95 = 1.959963984540054


@dataclass(frozen=True)
class LinkRecord:
    """What the report needs of one elementary link's model."""

    name: str
    between: tuple[str, str]
    length_km: float
    scheme: str
    profile: str
    capacity: int
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
    lo = 0.0 if n == 0 else sps.chi2.ppf(0.025, 2 * n) / 2
    hi = sps.chi2.ppf(0.975, 2 * (n + 1)) / 2
    return rate, float(lo) / duration_s, float(hi) / duration_s


def chain_report(
    *,
    source: str,
    target: str,
    path: Sequence[str],
    stats: ChainStats,
    links: Sequence[LinkRecord],
    duration_s: float,
    seconds_per_tick: float,
    scheme: str,
) -> dict:
    """The end-to-end and per-link SLIs of one repeater chain."""
    fidelities = [w[0] for w in stats.delivered_weights]
    waits = [t * seconds_per_tick for t in stats.waiting_ticks]
    n = len(fidelities)
    rate, lo, hi = rate_with_ci(n, duration_s, waits)
    qber_z = [w[1] + w[3] for w in stats.delivered_weights]
    qber_x = [w[2] + w[3] for w in stats.delivered_weights]
    end_to_end = {
        "between": [source, target],
        "path": list(path),
        "scheme": scheme,
        "pairs_delivered": n,
        "rate_hz": rate,
        "rate_ci95_hz": [lo, hi],
        "fidelity": summarize(fidelities) | {"histogram": histogram(fidelities, 20, 0.25, 1.0)},
        "qber_z_mean": float(np.mean(qber_z)) if n else None,
        "qber_x_mean": float(np.mean(qber_x)) if n else None,
        "waiting_time_s": summarize(waits),
        "swaps": stats.swaps,
        "swaps_failed": stats.swaps_failed,
        "cutoff_discards": stats.cutoff_discards,
    }
    link_rows = []
    for record, seg in zip(links, stats.segments, strict=True):
        attempts_per_s = seg.attempts / duration_s
        ebits_per_s = seg.successes * record.hashing_yield / duration_s
        plob_per_s = record.plob_bound_per_use * attempts_per_s
        relay_per_s = record.relay_bound_per_use * attempts_per_s
        link_rows.append(
            asdict(record)
            | {
                "attempts": seg.attempts,
                "successes": seg.successes,
                "success_rate": seg.successes / seg.attempts if seg.attempts else None,
                "pairs_per_s": seg.successes / duration_s,
                "hashing_ebits_per_s": ebits_per_s,
                "plob_bound_ebits_per_s": plob_per_s,
                "fraction_of_plob": ebits_per_s / plob_per_s if plob_per_s else None,
                "relay_bound_ebits_per_s": relay_per_s,
                "fraction_of_relay_bound": ebits_per_s / relay_per_s if relay_per_s else None,
                "purifications": seg.purifications,
                "purifications_failed": seg.purifications_failed,
            }
        )
    return {"end_to_end": [end_to_end], "links": link_rows}
