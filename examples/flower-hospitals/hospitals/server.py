"""The aggregator's ServerApp: qfabric's SecureFedAvg (its SAE identity and KME from the run config), the
global model evaluated here on the held-out test set (never on the hospitals' nodes)."""

import json
import time
from pathlib import Path

from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp

from hospitals import task
from qfabric.apps.federated.deploy import PollingGrid, secure_fedavg

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    if cfg.get("test-data-path"):  # the held-out set written by `python -m hospitals.task` (NumPy only)
        X_test, y_test = task.load_file(str(cfg["test-data-path"]))
    else:
        _, (X_test, y_test) = task.load_data(0, [float(s) for s in str(cfg["data-shares"]).split(",")],
                                             int(cfg["data-seed"]))
    curve, clock = [], [time.perf_counter()]

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        result = task.evaluate(arrays.to_numpy_ndarrays(), X_test, y_test)
        now = time.perf_counter()  # wall_s: the round's wall time (for round 0: the start-up)
        curve.append({"round": server_round, **result, "wall_s": now - clock[0]})
        clock[0] = now
        return MetricRecord(result)

    poll_s = float(cfg.get("poll-interval", 0.3))  # how often to ask for replies (0: Flower's grid, every 3 s)
    with secure_fedavg(cfg) as strategy:
        strategy.start(PollingGrid(grid, poll_s) if poll_s > 0 else grid,
                       ArrayRecord(task.init_params(X_test.shape[1])),
                       num_rounds=int(cfg["rounds"]),
                       train_config=ConfigRecord({"local-epochs": int(cfg["local-epochs"]),
                                                  "batch-size": int(cfg["batch-size"]),
                                                  "learning-rate": float(cfg["learning-rate"])}),
                       evaluate_fn=evaluate)
    if cfg.get("results"):  # the accuracy per round and qfabric's log of every round
        Path(str(cfg["results"])).write_text(json.dumps({"curve": curve, "rounds": strategy.round_logs()}))
