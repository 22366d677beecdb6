"""Unit conversions shared by every layer.

The kernel clock counts integer **picoseconds** (``TICKS_PER_S = 10**12``); an int64 clock
covers 106 days of simulated time at that resolution.

>>> seconds_to_ticks(1.5e-3)
1500000000
>>> round(db_to_transmissivity(0.2 * 50), 4)
0.1
"""

from __future__ import annotations

import math

TICKS_PER_S = 10**12
SPEED_OF_LIGHT_KM_PER_S = 299_792.458
FIBRE_REFRACTIVE_INDEX = 1.47


def seconds_to_ticks(seconds: float) -> int:
    """Seconds to kernel ticks (picoseconds), rounded to the nearest tick."""
    return round(seconds * TICKS_PER_S)


def ticks_to_seconds(ticks: int) -> float:
    """Kernel ticks (picoseconds) to seconds."""
    return ticks / TICKS_PER_S


def db_to_transmissivity(loss_db: float) -> float:
    """Fraction of power left after ``loss_db`` decibels of loss: 10 dB -> 0.1."""
    return 10.0 ** (-loss_db / 10.0)


def transmissivity_to_db(transmissivity: float) -> float:
    """Loss in decibels of a channel that keeps ``transmissivity`` of the power: 0.01 -> 20 dB."""
    return -10.0 * math.log10(transmissivity)


def fibre_delay_s(length_km: float, refractive_index: float = FIBRE_REFRACTIVE_INDEX) -> float:
    """One-way propagation delay of light in fibre: about 4.9 us per km."""
    return length_km * refractive_index / SPEED_OF_LIGHT_KM_PER_S
