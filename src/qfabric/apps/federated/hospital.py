"""The default federation's apps, written the way Flower users write theirs.

Each hospital's ClientApp trains the scenario's model on its own partition of the scenario's data set; the
protected app is the same code with qfabric's mod added (the one line)::

    protected_app = ClientApp(mods=[qfabric_protection_mod()])

The node finds its data from its Flower config: ``partition-id`` (node config) and ``dataset``,
``data-shares``, ``data-seed`` (run config); the round's training settings come with the message, and with them
record-level differential privacy (``dp-clip-norm``, ``dp-noise-multiplier``: DP-SGD in training, its noise from
the node's ``qfabric-noise-seed`` and ``qfabric-noise-source``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import Strategy

from qfabric.apps.federated.data import Split, split_dataset
from qfabric.apps.federated.mod import qfabric_protection_mod
from qfabric.apps.federated.privacy import DpSgd, noise_generator
from qfabric.apps.federated.quantum import learner_for
from qfabric.apps.federated.wire import NOISE_SEED, NOISE_SOURCE


@lru_cache(maxsize=8)
def _split(dataset: str, shares: str, seed: int, test_fraction: float) -> Split:
    return split_dataset(dataset, [float(s) for s in shares.split(",")], test_fraction, seed)


@dataclass
class Study:
    """The held-out evaluation of a federation: the data split, the model's layers and initial parameters,
    and every evaluation so far (``evaluate`` is Flower's ``evaluate_fn``; ``wall_s``: the round's wall time).

    >>> s = Study.create([0.5, 0.5], seed=1, hidden_layers=[8])
    >>> s.layers, len(s.split.partitions)
    ([30, 8, 1], 2)
    >>> Study.create([0.5, 0.5], seed=1, hidden_layers=[], dataset="digits").layers
    [64, 10]
    """

    split: Split
    layers: list[int]
    initial: list[np.ndarray]
    history: list[dict] = field(default_factory=list)
    _last: float | None = None
    kind: str = "classical"  # the run config's model: classical, or vqc:<qubits>:<layers>

    @classmethod
    def create(cls, shares: list[float], seed: int, hidden_layers: list[int], test_fraction: float = 0.2,
               dataset: str = "breast-cancer", kind: str = "classical") -> Study:
        split = _split(dataset, ",".join(repr(float(s)) for s in shares), seed, test_fraction)
        learner = learner_for(kind)
        # the variational classifier: features, the qubits they are projected onto, the class score
        inner = [learner.qubits] if kind.startswith("vqc") else list(hidden_layers)
        layers = [split.test.X.shape[1], *inner, split.outputs]
        initial = learner.init_params(layers, np.random.default_rng([seed, 1]))
        return cls(split, layers, initial, kind=kind)

    def evaluate(self, server_round: int, arrays: ArrayRecord) -> MetricRecord:
        """Flower calls it before round 1 and after every round."""
        result = learner_for(self.kind).evaluate(arrays.to_numpy_ndarrays(), self.split.test.X, self.split.test.y)
        now = time.perf_counter()
        self.history.append({"round": server_round, **result,
                             "wall_s": now - self._last if self._last is not None else 0.0})
        self._last = now
        return MetricRecord(result)


def partition(context: Context):
    """This hospital's training data."""
    cfg = context.run_config
    split = _split(str(cfg.get("dataset", "breast-cancer")), ",".join(repr(float(s)) for s in
                                                                      str(cfg["data-shares"]).split(",")),
                   int(cfg["data-seed"]), float(cfg.get("test-fraction", 0.2)))
    return split.partitions[int(context.node_config["partition-id"])]


def train(msg: Message, context: Context) -> Message:
    data = partition(context)
    cfg = msg.content["config"]
    rng = np.random.default_rng([int(context.run_config["data-seed"]), int(context.node_config["partition-id"]),
                                 int(cfg["server-round"])])
    learner = learner_for(str(context.run_config.get("model", "classical")))
    private = {}
    if float(cfg.get("dp-noise-multiplier", 0.0)) > 0:  # record-level DP: DP-SGD, noise from the node's source
        seed = np.random.SeedSequence([int(context.node_config.get(NOISE_SEED, context.run_config["data-seed"])),
                                       int(cfg["server-round"]), 1])
        private = {"privacy": DpSgd(float(cfg["dp-clip-norm"]), float(cfg["dp-noise-multiplier"])),
                   "noise_rng": noise_generator(context.node_config.get(NOISE_SOURCE), seed)}
    params, loss = learner.train(msg.content["arrays"].to_numpy_ndarrays(), data.X, data.y,
                                 epochs=int(cfg["local-epochs"]), batch_size=int(cfg["batch-size"]),
                                 learning_rate=float(cfg["learning-rate"]), rng=rng, **private)
    return Message(RecordDict({"arrays": ArrayRecord(params),
                               "metrics": MetricRecord({"train-loss": loss, "num-examples": len(data.y)})}),
                   reply_to=msg)


plain_app = ClientApp()
plain_app.train()(train)

protected_app = ClientApp(mods=[qfabric_protection_mod()])
protected_app.train()(train)


def server_app(strategy: Strategy, initial: list[np.ndarray], rounds: int, train_config: dict,
               evaluate_fn: Callable, results: dict) -> ServerApp:
    """A ServerApp that runs ``strategy`` for ``rounds``; Flower's ``Result`` lands in ``results["result"]``."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        results["result"] = strategy.start(grid, ArrayRecord(initial), num_rounds=rounds,
                                           train_config=ConfigRecord(dict(train_config)), evaluate_fn=evaluate_fn)

    return app
