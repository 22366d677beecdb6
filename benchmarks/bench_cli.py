"""Start-up time of the command line: ``qfabric --help`` and ``qfabric validate`` against the interpreter alone.

    python benchmarks/bench_cli.py [--runs 15]

Each command runs ``--runs`` times as a fresh process; the table gives the median and the minimum wall time
and the median CPU time (user + system of the child). Goal (issue 14): under 0.3 s for both. The peers in
the same run: ``python -c pass`` (what any Python command costs) and ``python -c "import numpy"``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from peers import machine

ROOT = Path(__file__).resolve().parents[1]
QFABRIC = [sys.executable, "-m", "qfabric.cli.main"]
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "python -c 'import numpy'": [sys.executable, "-c", "import numpy"],
    "qfabric --help": [*QFABRIC, "--help"],
    "qfabric validate three-hospitals.yaml": [*QFABRIC, "validate", str(ROOT / "scenarios" / "three-hospitals.yaml")],
    "qfabric validate metro-mesh.yaml": [*QFABRIC, "validate", str(ROOT / "scenarios" / "metro-mesh.yaml")],
}
GOAL_S = 0.3


def timed(command: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of ``command`` (its output discarded; it must succeed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=dict(os.environ, COLUMNS="100"))
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    print(machine())
    print(f"load average: {os.getloadavg()[0]:.2f}; {args.runs} runs each, interleaved\n")
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in COMMANDS}
    for command in COMMANDS.values():
        timed(command)  # warm the file cache and the bytecode
    for _ in range(args.runs):
        for name, command in COMMANDS.items():
            samples[name].append(timed(command))
    base = statistics.median(w for w, _ in samples["python -c pass"])
    print(f"{'command':42s} {'median s':>9s} {'min s':>7s} {'CPU s':>7s} {'- python':>9s}  goal")
    for name, runs in samples.items():
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        median = statistics.median(walls)
        verdict = ("" if not name.startswith("qfabric") else
                   "met" if median < GOAL_S else f"missed ({median / GOAL_S:.1f}x)")
        print(f"{name:42s} {median:9.3f} {min(walls):7.3f} {statistics.median(cpus):7.3f} {median - base:9.3f}  "
              f"{verdict}")


if __name__ == "__main__":
    main()
