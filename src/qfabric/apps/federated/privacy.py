"""Differential privacy for federated learning, at two units of privacy:

* **record** (patient-level): DP-SGD inside each organisation's training (:class:`DpSgd`): every training step
  draws a Poisson sample of the records, clips each record's gradient to ``clip_norm`` and adds Gaussian noise of
  standard deviation ``noise_multiplier * clip_norm`` to their sum (Abadi et al., CCS 2016). It protects any one
  patient of any organisation, against the aggregator and everyone who sees a model.
* **organisation**: each organisation clips its whole update (:func:`clip`) and adds its share of the noise
  (:func:`add_noise`); the secure sum carries noise ``z C``. It protects whether one organisation took part and
  what its whole data set says, which is only affordable with many organisations per round.

The privacy spent comes from the RDP accountant of Google's ``dp-accounting``:

>>> acc = PrivacyAccountant(noise_multiplier=1.1, sampling_rate=1.0, delta=1e-5)
>>> 20 < acc.epsilon(steps=20) < 30
True
>>> dp = DpSgd(clip_norm=1.0, noise_multiplier=1.5)
>>> dp.steps(examples=287, batch_size=32, epochs=2), round(dp.sampling_rate(287, 32), 3)
(18, 0.111)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qfabric.errors import ParameterError

# RDP orders the accountant tries: the fractional ones matter below order 8 (where DP-SGD's optimum lies at
# epsilon ~1-10); orders above 64 only help at epsilon < 1 and cost most of the computation.
RDP_ORDERS = (1.25, 1.5, 1.75, *(2 + x / 4 for x in range(24)), *range(8, 64))


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


def noise_generator(source: str | None, seed: np.random.SeedSequence) -> np.random.Generator:
    """The generator of a node's DP noise: numpy's PCG64 (``seeded``), or the simulated QRNG's health-tested,
    extracted output (``qrng``; a failed health test stops the noise, and with it the round)."""
    if source == "qrng":
        from qfabric.apps.qrng import generator

        return generator(seed=int(seed.generate_state(1)[0]))
    return np.random.default_rng(seed)


@dataclass(frozen=True)
class DpSgd:
    """Record-level DP in training: per-record clipping to ``clip_norm`` and Gaussian noise of standard deviation
    ``noise_multiplier * clip_norm`` on each step's gradient sum, over Poisson samples of ``batch_size`` records on
    average (``epochs`` passes: ``steps`` samples)."""

    clip_norm: float
    noise_multiplier: float

    def __post_init__(self) -> None:
        if self.clip_norm <= 0 or self.noise_multiplier <= 0:
            raise ParameterError("DP-SGD", (self.clip_norm, self.noise_multiplier),
                                 "a positive clip_norm and noise_multiplier")

    @staticmethod
    def sampling_rate(examples: int, batch_size: int) -> float:
        return min(1.0, batch_size / examples)

    @staticmethod
    def steps(examples: int, batch_size: int, epochs: int) -> int:
        """Poisson samples of ``batch_size`` records on average that make ``epochs`` passes over ``examples``."""
        return max(1, round(epochs * examples / min(batch_size, examples)))


@dataclass(frozen=True)
class PrivacyAccountant:
    """(epsilon, delta) spent after some steps of the Gaussian mechanism with Poisson sampling (a step: an
    organisation-level round, or one DP-SGD step)."""

    noise_multiplier: float
    sampling_rate: float = 1.0
    delta: float = 1e-5

    def __post_init__(self) -> None:
        if self.noise_multiplier <= 0:
            raise ParameterError("noise_multiplier", self.noise_multiplier, "a positive noise multiplier")
        if not 0 < self.sampling_rate <= 1 or not 0 < self.delta < 1:
            raise ParameterError("sampling_rate/delta", (self.sampling_rate, self.delta), "values in (0, 1]")

    def epsilon(self, steps: int) -> float:
        return self.epsilon_curve(steps, 1)[0] if steps >= 1 else 0.0

    def rdp(self, steps: int) -> np.ndarray:
        """The Renyi DP after ``steps`` steps at each of ``RDP_ORDERS`` (``dp-accounting``'s RDP accountant)."""
        from dp_accounting import dp_event  # 0.7 s to import: only the aggregator accounts, not every node
        from dp_accounting.rdp import rdp_privacy_accountant

        accountant = rdp_privacy_accountant.RdpAccountant(RDP_ORDERS)
        event = dp_event.PoissonSampledDpEvent(self.sampling_rate, dp_event.GaussianDpEvent(self.noise_multiplier))
        absl = logging.getLogger("absl")
        level = absl.level
        absl.setLevel(logging.ERROR)  # "failed to converge ... excluding this order": the library copes; no news
        try:
            accountant.compose(dp_event.SelfComposedDpEvent(event, steps))
        finally:
            absl.setLevel(level)
        return np.asarray(accountant._rdp)  # the accountant's own state: no public getter in dp-accounting 0.6

    def epsilon_curve(self, steps_per_round: int, rounds: int) -> list[float]:
        """Epsilon after each of ``rounds`` rounds of ``steps_per_round`` steps. RDP adds up over steps, so one
        accounting of a round, scaled, gives every round (``dp-accounting``'s conversion to epsilon)."""
        from dp_accounting.rdp import rdp_privacy_accountant

        per_round = self.rdp(steps_per_round)
        return [float(rdp_privacy_accountant.compute_epsilon(RDP_ORDERS, per_round * r, self.delta)[0])
                for r in range(1, rounds + 1)]


def record_epsilon_curve(dp: DpSgd, examples: Sequence[int], batch_size: int, epochs: int, rounds: int,
                         delta: float) -> list[float]:
    """Record-level epsilon after each round: the largest over the organisations (each with ``examples``
    records), since a patient's record is in one organisation's data.

    >>> curve = record_epsilon_curve(DpSgd(1.0, 1.5), [718, 432, 287], batch_size=32, epochs=2, rounds=20, delta=1e-5)
    >>> round(curve[0], 2), round(curve[-1], 2)
    (2.09, 8.6)
    """
    curves = [PrivacyAccountant(dp.noise_multiplier, dp.sampling_rate(n, batch_size), delta)
              .epsilon_curve(dp.steps(n, batch_size, epochs), rounds) for n in examples]
    return [max(c[r] for c in curves) for r in range(rounds)]


def organisation_epsilon_curve(noise_multiplier: float, rounds: int, delta: float) -> list[float]:
    """Organisation-level epsilon after each round: every organisation takes part in every round.

    >>> round(organisation_epsilon_curve(2.5, 20, 1e-5)[-1], 2)
    9.37
    """
    return PrivacyAccountant(noise_multiplier, 1.0, delta).epsilon_curve(1, rounds)
