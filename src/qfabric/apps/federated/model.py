"""The scenarios' model: a multilayer perceptron in NumPy (no hidden layer: logistic regression).

Flower leaves the model to the user; this one is what the shipped scenarios train (ReLU hidden layers; one
output: a sigmoid and binary cross-entropy, labels 0/1; k > 1 outputs: softmax and cross-entropy, labels
0..k-1; Adam). Its parameters are a plain list of float32 arrays, the form Flower's ``ArrayRecord`` carries.

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

from qfabric.apps.federated.privacy import DpSgd
from qfabric.errors import ParameterError

Params = list[np.ndarray]


def one_blas_thread():
    """A context in which BLAS (OpenBLAS, MKL) runs on one thread, through ``threadpoolctl``: this model's
    matrices are small, and spreading them over busy cores made training 2.5 times slower.

    >>> with one_blas_thread():
    ...     float(np.ones((2, 2)) @ np.ones(2) @ np.ones(2))
    4.0
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def init_params(layer_sizes: Sequence[int], rng: np.random.Generator) -> Params:
    """He-initialised weights and zero biases, ``[W1, b1, W2, b2, ...]`` (float32)."""
    if len(layer_sizes) < 2 or min(layer_sizes) < 1:
        raise ParameterError("layer_sizes", list(layer_sizes), "input size, hidden sizes and outputs (1: binary)")
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
    logits = h @ params[-2] + params[-1]
    return activations, logits.ravel() if logits.shape[1] == 1 else logits


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)  # numpy, not scipy.special: 5x faster on small batches
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _loss(logits: np.ndarray, y: np.ndarray) -> float:
    if len(y) == 0:
        return float("nan")
    if logits.ndim == 1:  # binary cross-entropy on logits, computed stably: log(1 + e^z) - y z
        return float(np.mean(np.logaddexp(0.0, logits) - y * logits))
    return float(-np.mean(_log_softmax(logits)[np.arange(len(y)), y.astype(int)]))


def _backward(params: Params, X: np.ndarray, y: np.ndarray) -> tuple[list[tuple[np.ndarray, np.ndarray]], float]:
    """Per layer ``(a, d)``: the layer's input and dLoss/d(its output) for every record (the loss of each record,
    not averaged), so that record i's gradient is ``outer(a[i], d[i])`` for the weights and ``d[i]`` for the bias;
    and the mean loss."""
    activations, logits = _forward(params, X)
    loss = _loss(logits, y)
    if logits.ndim == 1:
        delta = (expit(logits) - y)[:, None]  # dLoss/dlogits
    else:
        delta = np.exp(_log_softmax(logits))
        delta[np.arange(len(y)), y.astype(int)] -= 1
    layers: list[tuple[np.ndarray, np.ndarray]] = []
    for i in range(len(params) - 2, -1, -2):
        a = activations[i // 2]
        layers.append((a, delta))
        if i > 0:
            delta = (delta @ params[i].T) * (a > 0)
    return layers[::-1], loss


def _gradients(params: Params, X: np.ndarray, y: np.ndarray) -> tuple[Params, float]:
    """The mean loss's gradient over the records, and the mean loss."""
    layers, loss = _backward(params, X, y)
    grads: Params = []
    for a, d in layers:
        grads += [a.T @ d / len(y), d.sum(axis=0) / len(y)]
    return grads, loss


def record_gradient_norms(params: Params, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The L2 norm of every record's gradient over all parameters, without forming the per-record gradients: a
    dense layer's is ``|a_i| |d_i|`` for its weights and ``|d_i|`` for its bias."""
    return np.sqrt(_record_norms_squared(_backward(params, X, y)[0]))


def _record_norms_squared(layers: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    return sum((np.einsum("ij,ij->i", a, a) + 1.0) * np.einsum("ij,ij->i", d, d) for a, d in layers)


def _private_gradients(params: Params, X: np.ndarray, y: np.ndarray, dp: DpSgd, expected_batch: float,
                       noise_rng: np.random.Generator) -> tuple[Params, float]:
    """DP-SGD's gradient: every record's gradient clipped to ``dp.clip_norm``, summed, Gaussian noise of standard
    deviation ``noise_multiplier * clip_norm`` added, divided by the expected batch size (Abadi et al. 2016)."""
    layers, loss = _backward(params, X, y)
    norms = np.sqrt(_record_norms_squared(layers))
    scale = (np.minimum(1.0, dp.clip_norm / np.maximum(norms, 1e-12)))[:, None]
    std = dp.noise_multiplier * dp.clip_norm
    grads: Params = []
    for a, d in layers:
        d = d * scale
        for g in (a.T @ d, d.sum(axis=0)):
            grads.append((g + noise_rng.normal(0.0, std, g.shape)) / expected_batch)
    return grads, loss


def train(params: Params, X: np.ndarray, y: np.ndarray, epochs: int, batch_size: int, learning_rate: float,
          rng: np.random.Generator, privacy: DpSgd | None = None,
          noise_rng: np.random.Generator | None = None) -> tuple[Params, float]:
    """Mini-batch Adam from ``params`` (a fresh optimiser state); returns the new parameters and the mean
    training loss of the last epoch (each batch's before its step).

    With ``privacy`` it is DP-SGD (with Adam on the noised gradients, which is post-processing): each step draws a
    Poisson sample (every record with probability ``batch_size / len(X)``), ``privacy.steps`` steps in all, and
    the noise comes from ``noise_rng`` (default: ``rng``)."""
    if len(X) == 0:
        raise ParameterError("X", 0, "at least one training example")
    params = [p.astype(np.float32, copy=True) for p in params]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    beta1, beta2, eps, step = 0.9, 0.999, 1e-8, 0
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32)

    def adam(grads: Params) -> None:
        nonlocal step
        step += 1
        for k, g in enumerate(grads):
            m[k] = beta1 * m[k] + (1 - beta1) * g
            v[k] = beta2 * v[k] + (1 - beta2) * g * g
            m_hat = m[k] / (1 - beta1**step)
            v_hat = v[k] / (1 - beta2**step)
            params[k] -= (learning_rate * m_hat / (np.sqrt(v_hat) + eps)).astype(np.float32)

    if privacy is not None:
        rate = privacy.sampling_rate(len(X), batch_size)
        losses = []
        for _ in range(privacy.steps(len(X), batch_size, epochs)):
            batch = np.flatnonzero(rng.random(len(X)) < rate)
            grads, loss = _private_gradients(params, X[batch], y[batch], privacy, rate * len(X), noise_rng or rng)
            adam(grads)
            if len(batch):
                losses.append(loss)
        per_epoch = max(1, round(len(losses) / epochs))
        return params, float(np.mean(losses[-per_epoch:])) if losses else float("nan")

    last_losses: list[float] = []
    for _ in range(epochs):
        order = rng.permutation(len(X))
        last_losses = []
        for start in range(0, len(X), batch_size):
            batch = order[start : start + batch_size]
            grads, loss = _gradients(params, X[batch], y[batch])
            adam(grads)
            last_losses.append(loss)
    return params, float(np.mean(last_losses)) if last_losses else float("nan")


def evaluate(params: Params, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Loss and accuracy (threshold 0.5, or the most likely class) on ``(X, y)``."""
    _, logits = _forward(params, np.asarray(X, dtype=np.float32))
    y = np.asarray(y, dtype=np.float64)
    predicted = logits > 0 if logits.ndim == 1 else np.argmax(logits, axis=1)
    truth = y > 0.5 if logits.ndim == 1 else y.astype(int)
    return {"loss": _loss(logits.astype(np.float64), y), "accuracy": float(np.mean(predicted == truth))}
