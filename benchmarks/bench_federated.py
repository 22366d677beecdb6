"""What qfabric's protection adds to a federated round: protected vs plain Flower rounds, same run.

    python benchmarks/bench_federated.py [--rounds 20] [--only default]

The default scenario (three hospitals, digits data, an MLP 64-64-10 trained with DP-SGD, hybrid policy, all the
run's QKD keys fetched in round 1, sessions kept for 10 rounds) and variants of it: the keys of 10 rounds per
ETSI request, a key agreement every round and keys fetched one per request (as before), the previous default
(logistic regression on breast-cancer data under organisation-level DP), a larger model without DP and more
local training. Each variant runs the federation in one
process on the in-process Flower grid: plain (Flower's FedAvg, no protection), protected (SecureFedAvg with
the qfabric mod, a real KME over mutual TLS on 127.0.0.1) and protected without DP. All parties run one after
another (the in-process grid runs the clients in turn), so a round's wall time is the sum of everyone's work.

Training does the same work in both runs, but on these shared machines identical training varies by +-30 %
from run to run, which would swamp a 10 % effect. So the model's ``train`` is timed in both runs and what
protection adds is measured on the rest of the round: (protected round - its training) - (plain round - its
training), averaged over all rounds (round 1 carries the nodes' introductions and the batched key fetches, so
leaving it out would hide them); "steady" is the median of the same difference over rounds 2 and later (what
a round costs once the sessions and key batches are in place), "round 1" the same difference in round 1 alone.
"share" is the average over the protected round: the goal is under 10 %; "steady share" the same for a
steady round (medians over rounds 2 and later). Under DP-SGD the protected run's training is the private one
(about twice plain training): the training column shows both, and shares are of the protected round. The
protected rest is split into cryptography, waiting for the KME (ETSI 014) and other (extra Flower messages,
serialisation). Network simulation between rounds (the key supply) is not the organisations' time and is left
out. A warm-up federation runs first (not measured), so the first variant does not pay the process's imports.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from statistics import mean, median

from peers import machine
from qfabric.apps.federated import hospital, model
from qfabric.apps.federated.quantum import learner_for
from qfabric.scenario import load_scenario
from qfabric.scenario.federation import run_federation
from qfabric.scenario.schema import PrivacySpec

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "three-hospitals.yaml"
NO_DP = PrivacySpec(noise_multiplier=0.0)
VARIANTS = [  # (label, changes to the scenario's federated section)
    ("default", {}),
    ("default, QKD keys of 10 rounds per request", {"keys_per_request": 10}),
    ("default, a key agreement every round", {"session_rounds": 1}),
    ("default, a key agreement every round, 1 key per request", {"session_rounds": 1, "keys_per_request": 1}),
    ("default, double masking", {"secure_aggregation": "double-masking"}),
    ("breast-cancer, logistic regression, organisation-level DP (the previous default)",
     {"dataset": "breast-cancer", "hidden_layers": [], "learning_rate": 0.05, "local_epochs": 2,
      "privacy": PrivacySpec(unit="organisation", clip_norm=0.5, noise_multiplier=2.5)}),
    ("MLP 384-256, 2 epochs, no DP", {"hidden_layers": [384, 256], "learning_rate": 1e-3, "local_epochs": 2,
                                      "privacy": NO_DP}),
    ("MLP 384-256, 20 epochs, no DP", {"hidden_layers": [384, 256], "learning_rate": 1e-3, "local_epochs": 20,
                                       "privacy": NO_DP}),
]


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


def measure(changes: dict, rounds: int) -> dict:
    scenario = load_scenario(SCENARIO)
    spec = scenario.federated.model_copy(update={"rounds": rounds, "compare_plain": True} | changes)
    # what is measured is time: no privacy budget refuses the variants that train more (the noise is the same)
    spec = spec.model_copy(update={"privacy": spec.privacy.model_copy(update={"epsilon_budget": None})})
    timed, orgs = TimedModel(), len(spec.organisations)
    hospital.learner_for = lambda kind: timed if kind == "classical" else learner_for(kind)
    try:
        report = run_federation(scenario.model_copy(update={"federated": spec}))
    finally:
        hospital.learner_for = learner_for
    runs = 3 if spec.privacy.noise_multiplier > 0 else 2  # plain, protected, (protected without DP)
    assert len(timed.seconds) == runs * rounds * orgs, "every organisation trains once a round in every run"
    train = [sum(timed.seconds[i : i + orgs]) for i in range(0, len(timed.seconds), orgs)]
    plain_train, secure_train = train[:rounds], train[rounds : 2 * rounds]
    protected = report["per_round"]
    plain = [p["wall_s"] for p in report["curves"]["plain"][1:]]
    secure = [p["wall_s"] - r["supply_simulation_s"]  # the network simulation is not the organisations' time
              for p, r in zip(report["curves"]["secure"][1:], protected, strict=True)]
    plain_rests = [w - t for w, t in zip(plain, plain_train, strict=True)]
    secure_rests = [w - t for w, t in zip(secure, secure_train, strict=True)]
    plain_rest, secure_rest = mean(plain_rests), mean(secure_rests)
    crypto = mean(r["crypto_seconds"] for r in protected)
    kme = mean(r["kme_seconds"] for r in protected)
    added = secure_rest - plain_rest
    return {"params": report["model"]["parameters"], "plain_train_s": mean(plain_train),
            "train_s": mean(secure_train), "plain_s": mean(plain_train) + plain_rest,
            "added_s": added, "steady_s": median(secure_rests[1:]) - median(plain_rests[1:]),
            "first_s": secure_rests[0] - plain_rests[0],
            "crypto_s": crypto, "kme_s": kme, "other_s": added - crypto - kme,
            "requests": mean(r["kme_requests"] for r in protected),
            "share": added / (mean(secure_train) + secure_rest), "steady_share": (median(secure_rests[1:])
            - median(plain_rests[1:])) / (median(secure_train[1:]) + median(secure_rests[1:]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=20, help="rounds per run (all are measured; the scenario has 20)")
    ap.add_argument("--only", nargs="+", metavar="TEXT", help="only the variants whose label contains one of these "
                    "(e.g. --only default)")
    a = ap.parse_args()
    variants = [(label, changes) for label, changes in VARIANTS
                if not a.only or any(text in label for text in a.only)]
    if not variants:
        ap.error(f"no variant matches {a.only}: the variants are {', '.join(label for label, _ in VARIANTS)}")
    print(f"machine: {machine()}; scenario {SCENARIO.name}, {a.rounds} rounds per variant; "
          f"load average {os.getloadavg()[0]:.1f}")
    measure({}, 2)  # warm-up: imports and first-use costs of this process
    print("| variant | parameters | training ms, plain / protected | plain round ms | protection adds ms | steady ms "
          "| round 1 ms | crypto ms | KME ms | other ms | KME requests/round | share of the protected round | "
          "steady share |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for label, changes in variants:
        r = measure(changes, a.rounds)
        print(f"| {label} | {r['params']:,} | {r['plain_train_s'] * 1e3:.1f} / {r['train_s'] * 1e3:.1f} | "
              f"{r['plain_s'] * 1e3:.1f} | "
              f"{r['added_s'] * 1e3:.1f} | {r['steady_s'] * 1e3:.1f} | {r['first_s'] * 1e3:.1f} | "
              f"{r['crypto_s'] * 1e3:.1f} | {r['kme_s'] * 1e3:.1f} | "
              f"{r['other_s'] * 1e3:.1f} | {r['requests']:.1f} | {r['share']:.1%} | {r['steady_share']:.1%} |",
              flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
