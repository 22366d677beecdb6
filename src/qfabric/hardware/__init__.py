"""Component models (fibre, memory, source, detector, BSM station) and named hardware profiles."""

from qfabric.hardware.components import (
    BsmStation,
    Detector,
    Fibre,
    HardwareProfile,
    Memory,
    Source,
    plob_bound,
)
from qfabric.hardware.profiles import PROFILES, get_profile

__all__ = [
    "PROFILES",
    "BsmStation",
    "Detector",
    "Fibre",
    "HardwareProfile",
    "Memory",
    "Source",
    "get_profile",
    "plob_bound",
]
