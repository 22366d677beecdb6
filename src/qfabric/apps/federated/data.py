"""The default hospitals' data: scikit-learn's breast-cancer set (Wisconsin diagnostic, 569 patients,
30 features), a stratified held-out test set, and the rest split unevenly across hospitals.

>>> split = split_breast_cancer([0.5, 0.3, 0.2], test_fraction=0.2, seed=1)
>>> [len(p.y) for p in split.partitions], len(split.test.y)
([228, 136, 91], 114)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qfabric.errors import ParameterError


@dataclass(frozen=True)
class Dataset:
    X: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class Split:
    partitions: list[Dataset]
    test: Dataset

    @property
    def pooled(self) -> Dataset:
        """All hospitals' training data together: what centralised training would see."""
        return Dataset(np.concatenate([p.X for p in self.partitions]), np.concatenate([p.y for p in self.partitions]))


def split_breast_cancer(fractions: Sequence[float], test_fraction: float = 0.2, seed: int = 0) -> Split:
    """Partitions of the training data in the given proportions (label 1 = malignant).

    Features are standardised with the pooled training set's mean and deviation, standing in for the
    published reference ranges that hospitals would agree on before training.
    """
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    fractions = np.asarray(fractions, dtype=float)
    if len(fractions) < 1 or np.any(fractions <= 0) or not np.isclose(fractions.sum(), 1.0):
        raise ParameterError("fractions", fractions.tolist(), "positive shares of the training data summing to 1")
    if not 0 < test_fraction < 1:
        raise ParameterError("test_fraction", test_fraction, "a fraction in (0, 1)")
    X, y = load_breast_cancer(return_X_y=True)
    y = 1 - y  # scikit-learn labels benign as 1; diagnose malignancy
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=test_fraction, stratify=y, random_state=seed)
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    X_train, X_test = (X_train - mean) / std, (X_test - mean) / std
    order = np.random.default_rng(seed).permutation(len(y_train))
    bounds = np.round(np.cumsum(fractions) * len(order)).astype(int)
    parts = np.split(order, bounds[:-1])
    if any(len(p) == 0 for p in parts):
        raise ParameterError("fractions", fractions.tolist(), "shares large enough to give every hospital data")
    return Split([Dataset(X_train[p], y_train[p].astype(float)) for p in parts], Dataset(X_test, y_test.astype(float)))
