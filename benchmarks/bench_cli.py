"""Start-up time of the command line: ``qfabric --help`` and ``qfabric validate`` against the interpreter alone.

    python benchmarks/bench_cli.py [--runs 15] [--scenarios all|NAME ...] [--compare SRC] [--imports]

Each command runs ``--runs`` times as a fresh process, all commands interleaved; the table gives the median and
the minimum wall time and the median CPU time (user + system of the child). Goal (issue 14): under 0.3 s for
``--help`` and for ``validate`` on every shipped scenario. The peers in the same run: ``python -c pass`` (what any
Python command costs) and ``python -c "import numpy"``. Every command runs once first, which writes its bytecode
(in a directory of this run's own, as an installed package has it).

``--compare SRC`` times every qfabric command a second time with the ``qfabric`` package found in ``SRC`` (a
``src`` directory, e.g. of an older commit: ``git archive HEAD src | tar -x -C /tmp/before``, plus the compiled
``*.so`` files copied next to their sources) in the same run, and adds the ratios of the two medians (wall and
CPU time; CPU time moves less when other work shares the machine).

``--imports`` prints, for ``validate`` on the first scenario, the packages whose modules take the most time to
import (``python -X importtime``, one run), which is where the time goes.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from peers import machine

ROOT = Path(__file__).resolve().parents[1]
QFABRIC = [sys.executable, "-c", "from qfabric.cli.entry import main; main()"]  # what the installed qfabric runs
PEERS = {"python -c pass": [sys.executable, "-c", "pass"],
         "python -c 'import numpy'": [sys.executable, "-c", "import numpy"]}
GOAL_S = 0.3


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of ``command`` (its output discarded; it must succeed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def commands(scenarios: list[Path]) -> dict[str, list[str]]:
    """The qfabric commands to time, by the name the table shows."""
    out = {"qfabric --help": [*QFABRIC, "--help"]}
    for path in scenarios:
        out[f"qfabric validate {path.name}"] = [*QFABRIC, "validate", str(path)]
    return out


def import_costs(command: list[str], env: dict[str, str], top: int = 12) -> list[tuple[str, float]]:
    """The packages whose modules ``command`` spends most time importing (their own time, ms, summed over
    their modules, so the numbers add up to the whole import time), most costly first."""
    result = subprocess.run([command[0], "-X", "importtime", *command[1:]], capture_output=True, text=True, env=env)
    costs: dict[str, float] = {}
    for line in result.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s+(\S+)", line)
        if match:
            name = match.group(2).split(".")[0]
            costs[name] = costs.get(name, 0.0) + int(match.group(1)) / 1000
    return sorted(costs.items(), key=lambda item: -item[1])[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--scenarios", nargs="+", default=["all"],
                        help="scenario files in scenarios/ to validate (default: all of them)")
    parser.add_argument("--compare", type=Path, help="also time the qfabric package in this src directory")
    parser.add_argument("--imports", action="store_true", help="print what validate spends importing")
    args = parser.parse_args()
    shipped = sorted((ROOT / "scenarios").glob("*.yaml"))
    scenarios = shipped if args.scenarios == ["all"] else [ROOT / "scenarios" / name for name in args.scenarios]
    # Bytecode is cached as an installed package's is (the warm-up run writes it), in a directory of this run's
    # own: PYTHONDONTWRITEBYTECODE in the caller's environment would have every run compile qfabric's sources.
    cache = tempfile.mkdtemp(prefix="bench-cli-pycache-")
    env = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    env.update(COLUMNS="100", PYTHONPYCACHEPREFIX=cache)
    envs = {"": env}
    if args.compare is not None:
        envs[" (compare)"] = dict(env, PYTHONPATH=str(args.compare.resolve()))
    runs: dict[str, tuple[list[str], dict[str, str]]] = {name: (cmd, env) for name, cmd in PEERS.items()}
    for suffix, run_env in envs.items():
        for name, cmd in commands(scenarios).items():
            runs[name + suffix] = (cmd, run_env)
    print(machine())
    print(f"load average before: {os.getloadavg()[0]:.2f}; {args.runs} runs each, interleaved\n")
    for name, (cmd, run_env) in list(runs.items()):
        try:
            timed(cmd, run_env)  # warm the file cache and the bytecode
        except subprocess.CalledProcessError:
            print(f"skipped {name}: it fails")
            del runs[name]
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    for _ in range(args.runs):
        for name, (cmd, run_env) in runs.items():
            samples[name].append(timed(cmd, run_env))
    print(f"load average after: {os.getloadavg()[0]:.2f}\n")
    base = statistics.median(w for w, _ in samples["python -c pass"])
    medians = {name: statistics.median(w for w, _ in got) for name, got in samples.items()}
    cpu = {name: statistics.median(c for _, c in got) for name, got in samples.items()}
    print(f"{'command':56s} {'median s':>9s} {'min s':>7s} {'CPU s':>7s} {'- python':>9s}  goal")
    for name, got in samples.items():
        walls, cpus = [w for w, _ in got], [c for _, c in got]
        median = medians[name]
        verdict = ("" if not name.startswith("qfabric") else
                   "met" if median < GOAL_S else f"missed ({median / GOAL_S:.1f}x)")
        if name + " (compare)" in medians:  # CPU time is the steadier of the two on a loaded machine
            other = name + " (compare)"
            verdict += f"; compare / this: wall {medians[other] / median:.2f}, CPU {cpu[other] / cpu[name]:.2f}"
        print(f"{name:56s} {median:9.3f} {min(walls):7.3f} {statistics.median(cpus):7.3f} {median - base:9.3f}  "
              f"{verdict}")
    if args.imports:
        for suffix, run_env in envs.items():
            name = f"qfabric validate {scenarios[0].name}"
            costs = import_costs(commands(scenarios)[name], run_env)
            print(f"\n{name}{suffix}: import time by package (ms, -X importtime, one run): "
                  + ", ".join(f"{pkg} {ms:.0f}" for pkg, ms in costs))
    shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
