"""The batch engine vs the event engine on the same chain, and sweep throughput on 1 and 2 local workers and on a
2-worker Dask LocalCluster, in one run.

    python benchmarks/bench_batch.py [--samples 20000] [--trials 2000000] [--points 16] [--duration-s 300]
                                     [--threads 1,2] [--no-sweeps]

Part 1: trials (end-to-end deliveries from an empty chain) per wall second of ``batch_chain`` (numba) on 1 and 2
threads (``threads=``; the same seed gives the same trials on both, checked) and of ``simulate_chain`` (the event
engine, one delivery after another, one thread) on the same discrete chain model, with their means side by side
(they must agree within their standard errors), and the batch engine's trials per CPU second of the process
(per core: less sensitive than wall time to other work on a shared machine). Part 2: one sweep of ``--points``
points of a three-node chain scenario on the event engine (``--engine event``: the scale-out case), timed on one
and two local processes and on a two-worker Dask LocalCluster (127.0.0.1, started before the clock runs).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

from peers import machine
from qfabric.network.batch import batch_chain
from qfabric.network.discrete import simulate_chain
from qfabric.plan.space import parse_set
from qfabric.plan.sweep import make_tasks, run_sweep

CHAINS = [
    # label, segments, p_gen, p_swap, w0, t_coh, cut-off(s), scheme, swap timing, link age
    ("swap-asap 4 seg, p=0.3, ps=0.5, c=3", 4, 0.3, 0.5, 0.95, 40.0, 3, "swap-asap", "simultaneous", "oldest"),
    ("nested 8 seg, p=0.3, ps=0.8, c=4,8,16", 8, 0.3, 0.8, 0.95, 40.0, [4, 8, 16], "nested", "sequential", "reset"),
    ("swap-asap 4 seg, p=0.01, ps=0.9, c=200", 4, 0.01, 0.9, 0.95, 400.0, 200, "swap-asap", "sequential", "reset"),
]

SCENARIO = {
    "name": "bench-chain", "seed": 1,
    "hardware": {"one": {"base": "near-term", "memory": {"capacity": 1}}},
    "nodes": [{"name": "a"}, {"name": "r"}, {"name": "b"}],
    "links": [{"name": "a-r", "between": ["a", "r"], "length_km": 10, "profile": "one"},
              {"name": "r-b", "between": ["r", "b"], "length_km": 10, "profile": "one"}],
    "chain": {"from": "a", "to": "b", "cutoff_s": 0.002, "regenerate_covered": False},
}


def engines(samples: int, trials: int, threads: list[int]) -> list[dict]:
    rows = []
    for _, n, p, ps, w0, tc, cut, scheme, timing, age in CHAINS:  # compile (or load numba's cache) before timing
        batch_chain(n, p, ps, w0, tc, cut, scheme, trials=10, swap_timing=timing, link_age=age)
    for label, n, p, ps, w0, tc, cut, scheme, timing, age in CHAINS:
        args = (n, p, ps, w0, tc, cut, scheme)
        t0 = time.perf_counter()
        event = simulate_chain(*args, samples=samples, seed=1, swap_timing=timing, link_age=age)
        event_s = time.perf_counter() - t0
        row = {"chain": label, "event_trials_per_s": samples / event_s}
        runs = []
        for k in threads:
            cpu = time.process_time()
            batch = batch_chain(*args, trials=trials, seed=1, swap_timing=timing, link_age=age, threads=k)
            row[f"batch_trials_per_s_{k}t"] = batch.trials_per_second
            row[f"batch_trials_per_cpu_s_{k}t"] = trials / (time.process_time() - cpu)
            runs.append(batch)
        assert all(r.mean_waiting_time == runs[0].mean_waiting_time for r in runs), "threads changed the trials"
        batch = runs[0]
        z = (batch.mean_waiting_time - event.mean_waiting_time) / math.hypot(batch.waiting_time_stderr,
                                                                             event.waiting_time_stderr)
        row |= {"ratio": row[f"batch_trials_per_s_{threads[0]}t"] / row["event_trials_per_s"],
                "event_mean_wait": event.mean_waiting_time, "batch_mean_wait": batch.mean_waiting_time, "z": z}
        rows.append(row)
        print(json.dumps(rows[-1]))
    return rows


def sweeps(points: int, duration_s: float) -> list[dict]:
    from distributed import Client, LocalCluster

    data = SCENARIO | {"duration_s": duration_s}
    step = 20 / max(points - 1, 1)
    axis = parse_set(f"links[*].length_km=5:{5 + step * (points - 1):.6g}:{step:.6g}")
    tasks = make_tasks(data, [axis], engine="event")
    assert len(tasks) == points, len(tasks)
    rows = []
    run_sweep(tasks[:2], workers=0)  # imports and numba cache loaded in this process
    for label, kwargs in (("1 local process", {"workers": 1}), ("2 local processes", {"workers": 2})):
        t0 = time.perf_counter()
        result = run_sweep(tasks, **kwargs)
        wall = time.perf_counter() - t0
        assert result.failed == 0
        rows.append({"backend": label, "points": points, "wall_s": wall, "points_per_s": points / wall})
        print(json.dumps(rows[-1]))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        run_sweep(tasks[:2], scheduler=client)  # the workers import qfabric once, before the clock
        t0 = time.perf_counter()
        result = run_sweep(tasks, scheduler=client)
        wall = time.perf_counter() - t0
        assert result.failed == 0
        rows.append({"backend": "Dask LocalCluster, 2 workers", "points": points, "wall_s": wall,
                     "points_per_s": points / wall})
        print(json.dumps(rows[-1]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20_000, help="event engine deliveries per chain")
    parser.add_argument("--trials", type=int, default=2_000_000, help="batch engine deliveries per chain")
    parser.add_argument("--threads", default="1,2", help="batch engine thread counts, comma-separated")
    parser.add_argument("--points", type=int, default=16, help="sweep points")
    parser.add_argument("--duration-s", type=float, default=300.0, help="simulated time of each sweep point")
    parser.add_argument("--no-sweeps", action="store_true", help="only the engines (part 1)")
    args = parser.parse_args()
    threads = [int(k) for k in args.threads.split(",")]
    print(f"# {machine()}; load average before: {os.getloadavg()[0]:.1f}")
    engine_rows = engines(args.samples, args.trials, threads)
    print(f"load average after the engines: {os.getloadavg()[0]:.1f}")
    sweep_rows = [] if args.no_sweeps else sweeps(args.points, args.duration_s)
    batch_heads = " | ".join(f"batch trials/s, {k} thread{'s' if k > 1 else ''}" for k in threads)
    print(f"\n| chain | event engine trials/s | {batch_heads} | batch ({threads[0]}) / event | "
          "batch trials per CPU s (1 thread) | mean wait (event, batch) | z |")
    print("|---|---|" + "---|" * len(threads) + "---|---|---|---|")
    for r in engine_rows:
        batch_cells = " | ".join(f"{r[f'batch_trials_per_s_{k}t']:,.0f}" for k in threads)
        print(f"| {r['chain']} | {r['event_trials_per_s']:,.0f} | {batch_cells} | {r['ratio']:,.0f}x | "
              f"{r[f'batch_trials_per_cpu_s_{threads[0]}t']:,.0f} | "
              f"{r['event_mean_wait']:.3f}, {r['batch_mean_wait']:.3f} | {r['z']:+.2f} |")
    print(f"\nload average after: {os.getloadavg()[0]:.1f} (2 cores shared with other work: scaling needs idle cores)")
    if not sweep_rows:
        return
    base = sweep_rows[0]["points_per_s"]
    print("\n| backend | points | wall s | points/s | vs 1 process |")
    print("|---|---|---|---|---|")
    for r in sweep_rows:
        print(f"| {r['backend']} | {r['points']} | {r['wall_s']:.2f} | {r['points_per_s']:.2f} | "
              f"{r['points_per_s'] / base:.2f}x |")


if __name__ == "__main__":
    main()
