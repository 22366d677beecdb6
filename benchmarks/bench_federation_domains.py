"""What keys forwarded between KME domains cost a federation: scenarios/federated-domains.yaml (four KMEs, each
hospital its own, the aggregator at the hub's) against the same network, seed and federation under one KME.

    python benchmarks/bench_federation_domains.py [--repeats 3] [--rounds 10]

Both variants run alternately in one process (the QKD links are distilled once for both), ``--repeats`` times
each, without the comparison runs (``compare_plain: false``), so the medians are comparable on a loaded machine.
Columns: setting up the KMEs (PKI, stores, key supplies, first distillation and warm-up, servers),
waiting for the KMEs in round 1 (every ETSI 014 request of the run: the keys of all rounds are fetched in one
request per pair and side, and each across domains is forwarded KME to KME first) and over the run, and the
protected rounds' wall time. The two runs' models are identical (the masks cancel exactly).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from statistics import median

import yaml

from peers import machine
from qfabric.scenario import parse_scenario
from qfabric.scenario.federation import run_federation

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "federated-domains.yaml"


def variant(rounds: int, single: bool):
    data = yaml.safe_load(SCENARIO.read_text())
    data["federated"] |= {"rounds": rounds, "compare_plain": False}
    if single:
        data["kms"]["kmes"] = [{"id": "kme-metro", "nodes": [n["name"] for n in data["nodes"]]}]
    return parse_scenario(data, "one KME" if single else "four KMEs")


def measure(rounds: int, single: bool) -> dict:
    t0 = time.perf_counter()
    fl = run_federation(variant(rounds, single))
    total = time.perf_counter() - t0
    wall = fl["wall_time"]
    return {"setup_s": total - wall["federation_s"], "round1_kme_s": fl["per_round"][0]["kme_seconds"],
            "kme_s": wall["kme_seconds"], "rounds_s": wall["protected_rounds_s"],
            "forwarded": fl["key_supply"]["forwarded_keys"], "accuracy": fl["curves"]["secure"][-1]["accuracy"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=10)
    a = ap.parse_args()
    print(f"machine: {machine()}; {SCENARIO.name}, {a.rounds} rounds, {a.repeats} runs per variant; "
          f"load average {os.getloadavg()[0]:.1f}")
    measure(2, True)  # warm-up: imports and the links' distillation, not measured
    runs: dict[bool, list[dict]] = {True: [], False: []}
    for _ in range(a.repeats):
        for single in (True, False):
            runs[single].append(measure(a.rounds, single))
    cols = ("setup_s", "round1_kme_s", "kme_s", "rounds_s")
    print("| variant | " + " | ".join(cols) + " | keys forwarded | final accuracy |")
    print("|---" * (len(cols) + 3) + "|")
    med = {s: {c: median(r[c] for r in runs[s]) for c in cols} for s in runs}
    for single, label in ((True, "one KME"), (False, "four KMEs (federated-domains)")):
        r = runs[single][-1]
        print(f"| {label} | " + " | ".join(f"{med[single][c]:.3f}" for c in cols)
              + f" | {r['forwarded']} | {r['accuracy']:.4f} |")
    print("| ratio four / one | " + " | ".join(f"{med[False][c] / med[True][c]:.2f}" for c in cols) + " | | |")
    same = {r["accuracy"] for r in runs[True] + runs[False]}
    print(f"final accuracies over all runs: {sorted(same)}; load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
