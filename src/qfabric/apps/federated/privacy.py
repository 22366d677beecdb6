"""Differential privacy for model updates: clipping, Gaussian noise, and the privacy spent (RDP accountant of
Google's ``dp-accounting``).

>>> acc = PrivacyAccountant(noise_multiplier=1.1, sampling_rate=1.0, delta=1e-5)
>>> 20 < acc.epsilon(rounds=20) < 30
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qfabric.errors import ParameterError


def clip(update: list[np.ndarray], max_norm: float) -> tuple[list[np.ndarray], float]:
    """Scale the whole update (all arrays together) to L2 norm at most ``max_norm``; returns it and the
    original norm."""
    if max_norm <= 0:
        raise ParameterError("max_norm", max_norm, "a positive clipping norm")
    norm = float(np.sqrt(sum(float(np.sum(np.square(a, dtype=np.float64))) for a in update)))
    factor = min(1.0, max_norm / norm) if norm > 0 else 1.0
    return [a * factor for a in update], norm


def add_noise(update: list[np.ndarray], std: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Gaussian noise of standard deviation ``std`` on every coordinate."""
    if std < 0:
        raise ParameterError("std", std, "a non-negative standard deviation")
    return [a + rng.normal(0.0, std, a.shape).astype(a.dtype, copy=False) for a in update]  # float64: no copy


@dataclass(frozen=True)
class PrivacyAccountant:
    """(epsilon, delta) spent after some rounds of the Gaussian mechanism with Poisson sampling."""

    noise_multiplier: float
    sampling_rate: float = 1.0
    delta: float = 1e-5

    def __post_init__(self) -> None:
        if self.noise_multiplier <= 0:
            raise ParameterError("noise_multiplier", self.noise_multiplier, "a positive noise multiplier")
        if not 0 < self.sampling_rate <= 1 or not 0 < self.delta < 1:
            raise ParameterError("sampling_rate/delta", (self.sampling_rate, self.delta), "values in (0, 1]")

    def epsilon(self, rounds: int) -> float:
        if rounds < 1:
            return 0.0
        from dp_accounting import dp_event  # 0.7 s to import: only the aggregator accounts, not every node
        from dp_accounting.rdp import rdp_privacy_accountant

        accountant = rdp_privacy_accountant.RdpAccountant()
        event = dp_event.PoissonSampledDpEvent(self.sampling_rate, dp_event.GaussianDpEvent(self.noise_multiplier))
        accountant.compose(dp_event.SelfComposedDpEvent(event, rounds))
        return float(accountant.get_epsilon(self.delta))
