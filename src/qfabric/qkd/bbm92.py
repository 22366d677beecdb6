"""BBM92: both ends measure delivered entangled pairs in random bases (Z for key, X for testing).

A pair with Bell-diagonal weights ``(Phi+, Psi+, Phi-, Psi-)`` gives anticorrelated Z outcomes for
Psi+/Psi- (bit flip) and anticorrelated X outcomes for Phi-/Psi- (phase flip); ``e_det`` adds a
measurement error at Bob.

>>> import numpy as np
>>> weights = np.tile([0.94, 0.02, 0.02, 0.02], (100_000, 1))
>>> rec = measure_pairs(weights, p_z=0.5, rng=np.random.default_rng(3))
>>> c = rec.counts()
>>> round(float(c["m_z"][0] / c["n_z"][0]), 2)     # Z errors: Psi+ + Psi- = 0.04
0.04
"""

from __future__ import annotations

import numpy as np

from qfabric.errors import ParameterError
from qfabric.qkd.bb84 import RawRecords


def measure_pairs(weights: np.ndarray, p_z: float = 0.5, rng: np.random.Generator | None = None,
                  e_det: float = 0.0) -> RawRecords:
    """Measure one pair per row of ``weights`` (N x 4); returns records with every pair detected."""
    w = np.asarray(weights, dtype=float)
    if w.ndim != 2 or w.shape[1] != 4:
        raise ParameterError("weights", w.shape, "an N x 4 array of Bell-diagonal weights")
    if not (np.all(w >= -1e-12) and np.allclose(w.sum(axis=1), 1)):
        raise ParameterError("weights", "rows", "non-negative rows that sum to 1")
    if not 0 < p_z < 1 or not 0 <= e_det < 0.5:
        raise ParameterError("p_z/e_det", (p_z, e_det), "p_z in (0, 1) and e_det in [0, 0.5)")
    rng = rng or np.random.default_rng()
    n = len(w)
    cum = np.cumsum(w, axis=1)
    bell = np.minimum((rng.random(n)[:, None] > cum).sum(axis=1), 3)  # index x + 2z
    a_basis = (rng.random(n) >= p_z).astype(np.int8)
    b_basis = (rng.random(n) >= p_z).astype(np.int8)
    a_bit = rng.integers(0, 2, n, dtype=np.uint8)
    flip = np.where(a_basis == 0, bell & 1, bell >> 1).astype(np.uint8)  # Z: bit flips, X: phase flips
    flip ^= (rng.random(n) < e_det).astype(np.uint8)
    b_bit = np.where(a_basis == b_basis, a_bit ^ flip, rng.integers(0, 2, n, dtype=np.uint8)).astype(np.uint8)
    return RawRecords(n, np.array([n, 0, 0]), np.zeros(n, dtype=np.int8), a_basis, a_bit, b_basis, b_bit)
