"""qfabric vs SeQUeNCe on random multi-request networks, the same workload file in the same run; a 1000-node chain.

    python bench_network.py [--nodes 16 32 64 128 256 512] [--repeat 3] [--peer-wall-limit 400] [--json out.json]

For each size N, ``../shared/peers/make_randomtopo.py --nodes N --edges 1.25N --seed 1`` writes one workload file
(format ``qfabric-peer-workload/1``: a random tree plus extra links, 30 km links with a midpoint Barrett-Kok
station, 2 memory qubits per link end, T2 = 5 ms, pairs discarded 5 ms after creation, Werner F = 0.99 pairs,
swaps succeeding half the time, max(2, N/10) requests 2-5 hops apart on hop-count routes, 1 s simulated).
SeQUeNCe 1.3.1 runs it with ``seq_network.py`` (its run loop's wall time, stopped at the wall limit: then its wall
time per simulated second is the run's wall time over the simulated time it reached); qfabric runs the same file
(``qfabric run w.json``: statistical multiplexing, swap-asap), best of ``--repeat``, wall time of the simulation
including its progress checks. Where the two models differ is written in docs/BENCHMARKS.md.

The chain: 1000 nodes, 999 links of 10 km, the ``near-term`` profile with one memory qubit per link end,
deterministic swaps, a 0.1 s cut-off, swap-asap, 1 s simulated: it must keep delivering.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from peers import PEERS, machine, run_peer
from qfabric.scenario import load_scenario, parse_scenario, run_scenario

HERE = Path(__file__).resolve().parent


def workload(nodes: int, workdir: Path) -> Path:
    path = workdir / f"w{nodes}.json"
    subprocess.run([sys.executable, str(PEERS / "make_randomtopo.py"), "--nodes", str(nodes), "--edges",
                    str(round(1.25 * nodes)), "--seed", "1", "-o", str(path)], check=True)
    return path


def time_qfabric(scenario, repeat: int) -> tuple[dict, float]:
    best, report = None, None
    for _ in range(repeat):
        report = run_scenario(scenario)
        wall = report["performance"]["wall_s_per_simulated_s"]
        best = wall if best is None else min(best, wall)
    return report, best


def chain_scenario(nodes: int = 1000) -> dict:
    names = [f"n{i}" for i in range(nodes)]
    return {
        "name": f"chain-{nodes}", "seed": 1, "duration_s": 1.0,
        "hardware": {"one-qubit": {"base": "near-term", "memory": {"capacity": 1}, "swap_success_probability": 1.0}},
        "nodes": [{"name": n} for n in names],
        "links": [{"between": [a, b], "length_km": 10, "profile": "one-qubit", "scheme": "double-click"}
                  for a, b in zip(names, names[1:], strict=False)],
        "chain": {"from": names[0], "to": names[-1], "cutoff_s": 0.1},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, nargs="+", default=[16, 32, 64, 128, 256, 512])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--peer-wall-limit", type=float, default=400.0, help="stop SeQUeNCe after this many s of run")
    ap.add_argument("--skip-peer", action="store_true", help="qfabric only (no ratio)")
    ap.add_argument("--workdir", type=Path, default=HERE / ".workloads")
    ap.add_argument("--json", type=Path, help="write the raw results here")
    a = ap.parse_args()
    a.workdir.mkdir(exist_ok=True)
    rows, per_request = [], []
    for n in a.nodes:
        path = workload(n, a.workdir)
        peer = None
        if not a.skip_peer:
            peer = run_peer("seq_network.py", str(path), "--wall-limit", str(a.peer_wall_limit),
                            timeout=a.peer_wall_limit + 900)
        report, wall = time_qfabric(load_scenario(path), a.repeat)
        perf = report["performance"]
        data = json.loads(path.read_text())
        row = {"nodes": n, "links": len(data["links"]), "requests": len(data["requests"]),
               "qfabric_wall_s_per_sim_s": wall, "qfabric_events": perf["events"],
               "qfabric_events_per_wall_s": perf["events"] / wall,
               "qfabric_pairs": sum(r["pairs_delivered"] for r in report["requests"])}
        if peer is not None:
            peer_wall = peer["run_wall_s"] / peer["sim_time_s"]
            row |= {"sequence_wall_s_per_sim_s": peer_wall, "sequence_sim_fraction": peer["sim_fraction"],
                    "sequence_events": peer["events_executed"], "sequence_setup_s": peer["setup_s"],
                    "sequence_pairs": sum(r["pairs"] for r in peer["requests"]), "ratio": peer_wall / wall}
        rows.append(row)
        peer_requests = peer["requests"] if peer else [{}] * len(report["requests"])
        for mine, theirs in zip(report["requests"], peer_requests, strict=True):
            per_request.append({
                "nodes": n, "request": mine["name"], "hops": mine["hops"][0],
                "sequence_reservation": theirs.get("reservation"), "sequence_pairs": theirs.get("pairs"),
                "sequence_fidelity": theirs.get("mean_fidelity"),
                "qfabric_pairs": mine["pairs_delivered"], "qfabric_fidelity": mine["fidelity"].get("mean"),
            })
        ratio = f" | {row['ratio']:.0f}x" if peer else ""
        print(f"{n} nodes: qfabric {wall:.3f} s per simulated s, {row['qfabric_events_per_wall_s']:,.0f} events/s"
              + (f" | SeQUeNCe {row['sequence_wall_s_per_sim_s']:.1f} s per simulated s" if peer else "") + ratio,
              flush=True)
    chain_report, chain_wall = time_qfabric(parse_scenario(chain_scenario()), 1)
    chain = {"nodes": 1000, "wall_s_per_sim_s": chain_wall, "pairs": chain_report["requests"][0]["pairs_delivered"],
             "stalled": chain_report["requests"][0]["stalled_since_s"], "events": chain_report["performance"]["events"]}
    print(f"1000-node chain: {chain['pairs']} pairs in 1 s simulated, {chain_wall:.2f} s wall, stalled: "
          f"{chain['stalled']}")

    print(f"\nmachine: {machine()}")
    print("| nodes / links | requests | SeQUeNCe wall s per sim s | qfabric wall s per sim s | SeQUeNCe / qfabric "
          "| qfabric events/s | SeQUeNCe events | qfabric events | pairs (SeQUeNCe / qfabric) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        seq = r.get("sequence_wall_s_per_sim_s")
        frac = r.get("sequence_sim_fraction", 1.0)
        seq_text = "-" if seq is None else f"{seq:.1f}" + (f" ({frac:.2f} s reached)" if frac < 1 else "")
        print(f"| {r['nodes']} / {r['links']} | {r['requests']} | {seq_text} | {r['qfabric_wall_s_per_sim_s']:.3f} | "
              f"{'-' if seq is None else format(r['ratio'], '.0f') + 'x'} | {r['qfabric_events_per_wall_s']:,.0f} | "
              f"{r.get('sequence_events', '-')} | {r['qfabric_events']} | {r.get('sequence_pairs', '-')} / "
              f"{r['qfabric_pairs']} |")
    print("\n| nodes | request | hops | SeQUeNCe reservation | SeQUeNCe pairs | SeQUeNCe F | qfabric pairs "
          "| qfabric F |")
    print("|---|---|---|---|---|---|---|---|")
    for r in per_request:
        sf, qf = r["sequence_fidelity"], r["qfabric_fidelity"]
        print(f"| {r['nodes']} | {r['request']} | {r['hops']} | {r['sequence_reservation'] or '-'} | "
              f"{'-' if r['sequence_pairs'] is None else r['sequence_pairs']} | {'-' if sf is None else f'{sf:.4f}'} | "
              f"{r['qfabric_pairs']} | {'-' if qf is None else f'{qf:.4f}'} |")
    medians = statistics.median(r["qfabric_events_per_wall_s"] for r in rows)
    print(f"\nqfabric events per wall second: median {medians:,.0f}")
    if a.json:
        a.json.write_text(json.dumps({"machine": machine(), "rows": rows, "requests": per_request, "chain": chain},
                                     indent=2))


if __name__ == "__main__":
    main()
