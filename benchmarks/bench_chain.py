"""qfabric vs SeQUeNCe on the same linear repeater chain, in one run; plus the default scenario's speed.

    python benchmarks/bench_chain.py [--routers 2 3 5 9] [--repeat 3]

The chain is SeQUeNCe's (``../shared/peers/seq_chain.py``): routers 10 km apart, a BSM station
in the middle of each link, 0.2 dB/km, perfect detectors, memories of raw fidelity 0.9 and 2 s
coherence time, 5 memories requested end to end for a 5 s window, 1 ms classical channels.
qfabric is configured to the same physics:

* SeQUeNCe's "single-heralded" generation is two rounds that each succeed when the photon
  reaches the station: ``p = eta_arm^2 / 2`` (qfabric's double-click), and the pair is a Werner
  state of fidelity 0.9 (qfabric: emission fidelity chosen to give exactly that);
* each attempt waits for a negotiation and a result message per round over the 1 ms classical
  channels: 4 ms of messages plus the photons' flight per attempt (qfabric: herald latency 4 ms on
  top of the fibre delay; swap messages 1 ms per hop);
* its memories decohere by a Pauli channel with x = y = z rates 1/(3 T): the Werner parameter
  decays as exp(-4t / 3T) per memory, i.e. qfabric's depolarising time 3T/4 = 1.5 s;
* memories expire 2 s after entanglement; swaps are ideal and twirled;
* SeQUeNCe's reservation rules swap in the doubling order (a node swaps once its memories share
  pairs with its partners in the halved path): qfabric's ``nested`` scheme, in which a node learns
  of a lower-level swap by its message before it can swap again. The chains here have 1, 2, 4 and
  8 links, so the two orders coincide exactly;
* before swapping, SeQUeNCe's swap rule asks both far ends through their resource managers and
  waits for the answers, holding the four memories for that round trip (qfabric: ``swap_handshake``);
* its topology generator joins every two routers by a direct 1 ms classical channel, so every
  message takes 1 ms whatever the distance (qfabric: ``classical_mesh_latency_s: 0.001``).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

from peers import machine, run_peer
from qfabric.scenario import load_scenario, parse_scenario, run_scenario

HERALD_LATENCY_S = 4e-3  # two rounds, each a negotiation and a result message over 1 ms channels
WINDOW_S = 5.0


def matched_scenario(routers: int, seed: int) -> dict:
    w_pair = (4 * 0.9 - 1) / 3
    emission_fidelity = (3 * math.sqrt(w_pair) + 1) / 4  # both emissions together give F = 0.9
    names = [f"router_{i}" for i in range(routers)]
    return {
        "name": f"sequence-chain-{routers}",
        "seed": seed,
        "duration_s": WINDOW_S,
        "hardware": {"sequence-like": {
            "base": "ideal",
            "memory": {"depolarising_time_s": 1.5, "efficiency": 1.0, "capacity": 5},
            "source": {"attempt_rate_hz": 1e9, "emission_fidelity": emission_fidelity},
            "station": {"detector": {"efficiency": 1.0, "dark_count_probability": 0.0}, "visibility": 1.0},
        }},
        "nodes": [{"name": n} for n in names],
        "links": [{"between": [a, b], "length_km": 10, "profile": "sequence-like", "scheme": "double-click",
                   "classical_latency_s": 1e-3, "herald_latency_s": HERALD_LATENCY_S}
                  for a, b in zip(names, names[1:], strict=False)],
        "chain": {"from": names[0], "to": names[-1], "scheme": "nested", "swap_handshake": True,
                  "classical_mesh_latency_s": 1e-3},
    }


def time_qfabric(data: dict, repeat: int) -> tuple[dict, float]:
    scenario = parse_scenario(data)
    walls, report = [], None
    for _ in range(repeat):
        report = run_scenario(scenario)
        walls.append(report["performance"]["wall_time_s"])
    return report, min(walls)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--routers", type=int, nargs="+", default=[2, 3, 5, 9])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path, help="write the raw results here")
    a = ap.parse_args()
    rows = []
    for n in a.routers:
        target = "0.5" if n < 9 else "0.3"
        peer = run_peer("seq_chain.py", "--nodes", str(n), "--fidelity", target)
        report, wall = time_qfabric(matched_scenario(n, seed=0), a.repeat)
        e2e = report["requests"][0]
        rows.append({
            "routers": n,
            "sequence_pairs": peer["pairs_delivered"], "sequence_fidelity": peer["mean_fidelity"],
            "sequence_wall_s": peer["run_wall_s"], "sequence_events": peer["events_executed"],
            "qfabric_pairs": e2e["pairs_delivered"], "qfabric_pairs_ci95": [x * WINDOW_S for x in e2e["rate_ci95_hz"]],
            "qfabric_fidelity": e2e["fidelity"].get("mean"), "qfabric_wall_s": wall,
            "qfabric_events": report["performance"]["events"],
            "speedup": peer["run_wall_s"] / wall,
        })
        r = rows[-1]
        print(f"{n} routers: SeQUeNCe {r['sequence_pairs']} pairs F={r['sequence_fidelity']} "
              f"in {r['sequence_wall_s']:.2f}s"
              f" | qfabric {r['qfabric_pairs']} pairs F={r['qfabric_fidelity']:.4f} in {r['qfabric_wall_s']:.4f}s"
              f" | {r['speedup']:.0f}x", flush=True)
    default = load_scenario(Path(__file__).resolve().parents[1] / "scenarios" / "metro-chain.yaml")
    t0 = time.perf_counter()
    per_sim_s = statistics.median(run_scenario(default)["performance"]["wall_s_per_simulated_s"]
                                  for _ in range(a.repeat))
    print(f"\nmachine: {machine()}")
    print("| routers | SeQUeNCe pairs | qfabric pairs (95% CI) | SeQUeNCe F | qfabric F | SeQUeNCe wall s "
          "| qfabric wall s | SeQUeNCe / qfabric |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        lo, hi = r["qfabric_pairs_ci95"]
        print(f"| {r['routers']} | {r['sequence_pairs']} | {r['qfabric_pairs']} ({lo:.0f}-{hi:.0f}) | "
              f"{r['sequence_fidelity']:.4f} | {r['qfabric_fidelity']:.4f} | {r['sequence_wall_s']:.2f} | "
              f"{r['qfabric_wall_s']:.4f} | {r['speedup']:.0f}x |")
    print(f"\ndefault scenario (metro-chain): {per_sim_s * 1e3:.2f} ms wall per simulated second "
          f"(median of {a.repeat}; {time.perf_counter() - t0:.1f} s total)")
    if a.json:
        a.json.write_text(json.dumps({"machine": machine(), "rows": rows, "default_wall_s_per_sim_s": per_sim_s},
                                     indent=2))


if __name__ == "__main__":
    main()
