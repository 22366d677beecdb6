"""Events per second of the bare event kernel, side by side with SimPy in the same run.

    python benchmarks/bench_kernel.py [--events 1000000]

Workload: 1,000 independent timers that each reschedule themselves with a random delay until
the total number of events is reached (a heap of ~1,000 pending events, as in a busy network).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from qfabric.sim import Simulator

try:
    import simpy
except ImportError:  # pragma: no cover - optional peer
    simpy = None


def bench_qfabric(total: int, timers: int = 1000) -> float:
    sim = Simulator(seed=1)
    delays = np.random.default_rng(1).integers(1, 1000, size=total + timers).tolist()
    counter = iter(range(total))

    def tick():
        i = next(counter, None)
        if i is not None:
            sim.schedule(delays[i], tick)

    for k in range(timers):
        sim.schedule(delays[total + k], tick)
    t0 = time.perf_counter()
    sim.run()
    wall = time.perf_counter() - t0
    return sim.events_processed / wall


def bench_simpy(total: int, timers: int = 1000) -> float | None:
    if simpy is None:
        return None
    env = simpy.Environment()
    delays = np.random.default_rng(1).integers(1, 1000, size=total + timers).tolist()
    state = {"left": total, "i": 0}

    def timer(first):
        yield env.timeout(first)
        while state["left"] > 0:
            state["left"] -= 1
            state["i"] += 1
            yield env.timeout(delays[state["i"]])

    for k in range(timers):
        env.process(timer(delays[total + k]))
    t0 = time.perf_counter()
    env.run()
    wall = time.perf_counter() - t0
    return (total + timers) / wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    from peers import machine

    q = max(bench_qfabric(a.events) for _ in range(a.repeat))
    s = bench_simpy(a.events)
    s = max([s] + [bench_simpy(a.events) for _ in range(a.repeat - 1)]) if s else None
    print(f"machine: {machine()}")
    print(f"qfabric kernel: {q:,.0f} events/s (best of {a.repeat}, {a.events:,} events)")
    if s:
        print(f"SimPy {simpy.__version__}: {s:,.0f} events/s  -> qfabric / SimPy = {q / s:.2f}x")
    else:
        print("SimPy not installed (pip install simpy) - no peer ratio")


if __name__ == "__main__":
    main()
