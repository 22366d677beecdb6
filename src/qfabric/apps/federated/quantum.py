"""The federation's quantum model: the variational classifier of :mod:`qfabric.apps.qml` on a few features, with
the same interface as :mod:`qfabric.apps.federated.model` (``init_params``, ``train``, ``evaluate``,
``n_params``), so the hospitals, the baselines and the protection treat it exactly like the MLP: a list of
arrays in, a list of arrays out (``[weights, scale, bias]``).

The data set's features are projected onto ``qubits`` directions fixed by a seed (a Gaussian matrix: nothing is
learnt from anyone's data, so no organisation's data shapes another's inputs), then mapped into ``(0, pi)`` as
rotation angles: ``pi/2 + arctan(z)``.

>>> learner = learner_for("vqc:4:2")
>>> learner.qubits, learner.layers
(4, 2)
>>> learner_for("classical").__name__
'qfabric.apps.federated.model'
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qfabric.errors import ParameterError

PROJECTION_SEED = 20_170_924  # fixed: every organisation projects the same way


def learner_for(kind: str):
    """The model of a run config's ``model`` entry: ``classical`` (the MLP / logistic regression) or
    ``vqc:<qubits>:<layers>``."""
    if kind == "classical":
        from qfabric.apps.federated import model

        return model
    parts = kind.split(":")
    if len(parts) != 3 or parts[0] != "vqc" or not (parts[1].isdigit() and parts[2].isdigit()):
        raise ParameterError("model", kind, "classical or vqc:<qubits>:<layers>")
    return QuantumModel(int(parts[1]), int(parts[2]))


@dataclass(frozen=True)
class QuantumModel:
    """A variational classifier on ``qubits`` projected features with ``layers`` entangling layers."""

    qubits: int
    layers: int

    def __post_init__(self) -> None:
        if not 1 <= self.qubits <= 12 or not 1 <= self.layers <= 8:
            raise ParameterError("vqc", (self.qubits, self.layers), "1-12 qubits and 1-8 layers")

    def angles(self, X: np.ndarray) -> np.ndarray:
        """The samples as ``qubits`` rotation angles in (0, pi)."""
        X = np.asarray(X, dtype=float)
        directions = np.random.default_rng(PROJECTION_SEED).normal(size=(X.shape[1], self.qubits))
        return np.pi / 2 + np.arctan(X @ directions / math.sqrt(X.shape[1]))

    def _classifier(self, params, seed: int, steps: int = 1, learning_rate: float = 0.1,
                    batch_size: int | None = None):
        from qfabric.apps.qml.vqc import VariationalClassifier

        clf = VariationalClassifier(layers=self.layers, steps=max(1, steps), learning_rate=learning_rate,
                                    batch_size=batch_size, seed=seed, warm_start=True)
        return clf.set_parameters(params, classes=[0, 1], n_features=self.qubits)

    def init_params(self, layer_sizes, rng: np.random.Generator) -> list[np.ndarray]:
        """Random entangling weights, unit score scale, no bias (``layer_sizes``: ignored but the outputs,
        which must be 1: two classes)."""
        if layer_sizes[-1] != 1:
            raise ParameterError("dataset", f"{layer_sizes[-1]} classes",
                                 "two classes for the variational classifier (breast-cancer)")
        return [rng.uniform(0, 2 * np.pi, size=(self.layers, self.qubits, 3)), np.ones(1) * 2.0, np.zeros(1)]

    def train(self, params, X, y, epochs: int, batch_size: int, learning_rate: float,
              rng: np.random.Generator) -> tuple[list[np.ndarray], float]:
        """``epochs`` passes of Adam steps over mini-batches of ``batch_size``; returns the parameters and the
        last step's loss."""
        steps = epochs * math.ceil(len(y) / batch_size)
        clf = self._classifier(params, int(rng.integers(2**31)), steps, learning_rate, batch_size)
        clf.fit(self.angles(X), np.asarray(y).astype(int))
        return clf.get_parameters(), float(clf.loss_curve_[-1])

    def evaluate(self, params, X, y) -> dict[str, float]:
        """Accuracy and cross-entropy on ``(X, y)``."""
        p1 = self._classifier(params, 0).predict_proba(self.angles(X))[:, 1]
        y = np.asarray(y).astype(int)
        eps = 1e-12
        loss = float(-np.mean(y * np.log(p1 + eps) + (1 - y) * np.log(1 - p1 + eps)))
        return {"accuracy": float(np.mean((p1 >= 0.5) == y)), "loss": loss}

    @staticmethod
    def n_params(params) -> int:
        return int(sum(np.asarray(p).size for p in params))
