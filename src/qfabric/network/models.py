"""What the network engine needs to know of links, nodes and each circuit's protocol (times in kernel ticks).

``LinkModel(success_probability=0.1, attempt_period=10, herald_delay=10, state=...).expected_ticks_per_pair``
is ``100.0``. (Compiled with mypyc: examples live in ``tests/network/test_models.py``, not as doctests.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from qfabric.errors import ParameterError

Weights = tuple[float, float, float, float]


class SwapScheme(StrEnum):
    """Which pairs a repeater on a path swaps.

    * ``swap-asap``: as soon as it holds a pair on each side (the qubit-selection rule picks which);
    * ``nested``: a balanced binary tree over the path (the doubling scheme of Briegel et al. when the path
      has ``2^n`` links): node ``i`` swaps only the pair reaching back to its subtree's left end with the
      pair reaching its right end;
    * ``sequential``: from the head end outward: node ``i`` extends the pair that starts at the head end by
      one link.
    """

    SWAP_ASAP = "swap-asap"
    NESTED = "nested"
    SEQUENTIAL = "sequential"


class PurificationProtocol(StrEnum):
    BBPSSW = "bbpssw"
    DEJMPS = "dejmps"


class Multiplexing(StrEnum):
    """How circuits crossing one link share its memories (Aparicio, Van Meter, Esaki, Proc. SPIE 8163 (2011)).

    * ``statistical``: the memories are shared; a pair heralded on a link used by several circuits stays
      unbound until a circuit uses it (the longest-waiting partner first), like a quantum switch;
    * ``buffer-space``: each active circuit owns a fixed share of the memories (split evenly, the remainder to
      the circuits opened first) and generates only on them.
    """

    STATISTICAL = "statistical"
    BUFFER_SPACE = "buffer-space"


class SwapTiming(StrEnum):
    """How the swaps of one time step combine in the discrete chain model (``defer_swaps``).

    * ``sequential``: node by node from the head end; a failed swap loses only its two inputs (qfabric's
      original discrete model, the default);
    * ``simultaneous``: every node holding a pair on each side swaps at once; a run of adjacent swaps makes one
      link if all succeed and loses all its links if one fails (Iñesta, Vardoyan, Scavuzzo, Wehner, npj Quantum
      Inf. 9, 46 (2023)).
    """

    SEQUENTIAL = "sequential"
    SIMULTANEOUS = "simultaneous"


class LinkAge(StrEnum):
    """The age a swapped pair's cut-off counts from: the swap (``reset``, the default) or the oldest of its parts
    (``oldest``, the standard convention of Iñesta et al. 2023 and Kamin et al. 2023; it bounds every part's
    storage time by the cut-off)."""

    RESET = "reset"
    OLDEST = "oldest"


class QubitSelection(StrEnum):
    """Which of several waiting pairs a node uses first: the oldest (default), the youngest, or one at random."""

    OLDEST = "oldest"
    YOUNGEST = "youngest"
    RANDOM = "random"


@dataclass(frozen=True)
class ClassicalHop:
    """One hop of the classical network: fixed delay, uniform jitter, and loss repaired by retransmission.

    A lost message is sent again after ``retransmit_timeout`` ticks, so classical delivery stays reliable
    and loss costs time.
    """

    delay: int = 0
    jitter: int = 0
    loss_probability: float = 0.0
    retransmit_timeout: int = 0

    def __post_init__(self) -> None:
        if self.delay < 0 or self.jitter < 0 or self.retransmit_timeout < 0:
            raise ParameterError("delay", (self.delay, self.jitter, self.retransmit_timeout), "non-negative ticks")
        if not 0 <= self.loss_probability < 1:
            raise ParameterError("loss_probability", self.loss_probability, "a probability in [0, 1)")

    @property
    def deterministic(self) -> bool:
        return self.jitter == 0 and self.loss_probability == 0


@dataclass(frozen=True)
class LinkModel:
    """One elementary link between two neighbours.

    ``herald_delay`` is the time from the successful attempt's start to the herald reaching both nodes;
    ``stored_before_herald`` is how long the memories already held the pair then. ``capacity`` is the
    number of memory qubits each end devotes to this link unless the network says otherwise.
    """

    success_probability: float
    attempt_period: int
    herald_delay: int
    state: Weights
    capacity: int = 1
    stored_before_herald: int = 0
    classical_delay: int = 0  # one-way message delay between the two ends
    classical_jitter: int = 0
    classical_loss_probability: float = 0.0
    retransmit_timeout: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.success_probability <= 1:
            raise ParameterError("success_probability", self.success_probability, "a probability in (0, 1]")
        if self.attempt_period < 1 or self.herald_delay < 0 or self.stored_before_herald < 0:
            raise ParameterError("attempt_period", self.attempt_period, "a positive number of ticks")
        if self.capacity < 1:
            raise ParameterError("capacity", self.capacity, "at least one memory per side")

    @property
    def classical_hop(self) -> ClassicalHop:
        return ClassicalHop(self.classical_delay, self.classical_jitter, self.classical_loss_probability,
                            self.retransmit_timeout)

    @property
    def expected_ticks_per_pair(self) -> float:
        """Mean ticks from the first attempt to a heralded pair on one memory pair."""
        return (1 / self.success_probability - 1) * self.attempt_period + self.herald_delay


@dataclass(frozen=True)
class NodeModel:
    """A node's Bell-state measurement, used when it swaps."""

    swap_success_probability: float = 1.0
    swap_depolarising: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.swap_success_probability <= 1:
            raise ParameterError("swap_success_probability", self.swap_success_probability, "a probability in (0, 1]")
        if not 0 <= self.swap_depolarising <= 1:
            raise ParameterError("swap_depolarising", self.swap_depolarising, "a probability in [0, 1]")


def required_capacity(purification_rounds: int, purified_spans: int) -> int:
    """Memories per side that recurrence purification needs to never deadlock.

    At an end node, each purified span can hold one waiting pair per round done plus the one being
    made: ``rounds * spans + 1``.

    ``required_capacity(1, 1), required_capacity(2, 1), required_capacity(1, 2)`` are ``2, 3, 3``.
    """
    return purification_rounds * purified_spans + 1 if purification_rounds else 1


def nesting_levels(links: int) -> int:
    """Levels of the balanced swap tree over ``links`` links: ``ceil(log2(links))``.

    ``[nesting_levels(n) for n in (1, 2, 3, 4, 5, 8)]`` is ``[0, 1, 2, 2, 3, 3]``.
    """
    return (links - 1).bit_length()


@dataclass(frozen=True)
class Protocol:
    """How one circuit turns link pairs into end-to-end pairs.

    ``cutoffs``: swap-asap and sequential take one (a pair not used within it of its creation is
    discarded); nested takes one per level of the swap tree (a pair that waits longer than its level's
    cut-off at its swap node is discarded and, when every link has a single memory pair, the partner
    half restarts, as in Brand, Coopmans, Elkouss, IEEE JSAC 38, 619 (2020)). Purification (symmetric
    recurrence) applies to pairs whose span is in ``purification_spans``. ``link_age``: what a swapped pair's
    cut-off counts from; ``swap_timing``: how deferred swaps combine (see the enums). ``fidelity_min``: a pair whose
    fidelity at delivery is below it is discarded by the end nodes (they know the noise model, the
    creation times and the swap records, hence the fidelity).
    """

    scheme: SwapScheme | str = SwapScheme.SWAP_ASAP
    cutoffs: Sequence[int | None] | int | None = None
    purification_rounds: int = 0
    purification_protocol: PurificationProtocol | str = PurificationProtocol.DEJMPS
    purification_spans: Sequence[int] = (1,)
    regenerate_covered: bool = True
    defer_swaps: bool = False
    swap_handshake: bool = False
    mesh_delay: int | None = None
    fidelity_min: float | None = None
    swap_timing: SwapTiming | str = SwapTiming.SEQUENTIAL
    link_age: LinkAge | str = LinkAge.RESET

    def __post_init__(self) -> None:
        object.__setattr__(self, "scheme", _enum(SwapScheme, self.scheme, "scheme"))
        object.__setattr__(self, "swap_timing", _enum(SwapTiming, self.swap_timing, "swap_timing"))
        object.__setattr__(self, "link_age", _enum(LinkAge, self.link_age, "link_age"))
        if self.swap_timing is SwapTiming.SIMULTANEOUS and not self.defer_swaps:
            raise ParameterError("swap_timing", "simultaneous", "sequential unless swaps are deferred to the end of "
                                 "each step (defer_swaps, the discrete chain model)")
        object.__setattr__(self, "purification_protocol",
                           _enum(PurificationProtocol, self.purification_protocol, "purification_protocol"))
        if self.purification_rounds < 0:
            raise ParameterError("purification_rounds", self.purification_rounds, "a non-negative integer")
        if self.mesh_delay is not None and self.mesh_delay < 0:
            raise ParameterError("mesh_delay", self.mesh_delay, "a non-negative number of ticks")
        if self.fidelity_min is not None and not 0 <= self.fidelity_min <= 1:
            raise ParameterError("fidelity_min", self.fidelity_min, "a fidelity in [0, 1]")

    def cutoffs_for(self, links: int) -> list[int | None]:
        """The cut-off list for a path of ``links`` links (one per tree level for nested, else one)."""
        levels = nesting_levels(links) if self.scheme is SwapScheme.NESTED else 1
        cutoffs = self.cutoffs
        if cutoffs is None or isinstance(cutoffs, int):
            out = [cutoffs] * max(levels, 1)
        else:
            out = list(cutoffs)
            if self.scheme is SwapScheme.NESTED and levels and len(out) != levels:
                raise ParameterError("cutoffs", out, f"one cut-off per nesting level ({levels})")
            if self.scheme is not SwapScheme.NESTED and len(out) != 1:
                raise ParameterError("cutoffs", out, f"one cut-off for {SwapScheme(self.scheme).value}")
        if any(c is not None and (c < 0 or not math.isfinite(c)) for c in out):
            raise ParameterError("cutoffs", out, "non-negative tick counts")
        return out


def _enum(kind, value, name):
    try:
        return kind(value)
    except ValueError:
        raise ParameterError(name, value, f"one of {[k.value for k in kind]}") from None
