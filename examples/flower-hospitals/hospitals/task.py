"""The hospitals' own machine learning: data loading and a logistic-regression model in NumPy.

This is the part of a Flower app that belongs to the user; qfabric does not see it. Each hospital loads its
share of scikit-learn's breast-cancer data (a stratified 20 % is held out for the aggregator's evaluation),
standardised with the training set's mean and deviation. The model is logistic regression (30 weights and a
bias), trained with mini-batch Adam.

In a deployment each hospital reads its own data from its own disk: ``python -m hospitals.task DIR`` writes
every hospital's share and the test set as ``.npz`` files (``save_split``), and a SuperNode's node config names
its file (``data-path``); :func:`load_file` reads one with NumPy alone, so a ClientApp process does not import
scikit-learn (1-3 s on every SuperNode's first round).

>>> train_set, test_set = load_data(partition_id=0, shares=[0.5, 0.3, 0.2], seed=1)
>>> train_set[0].shape, test_set[0].shape
((228, 30), (114, 30))
>>> params = init_params(30)
>>> trained, loss = train(params, *train_set, epochs=20, batch_size=32, learning_rate=0.05, seed=1)
>>> evaluate(trained, *test_set)["accuracy"] > 0.9
True
"""

from __future__ import annotations

import argparse
from functools import lru_cache
from pathlib import Path

import numpy as np


@lru_cache(maxsize=4)
def _split(shares: tuple[float, ...], seed: int):
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    X, y = load_breast_cancer(return_X_y=True)
    y = (1 - y).astype(float)  # scikit-learn labels benign as 1; diagnose malignancy
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, stratify=y, random_state=seed)
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    X_train, X_test = (X_train - mean) / std, (X_test - mean) / std
    order = np.random.default_rng(seed).permutation(len(y_train))
    parts = np.split(order, np.round(np.cumsum(shares) * len(order)).astype(int)[:-1])
    return [(X_train[p], y_train[p]) for p in parts], (X_test, y_test)


def load_data(partition_id: int, shares: list[float], seed: int):
    """This hospital's training data and the held-out test set, as ``(X, y)`` pairs."""
    partitions, test = _split(tuple(shares), seed)
    return partitions[partition_id], test


def save_split(directory, shares: list[float], seed: int) -> list[Path]:
    """Write each hospital's training share (``hospital-0.npz``, ...) and the held-out ``test.npz`` to
    ``directory``; returns their paths, the test set last.

    >>> import tempfile
    >>> paths = save_split(tempfile.mkdtemp(), [0.5, 0.3, 0.2], seed=1)
    >>> [p.name for p in paths], load_file(paths[0])[0].shape
    (['hospital-0.npz', 'hospital-1.npz', 'hospital-2.npz', 'test.npz'], (228, 30))
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    partitions, test = _split(tuple(shares), seed)
    paths = [directory / f"hospital-{i}.npz" for i in range(len(partitions))] + [directory / "test.npz"]
    for path, (X, y) in zip(paths, [*partitions, test], strict=True):
        np.savez(path, X=X, y=y)
    return paths


def load_file(path) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` from an ``.npz`` file written by :func:`save_split`."""
    with np.load(path) as data:
        return data["X"], data["y"]


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-z) without overflow (NumPy only: scipy.special would add 0.5 s to every ClientApp start).

    >>> sigmoid(np.array([-800.0, 0.0, 800.0])).tolist()
    [0.0, 0.5, 1.0]
    """
    return np.exp(-np.logaddexp(0.0, -z))


def init_params(features: int) -> list[np.ndarray]:
    """Zero weights and bias (float32, the form Flower's ArrayRecord carries)."""
    return [np.zeros((features, 1), np.float32), np.zeros(1, np.float32)]


def _loss(params: list[np.ndarray], X: np.ndarray, y: np.ndarray) -> float:
    z = (X @ params[0] + params[1]).ravel()
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def train(params, X, y, epochs: int, batch_size: int, learning_rate: float, seed: int):
    """Mini-batch Adam from ``params``; returns the new parameters and the final training loss."""
    w, b = (p.astype(np.float64) for p in params)
    m, v = [np.zeros_like(w), np.zeros_like(b)], [np.zeros_like(w), np.zeros_like(b)]
    rng, step = np.random.default_rng(seed), 0
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for start in range(0, len(y), batch_size):
            batch = order[start : start + batch_size]
            error = (sigmoid((X[batch] @ w + b).ravel()) - y[batch])[:, None] / len(batch)
            grads = [X[batch].T @ error, error.sum(axis=0)]
            step += 1
            for i, (param, g) in enumerate(zip((w, b), grads, strict=True)):
                m[i] = 0.9 * m[i] + 0.1 * g
                v[i] = 0.999 * v[i] + 0.001 * g * g
                param -= learning_rate * (m[i] / (1 - 0.9**step)) / (np.sqrt(v[i] / (1 - 0.999**step)) + 1e-8)
    trained = [w.astype(np.float32), b.astype(np.float32)]
    return trained, _loss(trained, X, y)


def evaluate(params, X, y) -> dict[str, float]:
    """Test loss and accuracy (threshold 0.5)."""
    z = (X @ params[0] + params[1]).ravel()
    return {"loss": _loss(params, X, y), "accuracy": float(np.mean((z > 0) == (y > 0.5)))}


def main(argv: list[str] | None = None) -> None:
    """``python -m hospitals.task DIR``: write the files each site holds (see :func:`save_split`)."""
    parser = argparse.ArgumentParser(prog="python -m hospitals.task", description=main.__doc__)
    parser.add_argument("directory")
    parser.add_argument("--shares", default="0.5,0.3,0.2", help="each hospital's share of the training set")
    parser.add_argument("--seed", type=int, default=2026, help="the split's seed (the run config's data-seed)")
    args = parser.parse_args(argv)
    for path in save_split(args.directory, [float(s) for s in args.shares.split(",")], args.seed):
        print(path)


if __name__ == "__main__":
    main()
