"""Named hardware profiles a scenario can reference (``profile: nv-diamond``) and override per link.

The numbers are representative of published experiments of each platform, rounded; they are
a starting point for design studies, not a claim about any one device.
"""

from __future__ import annotations

from qfabric.errors import ParameterError
from qfabric.hardware.components import BsmStation, Detector, HardwareProfile, Memory, Source

PROFILES: dict[str, HardwareProfile] = {
    "nv-diamond": HardwareProfile(
        name="nv-diamond",
        description=(
            "NV centre in diamond with a carbon-spin memory, frequency-converted to telecom band; "
            "single-click generation (after Hermans et al., Nature 605, 663 (2022); Pompili et al., "
            "Science 372, 259 (2021)): memory T2 ~ 1 s with decoupling, photon emission+collection "
            "into fibre ~ 10 %, 90 % visibility."
        ),
        memory=Memory(t1_s=3600.0, t2_s=1.0, efficiency=0.1, capacity=1),
        source=Source(attempt_rate_hz=2e5, bright_state_population=0.05, emission_fidelity=0.99),
        station=BsmStation(detector=Detector(efficiency=0.8, dark_count_probability=1e-7), visibility=0.9),
        swap_success_probability=1.0,
        swap_depolarising=0.01,
    ),
    "trapped-ion": HardwareProfile(
        name="trapped-ion",
        description=(
            "Trapped-ion memory with telecom conversion (after Krutyanskiy et al., PRL 130, 050803 "
            "(2023)): coherence ~ 1 s, fibre-coupled photon efficiency ~ 20 %, double-click heralding."
        ),
        memory=Memory(t1_s=10.0, t2_s=1.0, efficiency=0.2, capacity=2),
        source=Source(attempt_rate_hz=5e4, bright_state_population=0.1, emission_fidelity=0.97),
        station=BsmStation(detector=Detector(efficiency=0.85, dark_count_probability=1e-6), visibility=0.95),
        swap_success_probability=1.0,
        swap_depolarising=0.02,
    ),
    "near-term": HardwareProfile(
        name="near-term",
        description=(
            "An optimistic near-term repeater node: multiplexed memory (4 qubits per link) with 10 s "
            "depolarising time, 50 % fibre-coupled efficiency, 1 MHz attempts, 95 % visibility."
        ),
        memory=Memory(depolarising_time_s=10.0, efficiency=0.5, capacity=4),
        source=Source(attempt_rate_hz=1e6, bright_state_population=0.05, emission_fidelity=0.995),
        station=BsmStation(detector=Detector(efficiency=0.9, dark_count_probability=1e-6), visibility=0.95),
        swap_success_probability=1.0,
        swap_depolarising=0.005,
    ),
    "ideal": HardwareProfile(
        name="ideal",
        description="Lossless emitters, perfect detectors and memories: only fibre loss and delay remain.",
        memory=Memory(efficiency=1.0, capacity=1),
        source=Source(attempt_rate_hz=1e9, bright_state_population=0.01, emission_fidelity=1.0),
        station=BsmStation(detector=Detector(efficiency=1.0, dark_count_probability=0.0), visibility=1.0),
    ),
}


def get_profile(name: str) -> HardwareProfile:
    """The built-in profile ``name``; raises with the list of known names."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ParameterError("profile", name, f"one of {sorted(PROFILES)}") from None
