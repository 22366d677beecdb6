"""The 'ad hoc' dataset of Havlicek et al., Nature 567, 209 (2019), generated (seeded).

Samples ``x`` are drawn uniformly from ``[0, 2 pi)^n``; each is embedded with the paper's ZZ map
(``|Phi(x)> = U_Z(x) H^n U_Z(x) H^n |0>``, all pairs), and labelled by the sign of
``<Phi(x)| V^H Z^{(x)n} V |Phi(x)>`` for a Haar-random unitary ``V``; samples with ``|value| < gap``
are rejected, which leaves a margin between the classes. The paper uses 2 qubits and ``gap = 0.3``
(sampled on a grid; here uniformly, as Qiskit's ``ad_hoc_data`` does beyond 3 qubits). The parity of a
random ``n``-qubit state is of order ``2**(-n/2)``, so at many qubits a fixed gap rejects almost everything:
:func:`default_gap` is 0.3 up to 3 qubits and 0 beyond.

>>> X, y = ad_hoc_data(20, n_qubits=2, seed=1)
>>> X.shape, sorted(set(y.tolist())), int(y.sum())
((20, 2), [0, 1], 10)
"""

from __future__ import annotations

import numpy as np
from scipy.stats import unitary_group

from qfabric.apps.qml.featuremaps import basis_bits, embed
from qfabric.errors import ParameterError, QfabricError


def default_gap(n_qubits: int) -> float:
    """0.3 (the paper's) up to 3 qubits, 0 beyond."""
    return 0.3 if n_qubits <= 3 else 0.0


def ad_hoc_labeller(n_qubits: int, seed: int | None = None):
    """``f(X) -> parity expectation`` of the ad hoc construction with the Haar-random ``V`` of ``seed``."""
    V = unitary_group.rvs(2**n_qubits, random_state=np.random.default_rng(seed))
    parity = 1 - 2 * (basis_bits(n_qubits).sum(axis=1) % 2)  # diagonal of Z^{(x)n}
    observable = V.conj().T @ (parity[:, None] * V)

    def expectation(X: np.ndarray) -> np.ndarray:
        S = embed(X, "zz", reps=2, entanglement="full")
        return np.einsum("mi,ij,mj->m", S.conj(), observable, S).real

    return expectation


def ad_hoc_data(n_samples: int, n_qubits: int = 2, gap: float | None = None, seed: int | None = None,
                max_draws: int = 1_000_000) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)``: ``n_samples`` samples (half of each class, label 0 and 1, shuffled) of the ad hoc dataset."""
    if not isinstance(n_samples, int | np.integer) or n_samples < 2 or n_samples % 2:
        raise ParameterError("n_samples", n_samples, "an even number >= 2 (half of each class)")
    if not isinstance(n_qubits, int | np.integer) or not 1 <= n_qubits <= 14:
        raise ParameterError("n_qubits", n_qubits, "1 to 14 (the labelling observable is a dense 2^n x 2^n matrix)")
    gap = default_gap(n_qubits) if gap is None else gap
    if not 0 <= gap < 1:
        raise ParameterError("gap", gap, "a margin in [0, 1)")
    rng = np.random.default_rng(seed)
    label = ad_hoc_labeller(n_qubits, seed=rng.integers(2**63))
    half = n_samples // 2
    classes: list[list[np.ndarray]] = [[], []]
    counts = [0, 0]
    drawn = 0
    while min(counts) < half:
        if drawn >= max_draws:
            raise QfabricError(f"ad hoc data: only {counts} of {half} samples per class after {drawn} draws with "
                               f"gap {gap} at {n_qubits} qubits; use a smaller gap")
        batch = rng.uniform(0, 2 * np.pi, size=(max(64, 4 * n_samples), n_qubits))
        drawn += len(batch)
        value = label(batch)
        for cls, keep in ((1, value > gap), (0, value < -gap)):
            take = batch[keep][: half - counts[cls]]
            classes[cls].append(take)
            counts[cls] += len(take)
    X = np.concatenate([np.concatenate(classes[0]), np.concatenate(classes[1])])
    y = np.repeat([0, 1], half)
    order = rng.permutation(n_samples)
    return X[order], y[order]
