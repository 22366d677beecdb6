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


def __getattr__(name: str):
    """``DensityMatrix`` (numpy) is imported on first use: the Bell-diagonal functions are pure Python, so code
    that only needs them (``qfabric validate``, the hardware and link models) does not load numpy."""
    if name == "DensityMatrix":
        from qfabric.states.density import DensityMatrix

        return DensityMatrix
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
