"""The default hospitals' model: a multilayer perceptron for binary diagnosis, in NumPy.

Flower leaves the model to the user; this one is what the shipped scenario trains (ReLU hidden layers,
a sigmoid output, binary cross-entropy, Adam). Its parameters are a plain list of float32 arrays, the
form Flower's ``ArrayRecord`` carries.

>>> rng = np.random.default_rng(0)
>>> params = init_params([30, 16, 1], rng)
>>> [p.shape for p in params], n_params(params)
([(30, 16), (16,), (16, 1), (1,)], 513)
>>> X = rng.normal(size=(64, 30)); y = (X[:, 0] > 0).astype(float)
>>> trained, _ = train(params, X, y, epochs=30, batch_size=16, learning_rate=1e-2, rng=rng)
>>> evaluate(trained, X, y)["accuracy"] > 0.9
True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import expit

from qfabric.errors import ParameterError

Params = list[np.ndarray]


def init_params(layer_sizes: Sequence[int], rng: np.random.Generator) -> Params:
    """He-initialised weights and zero biases, ``[W1, b1, W2, b2, ...]`` (float32)."""
    if len(layer_sizes) < 2 or layer_sizes[-1] != 1:
        raise ParameterError("layer_sizes", list(layer_sizes), "input size, hidden sizes, and 1 output")
    params: Params = []
    for fan_in, fan_out in zip(layer_sizes, layer_sizes[1:], strict=False):
        params.append((rng.normal(size=(fan_in, fan_out)) * np.sqrt(2.0 / fan_in)).astype(np.float32))
        params.append(np.zeros(fan_out, dtype=np.float32))
    return params


def n_params(params: Params) -> int:
    return int(sum(p.size for p in params))


def _forward(params: Params, X: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    activations = [X]
    h = X
    for i in range(0, len(params) - 2, 2):
        h = np.maximum(h @ params[i] + params[i + 1], 0.0)
        activations.append(h)
    logits = (h @ params[-2] + params[-1]).ravel()
    return activations, logits


def _loss(logits: np.ndarray, y: np.ndarray) -> float:
    # binary cross-entropy on logits, computed stably: log(1 + e^z) - y z
    return float(np.mean(np.logaddexp(0.0, logits) - y * logits))


def _gradients(params: Params, X: np.ndarray, y: np.ndarray) -> Params:
    activations, logits = _forward(params, X)
    delta = (expit(logits) - y)[:, None] / len(y)  # dLoss/dlogits
    grads: Params = [np.empty(0)] * len(params)
    for i in range(len(params) - 2, -1, -2):
        a = activations[i // 2]
        grads[i] = a.T @ delta
        grads[i + 1] = delta.sum(axis=0)
        if i > 0:
            delta = (delta @ params[i].T) * (a > 0)
    return grads


def train(params: Params, X: np.ndarray, y: np.ndarray, epochs: int, batch_size: int, learning_rate: float,
          rng: np.random.Generator) -> tuple[Params, float]:
    """Mini-batch Adam from ``params`` (a fresh optimiser state); returns the new parameters and the mean
    training loss of the last epoch."""
    if len(X) == 0:
        raise ParameterError("X", 0, "at least one training example")
    params = [p.astype(np.float32, copy=True) for p in params]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    beta1, beta2, eps, step = 0.9, 0.999, 1e-8, 0
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32)
    last_losses: list[float] = []
    for _ in range(epochs):
        order = rng.permutation(len(X))
        last_losses = []
        for start in range(0, len(X), batch_size):
            batch = order[start : start + batch_size]
            grads = _gradients(params, X[batch], y[batch])
            step += 1
            for k, g in enumerate(grads):
                m[k] = beta1 * m[k] + (1 - beta1) * g
                v[k] = beta2 * v[k] + (1 - beta2) * g * g
                m_hat = m[k] / (1 - beta1**step)
                v_hat = v[k] / (1 - beta2**step)
                params[k] -= (learning_rate * m_hat / (np.sqrt(v_hat) + eps)).astype(np.float32)
            last_losses.append(_loss(_forward(params, X[batch])[1], y[batch]))
    return params, float(np.mean(last_losses)) if last_losses else float("nan")


def evaluate(params: Params, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Loss and accuracy (threshold 0.5) on ``(X, y)``."""
    _, logits = _forward(params, np.asarray(X, dtype=np.float32))
    y = np.asarray(y, dtype=np.float64)
    return {"loss": _loss(logits.astype(np.float64), y), "accuracy": float(np.mean((logits > 0) == (y > 0.5)))}
