"""Key rate against distance: analytic (asymptotic and finite-key), simulated, and the PLOB bound.

>>> c = key_rate_curve(Channel(0), max_km=100, step_km=50, simulate_km=[], pulses=10**9)
>>> c["distance_km"], len(c["asymptotic"])
([0.0, 50.0, 100.0], 3)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from qfabric.errors import ParameterError
from qfabric.qkd.link import run_decoy_bb84
from qfabric.qkd.theory import Channel, decoy_bb84_rate, finite_key_rate, optimise_settings


def key_rate_curve(
    template: Channel, *, max_km: float = 200, step_km: float = 5, simulate_km: Sequence[float] = (),
    pulses: int = 10**9, seed: int = 0, progress: Callable[[float], None] | None = None,
) -> dict:
    """Secret bits per pulse of decoy BB84 against distance, with simulated points at ``simulate_km``."""
    if max_km <= 0 or step_km <= 0:
        raise ParameterError("max_km/step_km", (max_km, step_km), "positive distances")
    distances = [float(d) for d in np.arange(0, max_km + step_km / 2, step_km)]
    out = {"distance_km": distances, "pulses": pulses, "asymptotic": [], "vacuum_weak": [], "no_decoy": [],
           "finite_key": [], "plob": [], "simulated": []}
    total = len(distances) + len(simulate_km)
    for i, d in enumerate(distances):
        ch = template.at(d)
        inf = decoy_bb84_rate(ch, "infinite")
        out["asymptotic"].append(inf.rate)
        out["vacuum_weak"].append(decoy_bb84_rate(ch, "vacuum+weak").rate)
        out["no_decoy"].append(decoy_bb84_rate(ch, "none").rate)
        out["finite_key"].append(finite_key_rate(ch, optimise_settings(ch, pulses), pulses).rate)
        out["plob"].append(inf.plob)
        if progress:
            progress((i + 1) / total)
    for j, d in enumerate(simulate_km):
        run = run_decoy_bb84(template.at(float(d)), pulses, seed=seed)
        s = run.summary()
        out["simulated"].append({"distance_km": float(d), "bits_per_pulse": s["secret_bits_per_pulse"],
                                 "analytic_bits_per_pulse": s["analytic_bits_per_pulse"], "qber": s["qber"],
                                 "efficiency": s["reconciliation_efficiency"], "aborted_blocks": s["aborted_blocks"]})
        if progress:
            progress((len(distances) + j + 1) / total)
    return out
