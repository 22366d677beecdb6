"""A variational quantum classifier as a scikit-learn estimator, on PennyLane (imported when it is fitted).

The circuit: the features as rotation angles (``AngleEmbedding``, one feature per qubit: scale them to about
``[0, pi]`` first), then ``layers`` of ``StronglyEntanglingLayers`` (three trainable angles per qubit per
layer and a ring of CNOTs); the class scores are ``scale_k <Z_k> + bias_k`` (one qubit per class; a single
qubit for two classes, as a logistic score), trained with Adam on the cross-entropy. Every sample of a batch
runs in one broadcast circuit (``default.qubit``, backprop gradients); ``device="lightning.qubit"`` uses
lightning with adjoint gradients instead. The initial weights and the mini-batches come from ``seed``:
the same seed gives the same model.

>>> import numpy as np
>>> X = np.array([[0.2, 0.1], [0.3, 0.4], [2.8, 2.9], [2.6, 3.0]]); y = np.array([0, 0, 1, 1])
>>> clf = VariationalClassifier(layers=1, steps=30, seed=0).fit(X, y)   # doctest: +SKIP
>>> clf.predict(X).tolist()                                             # doctest: +SKIP
[0, 0, 1, 1]
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from qfabric.apps.qml.featuremaps import as_samples
from qfabric.errors import ParameterError, QfabricError

DEVICES = {"default.qubit": "backprop", "lightning.qubit": "adjoint"}


def _pennylane():
    try:
        import pennylane as qml
        from pennylane import numpy as pnp
    except ImportError:  # pragma: no cover - the qml extra is missing
        raise QfabricError("the variational classifier needs PennyLane: pip install 'qfabric[qml]'") from None
    return qml, pnp


class VariationalClassifier(ClassifierMixin, BaseEstimator):
    """``layers`` entangling layers after an angle embedding; ``steps`` Adam steps of ``learning_rate`` on
    mini-batches of ``batch_size`` samples (``None``: all); ``device``: ``default.qubit`` or ``lightning.qubit``.
    ``warm_start=True``: ``fit`` continues from the current parameters (a federation's global model, set with
    :meth:`set_parameters`) instead of fresh random ones."""

    def __init__(self, layers: int = 2, steps: int = 60, learning_rate: float = 0.1, batch_size: int | None = None,
                 device: str = "default.qubit", seed: int | None = 0, warm_start: bool = False):
        self.warm_start = warm_start
        self.layers = layers
        self.steps = steps
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.device = device
        self.seed = seed

    def _check_params(self) -> None:
        for name in ("layers", "steps"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < 1:
                raise ParameterError(name, value, "a positive whole number")
        if not self.learning_rate > 0:
            raise ParameterError("learning_rate", self.learning_rate, "a positive step size")
        if self.batch_size is not None and (not isinstance(self.batch_size, int | np.integer) or self.batch_size < 1):
            raise ParameterError("batch_size", self.batch_size, "None (all samples) or a positive whole number")
        if self.device not in DEVICES:
            raise ParameterError("device", self.device, f"one of {', '.join(DEVICES)}")

    def _circuit(self, n_qubits: int, n_outputs: int):
        qml, _ = _pennylane()
        device = qml.device(self.device, wires=n_qubits)

        @qml.qnode(device, interface="autograd", diff_method=DEVICES[self.device])
        def circuit(weights, x):
            qml.AngleEmbedding(x, wires=range(n_qubits), rotation="Y")
            qml.StronglyEntanglingLayers(weights, wires=range(n_qubits))
            return [qml.expval(qml.PauliZ(k)) for k in range(n_outputs)]

        return circuit

    def _scores(self, circuit, params, X):
        _, pnp = _pennylane()
        z = circuit(params["weights"], X)
        z = pnp.stack(z, axis=-1) if isinstance(z, list | tuple) else z[..., None]
        return z * params["scale"] + params["bias"]

    def fit(self, X, y):
        """Train on ``X`` (one feature per qubit) and the labels ``y``; sets ``classes_``."""
        self._check_params()
        qml, pnp = _pennylane()
        X = as_samples(X)
        y = np.asarray(y)
        if y.shape != (len(X),):
            raise ParameterError("y.shape", y.shape, f"({len(X)},): one label per sample of X")
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        k = len(self.classes_)
        n_qubits = X.shape[1]
        if k < 2:
            raise ParameterError("y", self.classes_.tolist(), "at least two classes")
        if k > 2 and k > n_qubits:
            raise ParameterError("y", f"{k} classes", f"at most {n_qubits} classes (one qubit per class score)")
        outputs = 1 if k == 2 else k
        self.n_features_in_ = n_qubits
        rng = np.random.default_rng(self.seed)
        shape = qml.StronglyEntanglingLayers.shape(n_layers=self.layers, n_wires=n_qubits)
        start = {"weights": rng.uniform(0, 2 * np.pi, size=shape), "scale": np.ones(outputs) * 2.0,
                 "bias": np.zeros(outputs)}
        if self.warm_start and hasattr(self, "params_"):
            if self.params_["weights"].shape != shape or len(self.params_["bias"]) != outputs:
                raise ParameterError("warm_start", "parameters of another shape",
                                     f"weights {shape} and {outputs} class score(s)")
            start = {k: np.array(v, dtype=float) for k, v in self.params_.items()}
        params = {k: pnp.array(v, requires_grad=True) for k, v in start.items()}
        circuit = self._circuit(n_qubits, outputs)
        optimiser = qml.AdamOptimizer(self.learning_rate)
        batch = len(X) if self.batch_size is None else min(self.batch_size, len(X))
        self.loss_curve_ = []

        def loss(weights, scale, bias, xb, yb):
            scores = self._scores(circuit, {"weights": weights, "scale": scale, "bias": bias}, xb)
            if outputs == 1:  # logistic: log(1 + exp(-s)) for class 1, log(1 + exp(s)) for class 0
                s = scores[:, 0]
                signed = pnp.where(yb == 1, -s, s)
                return pnp.mean(pnp.logaddexp(0.0, signed))
            shifted = scores - pnp.max(scores, axis=1, keepdims=True)
            log_norm = pnp.log(pnp.sum(pnp.exp(shifted), axis=1))
            picked = pnp.sum(shifted * np.eye(outputs)[yb], axis=1)
            return pnp.mean(log_norm - picked)

        args = [params["weights"], params["scale"], params["bias"]]
        for _ in range(self.steps):
            idx = rng.choice(len(X), size=batch, replace=False) if batch < len(X) else np.arange(len(X))
            xb = pnp.array(X[idx], requires_grad=False)
            yb = np.asarray(codes[idx])
            *args, _, _ = optimiser.step(loss, *args, xb, yb)
            self.loss_curve_.append(float(loss(*args, xb, yb)))
        self.params_ = {"weights": np.asarray(args[0]), "scale": np.asarray(args[1]), "bias": np.asarray(args[2])}
        self._outputs = outputs
        return self

    def get_parameters(self) -> list[np.ndarray]:
        """``[weights, scale, bias]``: the trained arrays (what a federation averages)."""
        check_is_fitted(self, "params_")
        return [self.params_[k].copy() for k in ("weights", "scale", "bias")]

    def set_parameters(self, parameters: list[np.ndarray], classes, n_features: int):
        """Install ``[weights, scale, bias]`` (e.g. the federation's average) for ``classes`` and ``n_features``."""
        weights, scale, bias = (np.asarray(p, dtype=float) for p in parameters)
        self.classes_ = np.asarray(classes)
        self.n_features_in_ = n_features
        self._outputs = 1 if len(self.classes_) == 2 else len(self.classes_)
        if weights.shape[1:] != (n_features, 3) or scale.shape != (self._outputs,) or bias.shape != (self._outputs,):
            raise ParameterError("parameters", [p.shape for p in (weights, scale, bias)],
                                 f"weights (layers, {n_features}, 3), scale and bias ({self._outputs},)")
        self.params_ = {"weights": weights, "scale": scale, "bias": bias}
        return self

    def decision_function(self, X) -> np.ndarray:
        """Class scores: ``(m,)`` for two classes (positive: ``classes_[1]``), ``(m, k)`` otherwise."""
        check_is_fitted(self, "params_")
        X = as_samples(X, self.n_features_in_)
        circuit = self._circuit(self.n_features_in_, self._outputs)
        scores = np.asarray(self._scores(circuit, self.params_, X))
        return scores[:, 0] if self._outputs == 1 else scores

    def predict_proba(self, X) -> np.ndarray:
        """``(m, k)`` class probabilities (logistic / softmax of the scores)."""
        scores = self.decision_function(X)
        if scores.ndim == 1:
            p1 = 1 / (1 + np.exp(-scores))
            return np.stack((1 - p1, p1), axis=1)
        e = np.exp(scores - scores.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        """The most probable class of each sample."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
