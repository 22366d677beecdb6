"""Two-qubit pair states: Bell-diagonal weights (fast default) and density matrices, noise, swap, purification."""

from qfabric.states.bell import (
    BELL_LABELS,
    PAULI_LABELS,
    BellDiagonal,
    bbpssw,
    compose,
    dejmps,
    dephase,
    depolarise,
    depolarising_probabilities,
    depolarising_time_probabilities,
    pauli_channel,
    swap,
    t1_t2_pauli_probabilities,
    twirl_to_werner,
)
from qfabric.states.density import DensityMatrix

__all__ = [
    "BELL_LABELS",
    "PAULI_LABELS",
    "BellDiagonal",
    "DensityMatrix",
    "bbpssw",
    "compose",
    "dejmps",
    "dephase",
    "depolarise",
    "depolarising_probabilities",
    "depolarising_time_probabilities",
    "pauli_channel",
    "swap",
    "t1_t2_pauli_probabilities",
    "twirl_to_werner",
]
