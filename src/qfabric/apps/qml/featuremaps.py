"""Embedded states of quantum feature maps, a whole batch of samples at once (plain numpy statevectors).

Each map sends a sample ``x`` (one feature per qubit) to ``|psi(x)> = U(x)|0...0>``; :func:`embed` returns
the states of ``m`` samples as the rows of an ``(m, 2**n)`` complex matrix ``S``, so the kernel of two
batches is ``|S1 S2^H|^2`` (:mod:`qfabric.apps.qml.kernel`). Wire 0 is the most significant bit of the basis
index, as in PennyLane's ``qml.state()``.

``zz``     Havlicek et al., Nature 567, 209 (2019): ``(U_Z(x) H^n)^reps`` with
           ``U_Z(x) = exp(i sum_i x_i Z_i + i sum_{i<j} (pi - x_i)(pi - x_j) Z_i Z_j)`` (Qiskit's ``ZZFeatureMap``:
           ``P(2 x_i)`` and ``CNOT P(2 phi_ij) CNOT``).
``iqp``    PennyLane's ``IQPEmbedding``: ``(MultiRZ(x_i x_j) RZ(x_i) H^n)^reps``.
``angle``  PennyLane's ``AngleEmbedding`` (``RX(x_i)`` on each wire): a product state, no entanglement.

Both diagonal maps are ``reps`` times "Hadamard on every wire, then a diagonal phase": the phase of basis
state ``b`` is ``sum_i a_i b_i + sum_{i<j} a_ij (b_i XOR b_j)`` (up to a global phase), computed for all
samples by two matrix products; the Hadamards are a fast Walsh-Hadamard transform.

>>> import numpy as np
>>> S = embed(np.array([[0.3, 1.2], [2.0, 0.1]]), "zz")
>>> S.shape, bool(np.allclose(np.linalg.norm(S, axis=1), 1))
((2, 4), True)
"""

from __future__ import annotations

import itertools
import os

import numpy as np

from qfabric.errors import ParameterError, QfabricError

FEATURE_MAPS = ("zz", "iqp", "angle")
ENTANGLEMENTS = ("full", "linear", "circular")


class StateMemoryError(QfabricError):
    """The statevectors asked for do not fit in this machine's memory."""


def pairs(n_qubits: int, entanglement: str = "full") -> list[tuple[int, int]]:
    """The ``(i, j)`` pairs of two-qubit terms: ``pairs(3) == [(0, 1), (0, 2), (1, 2)]``."""
    if entanglement not in ENTANGLEMENTS:
        raise ParameterError("entanglement", entanglement, f"one of {', '.join(ENTANGLEMENTS)}")
    if entanglement == "full":
        return list(itertools.combinations(range(n_qubits), 2))
    linear = [(i, i + 1) for i in range(n_qubits - 1)]
    return linear + [(n_qubits - 1, 0)] if entanglement == "circular" and n_qubits > 2 else linear


def available_memory_bytes() -> int:
    """Physical memory free now (Linux/macOS ``sysconf``; a large number where it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 1 << 62


def check_memory(n_states: int, n_qubits: int, copies: float = 3.0) -> None:
    """Raise :class:`StateMemoryError` (saying how much is needed) if ``n_states`` statevectors of ``n_qubits``
    qubits (complex128, ``copies`` working copies) do not fit in free memory."""
    needed = copies * n_states * 16 * 2.0**n_qubits
    free = available_memory_bytes()
    if needed > free:
        raise StateMemoryError(
            f"qubits = {n_qubits}: {n_states} statevectors of 2^{n_qubits} amplitudes need {_size(needed)} "
            f"(complex128, {copies:g} working copies) but {_size(free)} is free; use fewer qubits or samples")


def _size(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if nbytes < 1024 or unit == "PiB":
            return f"{nbytes:.3g} {unit}"
        nbytes /= 1024
    return f"{nbytes:.3g} EiB"  # pragma: no cover


def as_samples(X, n_qubits: int | None = None, name: str = "X") -> np.ndarray:
    """``X`` as a finite float ``(m, n_qubits)`` array, or a :class:`ParameterError` naming what is wrong."""
    try:
        X = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError(name, type(X).__name__, "a numeric array of shape (samples, features)") from None
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise ParameterError(f"{name}.shape", X.shape, "(samples, features) with at least one of each")
    if n_qubits is not None and X.shape[1] != n_qubits:
        raise ParameterError(f"{name}.shape", X.shape, f"{n_qubits} features per sample (one per qubit)")
    if not np.isfinite(X).all():
        raise ParameterError(name, "non-finite values", "finite numbers")
    return X


def hadamard_all(states: np.ndarray) -> np.ndarray:
    """``H^{(x)n}`` applied to every row of ``states`` (``(m, 2**n)``), by the fast Walsh-Hadamard transform."""
    m, dim = states.shape
    out = states
    h = 1
    while h < dim:
        view = out.reshape(m, dim // (2 * h), 2, h)
        a, b = view[:, :, 0, :], view[:, :, 1, :]
        out = np.stack((a + b, a - b), axis=2).reshape(m, dim)
        h *= 2
    return out * (1 / np.sqrt(dim))


def basis_bits(n_qubits: int) -> np.ndarray:
    """``(2**n, n)`` 0/1 matrix: row ``b`` holds the bits of basis state ``b``, wire 0 the most significant."""
    index = np.arange(2**n_qubits)
    return ((index[:, None] >> (n_qubits - 1 - np.arange(n_qubits))[None, :]) & 1).astype(np.float64)


def diagonal_phases(X: np.ndarray, feature_map: str, entanglement: str = "full") -> np.ndarray:
    """``(m, 2**n)`` phases of the diagonal layer of ``zz`` or ``iqp`` for each sample (global phase dropped)."""
    n = X.shape[1]
    bits = basis_bits(n)
    pair_list = pairs(n, entanglement)
    if feature_map == "zz":
        single, double = 2 * X, [2 * (np.pi - X[:, i]) * (np.pi - X[:, j]) for i, j in pair_list]
    else:  # iqp
        single, double = X, [X[:, i] * X[:, j] for i, j in pair_list]
    phases = single @ bits.T
    if pair_list:
        parity = np.stack([np.logical_xor(bits[:, i], bits[:, j]) for i, j in pair_list], axis=1)
        phases += np.stack(double, axis=1) @ parity.T.astype(np.float64)
    return phases


def embed(X, feature_map: str = "zz", reps: int = 2, entanglement: str = "full") -> np.ndarray:
    """The embedded states of the rows of ``X`` (one feature per qubit) as an ``(m, 2**n)`` complex128 array.

    >>> import numpy as np
    >>> S = embed(np.array([[np.pi]]), "angle")          # RX(pi)|0> = -i|1>
    >>> np.round(S, 12).tolist()
    [[0j, -1j]]
    """
    if feature_map not in FEATURE_MAPS:
        raise ParameterError("feature_map", feature_map, f"one of {', '.join(FEATURE_MAPS)}")
    if not isinstance(reps, int | np.integer) or reps < 1:
        raise ParameterError("reps", reps, "a positive whole number of layers")
    X = as_samples(X)
    m, n = X.shape
    check_memory(m, n)
    if feature_map == "angle":
        states = np.ones((m, 1), dtype=np.complex128)
        for i in range(n):
            qubit = np.stack((np.cos(X[:, i] / 2), -1j * np.sin(X[:, i] / 2)), axis=1)
            states = (states[:, :, None] * qubit[:, None, :]).reshape(m, -1)
        return states
    phase = np.exp(1j * diagonal_phases(X, feature_map, entanglement))
    states = np.full((m, 2**n), 2 ** (-n / 2), dtype=np.complex128) * phase  # H^n |0> = uniform, then U_Z
    for _ in range(reps - 1):
        states = hadamard_all(states) * phase
    return states


def two_qubit_gate_count(n_qubits: int, feature_map: str, reps: int = 2, entanglement: str = "full") -> int:
    """CNOTs in one embedding circuit ``U(x)``: two per ``Z_i Z_j`` term per layer (none for ``angle``)."""
    if feature_map == "angle":
        return 0
    return 2 * reps * len(pairs(n_qubits, entanglement))


def gate_list(x, feature_map: str = "zz", reps: int = 2, entanglement: str = "full") -> list[tuple]:
    """The embedding circuit ``U(x)`` of one sample as gates, for simulators that apply them one by one (a
    density-matrix simulator whose cross-node CNOTs are remote gates on delivered pairs, for instance):
    ``("H", w)``, ``("P", w, angle)`` (``diag(1, e^{i angle})``), ``("RX", w, angle)``, ``("CNOT", control,
    target)``. Applied to ``|0...0>`` it gives :func:`embed`'s state up to a global phase.

    >>> gate_list([0.5, 1.0], "zz", reps=1)[:3]
    [('H', 0), ('H', 1), ('P', 0, 1.0)]
    """
    x = as_samples(np.atleast_2d(x))[0]
    n = len(x)
    if feature_map not in FEATURE_MAPS:
        raise ParameterError("feature_map", feature_map, f"one of {', '.join(FEATURE_MAPS)}")
    if feature_map == "angle":
        return [("RX", w, float(x[w])) for w in range(n)]
    single = 2 * x if feature_map == "zz" else x
    gates: list[tuple] = []
    for _ in range(reps):
        gates += [("H", w) for w in range(n)]
        gates += [("P", w, float(single[w])) for w in range(n)]
        for i, j in pairs(n, entanglement):
            angle = 2 * (np.pi - x[i]) * (np.pi - x[j]) if feature_map == "zz" else x[i] * x[j]
            gates += [("CNOT", i, j), ("P", j, float(angle)), ("CNOT", i, j)]
    return gates
