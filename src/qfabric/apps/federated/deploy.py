"""The hospitals' federation on Flower's deployment runtime: a SuperLink, one SuperNode per organisation,
``flwr run`` (see ``examples/flower-hospitals``). Keys come from a running KME; the aggregator's SAE
identity and the training settings come from the run config, each organisation's from its node config.

Run config (``[tool.flwr.app.config]``, or ``flwr run --run-config``): ``qfabric-aggregator``,
``qfabric-kme-url``, ``qfabric-cert``, ``qfabric-key``, ``qfabric-ca`` (the aggregator's SAE),
``policy``, ``fallback``, ``rounds``, ``hidden-layers`` (e.g. ``"64,32"``), ``local-epochs``,
``batch-size``, ``learning-rate``, ``clip-norm``, ``noise-multiplier``, ``min-clients``, ``data-shares``,
``data-seed``, and ``results`` (a JSON file the ServerApp writes: accuracy and the per-round log).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp

from qfabric.apps.federated.hospital import Study
from qfabric.apps.federated.strategy import Protection, SecureFedAvg
from qfabric.apps.federated.wire import TimedKme
from qfabric.errors import QfabricError
from qfabric.kms.client import SaeClient
from qfabric.kms.policy import Policy

server_app = ServerApp()

_REQUIRED = ("qfabric-aggregator", "qfabric-kme-url", "qfabric-cert", "qfabric-key", "qfabric-ca", "data-shares")


@server_app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    missing = [k for k in _REQUIRED if k not in cfg]
    if missing:
        raise QfabricError(f"the run config has no {', '.join(missing)}: the aggregator needs its SAE identity, "
                           "its KME and the data split")
    study = Study.create([float(s) for s in str(cfg["data-shares"]).split(",")], int(cfg.get("data-seed", 0)),
                         [int(h) for h in str(cfg.get("hidden-layers", "384,256")).split(",")])
    split = study.split

    kme = SaeClient(str(cfg["qfabric-kme-url"]), str(cfg["qfabric-cert"]), str(cfg["qfabric-key"]),
                    str(cfg["qfabric-ca"]))
    try:
        policy = Policy(mode=str(cfg.get("policy", "hybrid")), fallback=str(cfg.get("fallback", "pq-only")))
        protection = Protection(str(cfg["qfabric-aggregator"]), TimedKme(kme), policy,
                                clip_norm=float(cfg.get("clip-norm", 1.0)),
                                noise_multiplier=float(cfg.get("noise-multiplier", 0.0)),
                                weight_cap_examples=float(max(len(p.y) for p in split.partitions)),
                                min_clients=int(cfg.get("min-clients", 2)))
        strategy = SecureFedAvg(protection)
        strategy.start(grid, ArrayRecord(study.initial), num_rounds=int(cfg.get("rounds", 3)),
                       train_config=ConfigRecord({"local-epochs": int(cfg.get("local-epochs", 2)),
                                                  "batch-size": int(cfg.get("batch-size", 32)),
                                                  "learning-rate": float(cfg.get("learning-rate", 1e-3))}),
                       evaluate_fn=study.evaluate)
    finally:
        kme.close()
    if cfg.get("results"):
        Path(str(cfg["results"])).write_text(json.dumps({"curve": study.history,
                                                         "rounds": [asdict(r) for r in strategy.rounds]}))
