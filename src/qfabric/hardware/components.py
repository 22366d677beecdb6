"""Component models: fibre, quantum memory, photon source, detector, and a hardware profile bundling them.

Every parameter carries its unit in its name; every constructor checks its ranges.

>>> round(Fibre(length_km=50).transmissivity, 3)
0.1
>>> round(Fibre(length_km=1).delay_s * 1e6, 2)     # microseconds per km
4.9
>>> m = Memory(depolarising_time_s=1.0)
>>> [round(p, 4) for p in m.pauli_probabilities(0.5)]
[0.7049, 0.0984, 0.0984, 0.0984]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from qfabric.errors import ParameterError
from qfabric.states import compose, t1_t2_pauli_probabilities
from qfabric.units import FIBRE_REFRACTIVE_INDEX, db_to_transmissivity, fibre_delay_s

_IDENTITY = (1.0, 0.0, 0.0, 0.0)


def _probability(name: str, value: float, *, allow_zero: bool = True) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value)) or value < 0 or value > 1:
        raise ParameterError(name, value, "a number in [0, 1]")
    if not allow_zero and value == 0:
        raise ParameterError(name, value, "a number in (0, 1]")


def _positive(name: str, value: float, *, allow_inf: bool = False) -> None:
    ok = isinstance(value, int | float) and value > 0 and (allow_inf or math.isfinite(value))
    if not ok or math.isnan(value):
        raise ParameterError(name, value, "a positive number" + (" (inf allowed)" if allow_inf else ""))


@dataclass(frozen=True)
class Fibre:
    """Optical fibre: power transmissivity ``10^(-attenuation * length / 10)`` and propagation delay."""

    length_km: float
    attenuation_db_per_km: float = 0.2
    refractive_index: float = FIBRE_REFRACTIVE_INDEX

    def __post_init__(self) -> None:
        if not (isinstance(self.length_km, int | float) and math.isfinite(self.length_km)) or self.length_km < 0:
            raise ParameterError("length_km", self.length_km, "a non-negative length in km")
        if not math.isfinite(self.attenuation_db_per_km) or self.attenuation_db_per_km < 0:
            raise ParameterError("attenuation_db_per_km", self.attenuation_db_per_km, "a non-negative dB/km")
        if self.refractive_index < 1:
            raise ParameterError("refractive_index", self.refractive_index, "a number >= 1")

    @property
    def loss_db(self) -> float:
        return self.attenuation_db_per_km * self.length_km

    @property
    def transmissivity(self) -> float:
        return db_to_transmissivity(self.loss_db)

    @property
    def delay_s(self) -> float:
        return fibre_delay_s(self.length_km, self.refractive_index)


@dataclass(frozen=True)
class Memory:
    """A quantum memory qubit.

    Decoherence: T1 (amplitude damping) and T2 (dephasing), and/or a depolarising time;
    ``inf`` switches a mechanism off. ``efficiency`` is the probability that an emitted photon
    leaves the memory's node into the fibre (emission, collection, frequency conversion).
    ``capacity`` is the number of memory qubits this node devotes to each of its links.
    """

    t1_s: float = math.inf
    t2_s: float = math.inf
    depolarising_time_s: float = math.inf
    efficiency: float = 1.0
    capacity: int = 1

    def __post_init__(self) -> None:
        _positive("t1_s", self.t1_s, allow_inf=True)
        _positive("t2_s", self.t2_s, allow_inf=True)
        _positive("depolarising_time_s", self.depolarising_time_s, allow_inf=True)
        if math.isfinite(self.t2_s) and self.t2_s > 2 * self.t1_s:
            raise ParameterError("t2_s", self.t2_s, f"at most 2 * t1_s = {2 * self.t1_s} s")
        _probability("efficiency", self.efficiency, allow_zero=False)
        if not isinstance(self.capacity, int) or self.capacity < 1:
            raise ParameterError("capacity", self.capacity, "a whole number of memories >= 1")
        has_t1_t2 = math.isfinite(self.t1_s) or math.isfinite(self.t2_s)
        object.__setattr__(self, "_has_t1_t2", has_t1_t2)
        object.__setattr__(self, "is_ideal", not (has_t1_t2 or math.isfinite(self.depolarising_time_s)))
        depolarising = 1.0 / self.depolarising_time_s
        t2 = self.t2_s if math.isfinite(self.t2_s) else 2.0 * self.t1_s
        object.__setattr__(self, "decay_rates", (1.0 / self.t1_s + depolarising, 1.0 / t2 + depolarising,
                                                 1.0 / t2 + depolarising))

    decay_rates: tuple[float, float, float] = field(init=False, repr=False, compare=False)
    """Decay rates (1/s) of the channel's Pauli-transfer eigenvalues on a stored half of a Bell pair:
    ``exp(-t * rate)`` multiplies the pair's Bell-diagonal Fourier components X, Z, Y (the Bloch vector's
    longitudinal part decays with 1/T1, the transverse parts with 1/T2, all with the depolarising rate).
    Equivalent to composing with :meth:`pauli_probabilities` (tested), and cheaper."""

    def pauli_probabilities(self, t_s: float) -> tuple[float, float, float, float]:
        """Pauli channel (I, X, Z, Y) of one memory storing its qubit for ``t_s`` seconds."""
        if t_s < 0:
            raise ParameterError("t_s", t_s, "a non-negative storage time")
        probs = _IDENTITY
        if self.depolarising_time_s != math.inf:
            q = (1.0 - math.exp(-t_s / self.depolarising_time_s)) / 4.0
            probs = (1.0 - 3.0 * q, q, q, q)
        if self._has_t1_t2:
            t1 = self.t1_s if math.isfinite(self.t1_s) else math.inf
            t2 = self.t2_s if math.isfinite(self.t2_s) else 2 * t1
            if math.isinf(t1) and math.isinf(t2):
                return probs
            if math.isinf(t1):
                t1 = 1e300  # pure dephasing: no relaxation
            probs = compose(probs, t1_t2_pauli_probabilities(t_s, t1, t2))
        return probs


@dataclass(frozen=True)
class Source:
    """The emitter driving each entanglement attempt.

    ``attempt_rate_hz`` caps how often a memory can try (its reset and emission time);
    ``bright_state_population`` is the alpha of single-click generation; ``emission_fidelity``
    is the fidelity of the spin-photon entangled state each node emits.
    """

    attempt_rate_hz: float = 1e6
    bright_state_population: float = 0.1
    emission_fidelity: float = 1.0

    def __post_init__(self) -> None:
        _positive("attempt_rate_hz", self.attempt_rate_hz)
        _probability("bright_state_population", self.bright_state_population, allow_zero=False)
        _probability("emission_fidelity", self.emission_fidelity)
        if self.emission_fidelity < 0.25:
            raise ParameterError("emission_fidelity", self.emission_fidelity, "a fidelity in [0.25, 1]")


@dataclass(frozen=True)
class Detector:
    """Single-photon detector: ``efficiency`` and the probability of a dark count per detection window."""

    efficiency: float = 0.9
    dark_count_probability: float = 0.0

    def __post_init__(self) -> None:
        _probability("efficiency", self.efficiency, allow_zero=False)
        _probability("dark_count_probability", self.dark_count_probability)


@dataclass(frozen=True)
class BsmStation:
    """The midpoint Bell-state-measurement station: two detectors behind a beam splitter.

    ``visibility`` is the two-photon interference visibility (indistinguishability and phase
    stability); imperfect visibility turns part of the heralded state into its phase-flipped twin.
    """

    detector: Detector = field(default_factory=Detector)
    visibility: float = 1.0

    def __post_init__(self) -> None:
        _probability("visibility", self.visibility)


@dataclass(frozen=True)
class HardwareProfile:
    """The hardware of one kind of node and link, referenced by name from a scenario.

    ``swap_success_probability`` and ``swap_depolarising`` describe the Bell-state measurement
    that repeater nodes use for entanglement swapping (a linear-optics BSM succeeds half the time;
    a deterministic gate-based one always, with some gate noise).
    """

    name: str = "custom"
    memory: Memory = field(default_factory=Memory)
    source: Source = field(default_factory=Source)
    station: BsmStation = field(default_factory=BsmStation)
    swap_success_probability: float = 1.0
    swap_depolarising: float = 0.0
    description: str = ""

    def __post_init__(self) -> None:
        _probability("swap_success_probability", self.swap_success_probability, allow_zero=False)
        _probability("swap_depolarising", self.swap_depolarising)

    def with_overrides(self, overrides: dict[str, Any]) -> HardwareProfile:
        """A copy with some fields replaced: ``{"memory": {"t2_s": 0.5}, "swap_success_probability": 0.5}``."""
        changes: dict[str, Any] = {}
        for key, value in overrides.items():
            current = getattr(self, key)
            if isinstance(value, dict) and key == "station" and "detector" in value:
                value = dict(value)
                value["detector"] = replace(current.detector, **value["detector"])
            changes[key] = replace(current, **value) if isinstance(value, dict) else value
        return replace(self, **changes)


def plob_bound(transmissivity: float) -> float:
    """Repeaterless (PLOB) bound: secret bits or ebits per channel use over a pure-loss channel.

    Pirandola, Laurenza, Ottaviani, Banchi, Nat. Commun. 8, 15043 (2017): ``-log2(1 - eta)``,
    about ``1.44 eta`` for small eta.

    >>> round(plob_bound(0.01), 5)
    0.0145
    """
    if not 0 <= transmissivity <= 1:
        raise ParameterError("transmissivity", transmissivity, "a number in [0, 1]")
    return math.inf if transmissivity == 1 else -math.log2(1.0 - transmissivity)
