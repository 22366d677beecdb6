"""The control plane's costs: the service's decision per arriving request at 512 nodes, and a chaos run's overhead.

    python bench_control.py [--nodes 512] [--requests 400] [--repeat 3] [--json out.json]

Decision: ``scenarios/random-128.yaml``'s hardware and generator with 512 nodes and 640 links, three tenants (one
with an HMAC secret) with quotas, and ``--requests`` requests between random nodes arriving 1 ms apart. What is
timed, per request, is the service's whole arrival handler: the token check, routing over the links believed up
(hop count, Dijkstra), the quota book, installing the route at the nodes and opening the circuit (goal: under
1 ms). Fidelity negotiation has its own benchmark (``bench_negotiation.py``).

Chaos overhead: ``scenarios/random-128.yaml`` (1 s simulated) as shipped and with every link failing at random,
best of ``--repeat`` wall times of the simulation; goal: the chaos run costs no more than 20 % more. Two
intensities: ``chaos`` (each link's mean time between failures 20 s, to repair 0.2 s: about 8 cuts in the
second, each detected by heartbeats and rerouted around) and ``storm`` (2 s and 0.1 s: about 80 cuts, some 8
of the 160 links down at any time; a stress test, not the goal's case).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

import yaml

from peers import machine
from qfabric.control import EntanglementService
from qfabric.scenario import parse_scenario, run_scenario
from qfabric.scenario.build import build_network

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "random-128.yaml"


def decision_times(nodes: int, requests: int) -> dict:
    data = yaml.safe_load(SCENARIO.read_text())
    data["topology"].update(nodes=nodes, edges=round(1.25 * nodes))
    data["name"] = f"random-{nodes}"
    data["duration_s"] = requests * 1e-3 + 1e-3
    data["tenants"] = [{"name": "health", "quota": {"max_concurrent_requests": requests}},
                       {"name": "finance", "secret": "finance-hmac-key-2026", "quota": {"max_memory_qubits": 100000}},
                       {"name": "research", "quota": {"max_pairs_per_window": 10**6, "window_s": 1}}]
    rng = random.Random(5)
    names = [f"n{i}" for i in range(nodes)]
    tenants = ["health", "finance", "research"]
    data["requests"] = []
    for k in range(requests):
        a, b = rng.sample(names, 2)
        data["requests"].append({"name": f"q{k}", "from": a, "to": b, "tenant": tenants[k % 3],
                                 "start_s": k * 1e-3, "end_s": k * 1e-3 + 5e-4, "cutoff_s": 0.005})
    times: list[float] = []
    original = EntanglementService._arrive

    def timed(self, record):
        t0 = time.perf_counter()
        original(self, record)
        times.append(time.perf_counter() - t0)

    EntanglementService._arrive = timed  # the arrivals are scheduled when the scenario is built
    try:
        built = build_network(parse_scenario(data, "decision"))
        built.sim.run(until=round(data["duration_s"] * 1e12))
    finally:
        EntanglementService._arrive = original
    service = built.service
    admitted = sum(r.refused is None for r in service.records.values())
    ms = sorted(t * 1e3 for t in times)
    return {"nodes": nodes, "requests": len(ms), "admitted": admitted, "median_ms": statistics.median(ms),
            "p95_ms": ms[int(0.95 * (len(ms) - 1))], "max_ms": ms[-1]}


INTENSITIES = {"chaos": (20.0, 0.2), "storm": (2.0, 0.1)}


def chaos_overhead(repeat: int) -> dict:
    data = yaml.safe_load(SCENARIO.read_text())
    runs = {"plain": parse_scenario(data, "random-128")}
    for name, (mtbf, mttr) in INTENSITIES.items():
        runs[name] = parse_scenario(data | {"random_faults": {"links": "all", "mtbf_s": mtbf, "mttr_s": mttr}},
                                    f"random-128-{name}")
    out = {}
    for name, sc in runs.items():
        best, faults = None, 0
        for _ in range(repeat):
            report = run_scenario(sc)
            wall = report["performance"]["wall_time_s"]
            best = wall if best is None else min(best, wall)
            faults = len(report["faults"])
        out[name] = {"wall_s": best, "faults": faults}
    for name in INTENSITIES:
        out[name]["overhead"] = out[name]["wall_s"] / out["plain"]["wall_s"] - 1
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=512)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    decision = decision_times(args.nodes, args.requests)
    print(f"decision per request at {decision['nodes']} nodes ({decision['requests']} requests, "
          f"{decision['admitted']} admitted): median {decision['median_ms']:.3f} ms, p95 {decision['p95_ms']:.3f} ms, "
          f"max {decision['max_ms']:.3f} ms  (goal < 1 ms)")
    chaos = chaos_overhead(args.repeat)
    print(f"random-128, 1 s simulated: {chaos['plain']['wall_s']:.3f} s wall without faults")
    for name in INTENSITIES:
        print(f"  {name}: {chaos[name]['faults']} random cuts, {chaos[name]['wall_s']:.3f} s wall: overhead "
              f"{chaos[name]['overhead']:+.1%}" + ("  (goal <= +20 %)" if name == "chaos" else ""))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "decision": decision, "chaos": chaos}, indent=1))


if __name__ == "__main__":
    main()
