"""What qfabric's protection costs a federated round: protected vs plain Flower rounds, same run.

    python benchmarks/bench_federated.py [--rounds 6] [--epochs 1 2 5 10] [--hidden 384,256 1024,512]

The default scenario (three hospitals, scikit-learn's breast-cancer data, hybrid policy, differential
privacy) with the model and local training varied. Each variant runs the federation twice in one process
on the in-process Flower grid: plain (Flower's FedAvg, no protection) and protected (SecureFedAvg with the
qfabric mod, a real KME over mutual TLS on 127.0.0.1). Both rounds include the server-side evaluation.
Round wall times are those of all parties run one after another (the in-process grid runs the clients in
turn); the protected round is split into training, cryptography and waiting for the KME (ETSI 014).
The first round of each run is left out (Flower and the KME warm up, nodes introduce themselves); the
table gives medians over the other rounds. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from statistics import median

from peers import machine
from qfabric.scenario import load_scenario
from qfabric.scenario.federation import run_federation

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "three-hospitals.yaml"


def measure(hidden: list[int], epochs: int, rounds: int) -> dict:
    scenario = load_scenario(SCENARIO)
    spec = scenario.federated.model_copy(update={"hidden_layers": hidden, "local_epochs": epochs, "rounds": rounds})
    report = run_federation(scenario.model_copy(update={"federated": spec}))
    protected = [r for r in report["per_round"] if r["round"] > 1]
    plain = [p["wall_s"] for p in report["curves"]["plain"] if p["round"] > 1]
    secure = [p["wall_s"] - r["supply_simulation_s"]  # the network simulation is not the organisations' time
              for p, r in zip(report["curves"]["secure"][2:], protected, strict=True)]
    return {"params": report["model"]["parameters"], "epochs": epochs, "plain_s": median(plain),
            "protected_s": median(secure), "train_s": median(r["train_seconds"] for r in protected),
            "crypto_s": median(r["crypto_seconds"] for r in protected),
            "kme_s": median(r["kme_seconds"] for r in protected),
            "requests": median(r["kme_requests"] for r in protected)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=6, help="rounds per run (the first is left out)")
    ap.add_argument("--epochs", type=int, nargs="+", default=[1, 2, 5, 10])
    ap.add_argument("--hidden", nargs="+", default=["384,256", "1024,512"], help="hidden layer sizes")
    a = ap.parse_args()
    print(f"machine: {machine()}; scenario {SCENARIO.name}, {a.rounds - 1} measured rounds per variant")
    print("| parameters | local epochs | plain round ms | protected round ms | train ms | crypto ms | KME ms "
          "| KME requests | added |")
    print("|---|---|---|---|---|---|---|---|---|")
    for hidden in a.hidden:
        for epochs in a.epochs:
            r = measure([int(h) for h in hidden.split(",")], epochs, a.rounds)
            added = r["protected_s"] / r["plain_s"] - 1
            print(f"| {r['params']:,} | {epochs} | {r['plain_s'] * 1e3:.1f} | {r['protected_s'] * 1e3:.1f} | "
                  f"{r['train_s'] * 1e3:.1f} | {r['crypto_s'] * 1e3:.1f} | {r['kme_s'] * 1e3:.1f} | "
                  f"{r['requests']:.0f} | {added:+.1%} |", flush=True)


if __name__ == "__main__":
    main()
