"""A fidelity quantum kernel as a scikit-learn transformer: ``K[i, j] = |<psi(x_i)|psi(x_j)>|^2``.

Each sample's embedded state is computed once (:func:`~qfabric.apps.qml.featuremaps.embed`) and the whole
matrix is one product, ``K = |S1 S2^H|^2``, never one circuit per entry.

Optional noise, as a device running the compute-uncompute circuit ``U(x_j)^H U(x_i)`` and measuring
``P(0...0)`` would see it:

* ``hardware_profile``: a global depolarising model. Each CNOT of the circuit (two per ``Z_i Z_j`` term per
  layer, both halves) depolarises with the profile's two-qubit gate error ``swap_depolarising`` (the gate
  of its Bell-state measurement); treating every gate's error as depolarising the whole register gives
  ``K' = lam K + (1 - lam) / 2**n`` with ``lam = (1 - p)**(CNOTs)``. Single-qubit gates and readout are
  taken as perfect. It is the usual first-order model of noisy kernels (Wang, Du, Luo, Tao, Quantum 5, 531
  (2021)), not a gate-level density-matrix simulation.
* ``shots``: each entry is then estimated from ``shots`` runs, ``Binomial(shots, K') / shots`` (seeded).

>>> import numpy as np
>>> from sklearn.svm import SVC
>>> X = np.array([[0.1, 0.2], [0.3, 2.5], [2.9, 0.4], [3.0, 2.8]]); y = [0, 0, 1, 1]
>>> qk = QuantumKernel(feature_map="angle")
>>> K = qk.fit_transform(X)
>>> bool(np.allclose(np.diag(K), 1)), SVC(kernel="precomputed").fit(K, y).predict(qk.transform(X)).tolist()
(True, [0, 0, 1, 1])
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from qfabric.apps.qml.featuremaps import ENTANGLEMENTS, FEATURE_MAPS, as_samples, embed, two_qubit_gate_count
from qfabric.errors import ParameterError


def kernel_from_states(S1: np.ndarray, S2: np.ndarray | None = None) -> np.ndarray:
    """``|S1 S2^H|^2`` for states as rows (``S2`` defaults to ``S1``; the result is then exactly symmetric)."""
    if S2 is None:
        overlap = S1 @ S1.conj().T
        K = overlap.real**2 + overlap.imag**2
        return (K + K.T) / 2
    overlap = S1 @ S2.conj().T
    return overlap.real**2 + overlap.imag**2


def depolarised(K: np.ndarray, n_qubits: int, lam: float) -> np.ndarray:
    """The global depolarising model ``lam K + (1 - lam) / 2**n``."""
    return lam * K + (1 - lam) / 2.0**n_qubits


class QuantumKernel(TransformerMixin, BaseEstimator):
    """Fidelity kernel of a feature map; ``fit(X)`` keeps the training states, ``transform(Z)`` gives
    ``K(Z, X)`` (what ``SVC(kernel="precomputed")`` wants at fit and at predict, also in a ``Pipeline``).
    Calling it, ``qk(A, B)``, gives ``K(A, B)`` (so ``SVC(kernel=qk)`` works too).

    ``feature_map``: ``zz``, ``iqp`` or ``angle``; ``reps`` layers; ``entanglement``: ``full``, ``linear`` or
    ``circular`` pairs; ``shots``: ``None`` (exact) or a number of shots per entry; ``hardware_profile``: a
    name of :data:`qfabric.hardware.profiles.PROFILES` or ``None``; ``two_qubit_error``: the CNOT
    depolarising probability, overriding the profile's; ``seed`` of the shot noise.
    """

    def __init__(self, feature_map: str = "zz", reps: int = 2, entanglement: str = "full", shots: int | None = None,
                 hardware_profile: str | None = None, two_qubit_error: float | None = None, seed: int | None = None):
        self.feature_map = feature_map
        self.reps = reps
        self.entanglement = entanglement
        self.shots = shots
        self.hardware_profile = hardware_profile
        self.two_qubit_error = two_qubit_error
        self.seed = seed

    # -- parameters ------------------------------------------------------------------------------------
    def _check_params(self) -> None:
        if self.feature_map not in FEATURE_MAPS:
            raise ParameterError("feature_map", self.feature_map, f"one of {', '.join(FEATURE_MAPS)}")
        if self.entanglement not in ENTANGLEMENTS:
            raise ParameterError("entanglement", self.entanglement, f"one of {', '.join(ENTANGLEMENTS)}")
        if self.shots is not None and (not isinstance(self.shots, int | np.integer) or self.shots < 1):
            raise ParameterError("shots", self.shots, "None (exact) or a positive whole number")
        if self.two_qubit_error is not None and not 0 <= self.two_qubit_error <= 1:
            raise ParameterError("two_qubit_error", self.two_qubit_error, "a probability in [0, 1]")

    def gate_error(self) -> float:
        """The CNOT depolarising probability in use (0 without a profile or an explicit error)."""
        if self.two_qubit_error is not None:
            return float(self.two_qubit_error)
        if self.hardware_profile is None:
            return 0.0
        from qfabric.hardware.profiles import get_profile

        return float(get_profile(self.hardware_profile).swap_depolarising)

    def survival(self, n_qubits: int) -> float:
        """``lam = (1 - p)**CNOTs`` of the compute-uncompute circuit (both halves)."""
        cnots = 2 * two_qubit_gate_count(n_qubits, self.feature_map, self.reps, self.entanglement)
        return (1.0 - self.gate_error()) ** cnots

    # -- scikit-learn --------------------------------------------------------------------------------------
    def states(self, X) -> np.ndarray:
        """The embedded states of ``X``'s rows, ``(m, 2**n)``."""
        self._check_params()
        return embed(X, self.feature_map, self.reps, self.entanglement)

    def fit(self, X, y=None):
        """Embed the training samples once; ``y`` is ignored."""
        X = as_samples(X)
        self.states_ = self.states(X)
        self.n_qubits_ = X.shape[1]
        self.n_features_in_ = X.shape[1]
        self._rng = np.random.default_rng(self.seed)
        return self

    def transform(self, X) -> np.ndarray:
        """``K(X, X_fit)``, shape ``(len(X), len(X_fit))``."""
        check_is_fitted(self, "states_")
        X = as_samples(X, self.n_qubits_)
        return self._finish(kernel_from_states(self.states(X), self.states_), symmetric=False)

    def fit_transform(self, X, y=None, **params) -> np.ndarray:
        """``fit(X)`` then ``K(X, X)`` from the same states (computed once)."""
        self.fit(X)
        return self._finish(kernel_from_states(self.states_), symmetric=True)

    def __call__(self, A, B=None) -> np.ndarray:
        """``K(A, B)`` (``B`` defaults to ``A``), exact or with the configured noise; needs no fit."""
        A = as_samples(A, name="A")
        SA = self.states(A)
        if B is None:
            K = kernel_from_states(SA)
        else:
            SB = self.states(as_samples(B, A.shape[1], name="B"))
            K = kernel_from_states(SA, SB)
        if not hasattr(self, "_rng"):
            self._rng = np.random.default_rng(self.seed)
        return self._finish(K, symmetric=B is None, n_qubits=A.shape[1])

    def _finish(self, K: np.ndarray, symmetric: bool, n_qubits: int | None = None) -> np.ndarray:
        n_qubits = n_qubits or self.n_qubits_
        lam = self.survival(n_qubits)
        if lam < 1:
            K = depolarised(K, n_qubits, lam)
        if self.shots is None:
            return K
        p = np.clip(K, 0.0, 1.0)
        if symmetric:  # one estimate per pair, mirrored
            upper = np.triu_indices(len(K))
            counts = np.zeros_like(K)
            counts[upper] = self._rng.binomial(self.shots, p[upper])
            return (counts + np.triu(counts, 1).T) / self.shots
        return self._rng.binomial(self.shots, p) / self.shots
