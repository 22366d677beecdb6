"""What qfabric's protection adds to a federated round: protected vs plain Flower rounds, same run.

    python benchmarks/bench_federated.py [--rounds 6] [--epochs 1 2 5 10] [--hidden 384,256 1024,512]

The default scenario (three hospitals, scikit-learn's breast-cancer data, hybrid policy, differential
privacy) with the model and the local training varied. Each variant runs the federation twice in one
process on the in-process Flower grid: plain (Flower's FedAvg, no protection) and protected (SecureFedAvg
with the qfabric mod, a real KME over mutual TLS on 127.0.0.1). All parties run one after another (the
in-process grid runs the clients in turn), so a round's wall time is the sum of everyone's work.

Training does the same work in both runs, but on these shared machines identical training varies by
+-30 % from run to run, which would swamp a 10 % effect. So the model's ``train`` is timed in both runs
and what protection adds is measured on the rest of the round: (protected round - its training) - (plain
round - its training). "added" is that over the plain round. The protected rest is split into
cryptography, waiting for the KME (ETSI 014) and other (extra Flower messages, serialisation).
The first round of each run is left out (warm-up, nodes introduce themselves); medians over the others.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from statistics import median

from peers import machine
from qfabric.apps.federated import hospital, model
from qfabric.scenario import load_scenario
from qfabric.scenario.federation import run_federation

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "three-hospitals.yaml"


class TimedModel:
    """The model module with ``train`` timed: the hospitals' ClientApps call it once per round each."""

    def __init__(self):
        self.seconds: list[float] = []

    def __getattr__(self, name):
        return getattr(model, name)

    def train(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return model.train(*args, **kwargs)
        finally:
            self.seconds.append(time.perf_counter() - t0)


def measure(hidden: list[int], epochs: int, rounds: int) -> dict:
    scenario = load_scenario(SCENARIO)
    spec = scenario.federated.model_copy(update={"hidden_layers": hidden, "local_epochs": epochs, "rounds": rounds})
    timed, orgs = TimedModel(), len(spec.organisations)
    hospital.model = timed
    try:
        report = run_federation(scenario.model_copy(update={"federated": spec}))
    finally:
        hospital.model = model
    assert len(timed.seconds) == 2 * rounds * orgs, "every organisation trains once a round, plain then protected"
    train = [sum(timed.seconds[i : i + orgs]) for i in range(0, len(timed.seconds), orgs)]
    plain_train, secure_train = train[1:rounds], train[rounds + 1 :]
    protected = report["per_round"][1:]
    plain = [p["wall_s"] for p in report["curves"]["plain"][2:]]
    secure = [p["wall_s"] - r["supply_simulation_s"]  # the network simulation is not the organisations' time
              for p, r in zip(report["curves"]["secure"][2:], protected, strict=True)]
    plain_rest = median(w - t for w, t in zip(plain, plain_train, strict=True))
    secure_rest = median(w - t for w, t in zip(secure, secure_train, strict=True))
    crypto = median(r["crypto_seconds"] for r in protected)
    kme = median(r["kme_seconds"] for r in protected)
    train_s = median(plain_train + secure_train)
    return {"params": report["model"]["parameters"], "epochs": epochs, "train_s": train_s,
            "plain_s": train_s + plain_rest, "added_s": secure_rest - plain_rest, "crypto_s": crypto, "kme_s": kme,
            "other_s": secure_rest - plain_rest - crypto - kme,
            "requests": median(r["kme_requests"] for r in protected)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=6, help="rounds per run (the first is left out)")
    ap.add_argument("--epochs", type=int, nargs="+", default=[1, 2, 5, 10])
    ap.add_argument("--hidden", nargs="+", default=["384,256", "1024,512"], help="hidden layer sizes")
    a = ap.parse_args()
    print(f"machine: {machine()}; scenario {SCENARIO.name}, {a.rounds - 1} measured rounds per variant")
    print("| parameters | local epochs | training ms | plain round ms | protection adds ms | crypto ms | KME ms "
          "| other ms | KME requests | added |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for hidden in a.hidden:
        for epochs in a.epochs:
            r = measure([int(h) for h in hidden.split(",")], epochs, a.rounds)
            print(f"| {r['params']:,} | {epochs} | {r['train_s'] * 1e3:.1f} | {r['plain_s'] * 1e3:.1f} | "
                  f"{r['added_s'] * 1e3:.1f} | {r['crypto_s'] * 1e3:.1f} | {r['kme_s'] * 1e3:.1f} | "
                  f"{r['other_s'] * 1e3:.1f} | {r['requests']:.0f} | {r['added_s'] / r['plain_s']:+.1%} |",
                  flush=True)


if __name__ == "__main__":
    main()
