"""Heralded entanglement generation between neighbours through a midpoint Bell-state-measurement station.

Two schemes, with success probability and heralded state derived from the hardware:

* **single-click** (one photon, Cabrillo et al. PRA 59, 1025 (1999); Humphreys et al. Nature 558,
  268 (2018)): each memory emits a photon with probability alpha (the bright-state population);
  one click at the station heralds. Per attempt ``p ~ 2 alpha eta_arm`` (so the rate scales as
  ``sqrt(eta_link)``) and the fidelity is about ``1 - alpha``: the double-emission branch is the
  error.
* **double-click** (Barrett and Kok, PRA 71, 060310 (2005)): both nodes emit spin-entangled
  photons in two rounds; a click in each round heralds. ``p = eta_arm^2 / 2`` (the rate scales as
  ``eta_link``), fidelity limited by visibility and dark counts.

Here ``eta_arm = memory.efficiency * fibre(L/2).transmissivity * detector.efficiency``. The herald
reaches the nodes one fibre delay of the whole link after emission (photon to the station, message
back) plus ``herald_latency_s`` (the protocol's own message rounds and processing); a memory cannot
try again before it knows the outcome, so an attempt takes ``max(1 / attempt_rate_hz, herald delay)``.

>>> from qfabric.hardware import get_profile
>>> link = HeraldedLink(length_km=20, profile=get_profile("ideal"), scheme="double-click")
>>> round(link.success_probability, 4)                 # eta_arm^2 / 2 = 10^-0.4 / 2
0.1991
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import TYPE_CHECKING

from qfabric.errors import ParameterError
from qfabric.hardware import Fibre, HardwareProfile, plob_bound
from qfabric.states import BellDiagonal, compose, depolarising_probabilities
from qfabric.units import FIBRE_REFRACTIVE_INDEX, seconds_to_ticks

if TYPE_CHECKING:  # only the random streams' type: the link models are pure Python (qfabric validate builds them)
    import numpy as np

_HALF_PHI = (0.5, 0.0, 0.5, 0.0)  # (|up,up> or |down,down>) mixture, twirled: Phi+ / Phi-
_HALF_PSI = (0.0, 0.5, 0.0, 0.5)  # bit-flipped: Psi+ / Psi-
_MIXED = (0.25, 0.25, 0.25, 0.25)


class Scheme(StrEnum):
    SINGLE_CLICK = "single-click"
    DOUBLE_CLICK = "double-click"


@dataclass(frozen=True)
class HeraldedLink:
    """One elementary link: a fibre of ``length_km`` with a BSM station at its midpoint."""

    length_km: float
    profile: HardwareProfile
    scheme: Scheme | str = Scheme.SINGLE_CLICK
    attenuation_db_per_km: float = 0.2
    herald_latency_s: float = 0.0
    refractive_index: float = FIBRE_REFRACTIVE_INDEX

    def __post_init__(self) -> None:
        if not (math.isfinite(self.herald_latency_s) and self.herald_latency_s >= 0):
            raise ParameterError("herald_latency_s", self.herald_latency_s, "non-negative seconds")
        try:
            object.__setattr__(self, "scheme", Scheme(self.scheme))
        except ValueError:
            raise ParameterError("scheme", self.scheme, f"one of {[s.value for s in Scheme]}") from None
        Fibre(self.length_km, self.attenuation_db_per_km, self.refractive_index)  # validates

    @cached_property
    def fibre(self) -> Fibre:
        return Fibre(self.length_km, self.attenuation_db_per_km, self.refractive_index)

    @cached_property
    def arm_efficiency(self) -> float:
        """Probability that a photon emitted at one node is detected at the station."""
        arm = Fibre(self.length_km / 2, self.attenuation_db_per_km).transmissivity
        return self.profile.memory.efficiency * arm * self.profile.station.detector.efficiency

    @cached_property
    def _outcome(self) -> tuple[float, tuple[float, float, float, float]]:
        if self.scheme is Scheme.SINGLE_CLICK:
            return self._single_click()
        return self._double_click()

    def _single_click(self) -> tuple[float, tuple[float, float, float, float]]:
        a = self.profile.source.bright_state_population
        eta = self.arm_efficiency
        pd = self.profile.station.detector.dark_count_probability
        v = self.profile.station.visibility
        good = (0.5 * (1 + v), 0.0, 0.5 * (1 - v), 0.0)  # Psi+/- corrected to Phi+; phase error -> Phi-
        branches = [
            (2 * a * (1 - a) * eta * (1 - pd), good),  # one emitter, photon detected
            (a * a * eta * (2 - eta) * (1 - pd), _HALF_PSI),  # both emitted: |up,up>, bit flip
            ((1 - a) ** 2 * 2 * pd * (1 - pd), _HALF_PSI),  # dark count, nobody emitted
            (2 * a * (1 - a) * (1 - eta) * 2 * pd * (1 - pd), _HALF_PHI),  # dark count, photon lost
            (a * a * (1 - eta) ** 2 * 2 * pd * (1 - pd), _HALF_PSI),  # dark count, both lost
        ]
        return self._mix(branches)

    def _double_click(self) -> tuple[float, tuple[float, float, float, float]]:
        eta = self.arm_efficiency
        pd = self.profile.station.detector.dark_count_probability
        v = self.profile.station.visibility
        good = (0.5 * (1 + v), 0.0, 0.5 * (1 - v), 0.0)
        branches = [
            (0.5 * eta * eta * (1 - pd) ** 2, good),
            # first order in the dark-count probability: one round's click is a dark count
            (2 * eta * pd + 2 * pd * pd, _MIXED),
        ]
        return self._mix(branches)

    def _mix(self, branches) -> tuple[float, tuple[float, float, float, float]]:
        p = sum(prob for prob, _ in branches)
        if p <= 0:
            raise ParameterError("link", self.length_km, "a link with a non-zero heralding probability")
        weights = tuple(sum(prob * state[k] for prob, state in branches) / p for k in range(4))
        w_em = (4 * self.profile.source.emission_fidelity - 1) / 3
        emission_noise = depolarising_probabilities(1 - w_em)
        weights = compose(compose(weights, emission_noise), emission_noise)  # each node's emission
        return p, weights

    @property
    def success_probability(self) -> float:
        """Probability that one attempt heralds a pair."""
        return self._outcome[0]

    @cached_property
    def heralded_state(self) -> BellDiagonal:
        """The pair state at the moment of heralding, before any storage (Pauli frame corrected to Phi+)."""
        return BellDiagonal(self._outcome[1])

    @property
    def herald_delay_s(self) -> float:
        """From emission to the herald reaching both nodes: photon to the station, message back, latency."""
        return self.fibre.delay_s + self.herald_latency_s

    @property
    def attempt_period_s(self) -> float:
        """One attempt per herald (the memory waits for the outcome), or slower if the source cannot keep up."""
        return max(1.0 / self.profile.source.attempt_rate_hz, self.herald_delay_s)

    @cached_property
    def attempt_period_ticks(self) -> int:
        return max(1, seconds_to_ticks(self.attempt_period_s))

    @property
    def expected_rate_hz(self) -> float:
        """Mean heralded pairs per second for one memory pair, generating without pause."""
        return self.success_probability / self.attempt_period_s

    def attempts_until_success(self, rng: np.random.Generator) -> int:
        """Attempts up to and including the first success: geometric on {1, 2, ...}."""
        return int(rng.geometric(self.success_probability))

    @property
    def plob_bound_per_use(self) -> float:
        """PLOB bound for the whole fibre of this link, ebits per channel use (per attempt)."""
        return plob_bound(self.fibre.transmissivity)

    @property
    def relay_bound_per_use(self) -> float:
        """The bound when the midpoint station counts as a relay (Pirandola's chain bound: the worse half).

        Single-click generation scales as ``sqrt(eta)`` and may exceed :attr:`plob_bound_per_use`
        at high loss, like twin-field QKD; it never exceeds this one.
        """
        return plob_bound(Fibre(self.length_km / 2, self.attenuation_db_per_km).transmissivity)

    @property
    def hashing_ebits_per_attempt(self) -> float:
        """Distillable ebits per attempt by one-way hashing (a lower bound on what the link delivers)."""
        return self.success_probability * self.heralded_state.hashing_yield


@dataclass(frozen=True)
class ClassicalChannel:
    """A classical message path: fibre delay plus fixed processing latency and uniform jitter.

    >>> ClassicalChannel(length_km=10, latency_s=1e-3).delay_ticks(None) > 10**9
    True
    """

    length_km: float = 0.0
    latency_s: float = 0.0
    jitter_s: float = 0.0
    refractive_index: float = FIBRE_REFRACTIVE_INDEX

    def __post_init__(self) -> None:
        Fibre(self.length_km, refractive_index=self.refractive_index)
        if self.latency_s < 0 or self.jitter_s < 0 or not math.isfinite(self.latency_s + self.jitter_s):
            raise ParameterError("latency_s/jitter_s", (self.latency_s, self.jitter_s), "non-negative seconds")

    def delay_ticks(self, rng: np.random.Generator | None) -> int:
        delay = Fibre(self.length_km, refractive_index=self.refractive_index).delay_s + self.latency_s
        if self.jitter_s and rng is not None:
            delay += float(rng.uniform(0.0, self.jitter_s))
        return seconds_to_ticks(delay)
