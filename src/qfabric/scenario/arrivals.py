"""Requests that arrive at random: each ``arrivals`` entry of a scenario as a Poisson process of requests.

>>> from qfabric.scenario import parse_scenario
>>> sc = parse_scenario({"name": "doc", "duration_s": 100, "nodes": [{"name": "a"}, {"name": "b"}],
...     "links": [{"between": ["a", "b"], "length_km": 10}],
...     "arrivals": [{"rate_per_s": 0.5, "ends": [["a", "b"]], "hold_s": 5}]})
>>> requests = arrival_requests(sc)
>>> 30 < len(requests) < 70, requests[0].name, requests[0].start_s < requests[1].start_s
(True, 'default-0-0', True)
"""

from __future__ import annotations

import numpy as np

from qfabric.scenario.schema import ProtocolSpec, RequestSpec, Scenario
from qfabric.sim.kernel import stream_seed

_PROTOCOL_FIELDS = set(ProtocolSpec.model_fields)


def arrival_requests(scenario: Scenario) -> list[RequestSpec]:
    """Every request the scenario's arrival processes make, in arrival order per process: exponential gaps of
    mean ``1 / rate_per_s`` from ``start_s`` until ``end_s`` (default: the end of the run), ends drawn uniformly
    from ``ends``, each held for an exponential time of mean ``hold_s``. Named ``<tenant>-<process>-<k>``;
    drawn from the scenario seed's stream ``arrivals/<process>``, so the same seed gives the same requests."""
    requests = []
    for i, arrival in enumerate(scenario.arrivals):
        rng = np.random.default_rng(stream_seed(scenario.seed, f"arrivals/{i}"))
        end = arrival.end_s if arrival.end_s is not None else scenario.duration_s
        protocol = arrival.model_dump(include=_PROTOCOL_FIELDS)
        t, k = arrival.start_s, 0
        while True:
            t += float(rng.exponential(1.0 / arrival.rate_per_s))
            if t >= end:
                break
            a, b = arrival.ends[int(rng.integers(len(arrival.ends)))]
            hold = float(rng.exponential(arrival.hold_s))
            requests.append(RequestSpec(
                name=f"{arrival.tenant}-{i}-{k}", source=a, target=b, tenant=arrival.tenant, start_s=t,
                end_s=t + max(hold, 1e-9), fidelity_min=arrival.fidelity_min, rate_hz=arrival.rate_hz,
                paths=arrival.paths, slo=arrival.slo, negotiate=arrival.negotiate, if_refused=arrival.if_refused,
                credential=arrival.credential, **protocol))
            k += 1
    return requests
