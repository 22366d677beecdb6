"""The scenarios' data, from data sets that ship with scikit-learn (no download): ``breast-cancer``
(Wisconsin diagnostic, 569 patients, 30 features, malignant or not) and ``digits`` (1,797 8x8 images of
handwritten digits, 64 features, 10 classes); a stratified held-out test set, and the rest split unevenly
across organisations.

>>> split = split_breast_cancer([0.5, 0.3, 0.2], test_fraction=0.2, seed=1)
>>> [len(p.y) for p in split.partitions], len(split.test.y), split.classes
([228, 136, 91], 114, 2)
>>> digits = split_dataset("digits", [0.5, 0.5], seed=1)
>>> [len(p.y) for p in digits.partitions], digits.test.X.shape, digits.classes
([718, 719], (360, 64), 10)
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


DATASETS = ("breast-cancer", "digits")


@dataclass(frozen=True)
class Split:
    partitions: list[Dataset]
    test: Dataset
    classes: int = 2  # labels 0 .. classes - 1

    @property
    def outputs(self) -> int:
        """The model's output units: 1 for two classes (a sigmoid), else one per class (softmax)."""
        return 1 if self.classes == 2 else self.classes

    @property
    def pooled(self) -> Dataset:
        """All hospitals' training data together: what centralised training would see."""
        return Dataset(np.concatenate([p.X for p in self.partitions]), np.concatenate([p.y for p in self.partitions]))


def split_breast_cancer(fractions: Sequence[float], test_fraction: float = 0.2, seed: int = 0) -> Split:
    """Partitions of the breast-cancer training data in the given proportions (label 1 = malignant)."""
    return split_dataset("breast-cancer", fractions, test_fraction, seed)


def split_dataset(name: str, fractions: Sequence[float], test_fraction: float = 0.2, seed: int = 0) -> Split:
    """Partitions of data set ``name``'s training data in the given proportions, and its test set.

    Features are standardised with the pooled training set's mean and deviation, standing in for the
    published reference ranges that organisations would agree on before training.
    """
    from sklearn.datasets import load_breast_cancer, load_digits
    from sklearn.model_selection import train_test_split

    fractions = np.asarray(fractions, dtype=float)
    if len(fractions) < 1 or np.any(fractions <= 0) or not np.isclose(fractions.sum(), 1.0):
        raise ParameterError("fractions", fractions.tolist(), "positive shares of the training data summing to 1")
    if not 0 < test_fraction < 1:
        raise ParameterError("test_fraction", test_fraction, "a fraction in (0, 1)")
    if name == "breast-cancer":
        X, y = load_breast_cancer(return_X_y=True)
        y = 1 - y  # scikit-learn labels benign as 1; diagnose malignancy
    elif name == "digits":
        X, y = load_digits(return_X_y=True)
    else:
        raise ParameterError("dataset", name, f"one of {', '.join(DATASETS)}")
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=test_fraction, stratify=y, random_state=seed)
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    std[std == 0] = 1.0  # a pixel that is blank in every training image stays 0
    X_train, X_test = (X_train - mean) / std, (X_test - mean) / std
    order = np.random.default_rng(seed).permutation(len(y_train))
    bounds = np.round(np.cumsum(fractions) * len(order)).astype(int)
    parts = np.split(order, bounds[:-1])
    if any(len(p) == 0 for p in parts):
        raise ParameterError("fractions", fractions.tolist(), "shares large enough to give every hospital data")
    return Split([Dataset(X_train[p], y_train[p].astype(float)) for p in parts], Dataset(X_test, y_test.astype(float)),
                 classes=int(y.max()) + 1)
