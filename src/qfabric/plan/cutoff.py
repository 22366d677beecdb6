"""Choose a repeater chain's cut-off (and, for the nested scheme, one per nesting level) that maximises a figure,
with the exact analysis of :mod:`qfabric.network.analysis` (no sampling noise).

Figures, per attempt (per second with ``attempt_period_s``):

* ``rate``: delivered pairs, ``1 / E[T]``;
* ``rate-at-fidelity``: the same, for cut-offs whose mean delivered fidelity is at least ``fidelity_min``;
* ``bbm92``: secret bits of BBM92 on the delivered pairs, asymptotic with biased bases (sifting -> 1):
  ``1 / E[T] x (1 - f_ec h(Q) - h(Q))`` (:func:`qfabric.qkd.theory.bbm92_rate`), with the QBER of the pooled
  Werner pairs ``Q = 2 (1 - F) / 3`` in both bases.

Every cut-off of the grid is evaluated (the exact values are cheap for the chains the exact engine accepts), so
the optimum is the grid's best, not a local one. Purification is not covered by the exact engine, so it is not
optimised here.

>>> best = optimise_cutoff(segments=2, p_gen=0.2, w0=0.98, t_coh=20.0, figure="bbm92", cutoffs=range(0, 30))
>>> 0 < best.best.cutoff < 29      # storing forever costs fidelity, never storing costs rate
True
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass

from qfabric.errors import QfabricError

FIGURES = ("rate", "rate-at-fidelity", "bbm92")
MAX_EVALUATIONS = 5000


class PlanError(QfabricError):
    """An optimisation that cannot be done or has no feasible answer (the message says why)."""


@dataclass(frozen=True)
class CutoffPoint:
    """One candidate: its cut-off(s) in attempts (``None``: none), the exact values and the figure."""

    scheme: str
    cutoff: int | tuple[int | None, ...] | None
    mean_waiting_time: float
    mean_fidelity: float
    pairs_per_attempt: float
    figure: float | None  # None: infeasible (below the fidelity target, or no key)


@dataclass(frozen=True)
class CutoffPlan:
    figure: str
    unit: str
    best: CutoffPoint
    candidates: list[CutoffPoint]

    def to_dict(self) -> dict:
        return {"figure": self.figure, "unit": self.unit, "best": asdict(self.best),
                "candidates": [asdict(c) for c in self.candidates]}


def bbm92_bits_per_pair(fidelity: float, f_ec: float = 1.0) -> float:
    """Asymptotic BBM92 secret bits per delivered Werner pair of fidelity ``fidelity`` (biased bases).

    >>> round(bbm92_bits_per_pair(1.0), 6), bbm92_bits_per_pair(0.8)
    (1.0, 0.0)
    """
    from qfabric.qkd.theory import bbm92_rate

    qber = min(max(2.0 * (1.0 - fidelity) / 3.0, 0.0), 0.5)
    return bbm92_rate(qber, qber, f_ec)


def _evaluate(scheme, segments, p_gen, p_swap, w0, t_coh, cutoff, swap_timing, link_age):
    from qfabric.network.analysis import nested_exact, swap_asap_exact

    if scheme == "nested":
        return nested_exact(segments, p_gen, p_swap, w0, t_coh, list(cutoff))
    return swap_asap_exact(segments, p_gen, p_swap, w0, t_coh, cutoff, swap_timing, link_age)


def optimise_cutoff(segments: int, p_gen: float, p_swap: float = 1.0, w0: float = 1.0, t_coh: float = math.inf,
                    figure: str = "rate", cutoffs=range(0, 41), scheme: str = "swap-asap",
                    fidelity_min: float | None = None, f_ec: float = 1.0, swap_timing: str = "sequential",
                    link_age: str = "reset", attempt_period_s: float | None = None,
                    include_none: bool = True) -> CutoffPlan:
    """Evaluate every cut-off in ``cutoffs`` (nested: every combination, one per level), and ``None`` (no cut-off)
    with ``include_none``; return the best by ``figure``. Raises :class:`PlanError` when none is feasible."""
    if figure not in FIGURES:
        raise PlanError(f"figure {figure!r}: expected one of {', '.join(FIGURES)}")
    if figure == "rate-at-fidelity" and fidelity_min is None:
        raise PlanError("the rate-at-fidelity figure needs a fidelity target (--fidelity-min)")
    if fidelity_min is not None and not 0.25 <= fidelity_min <= 1:
        raise PlanError(f"fidelity target {fidelity_min!r}: expected a fidelity in [0.25, 1]")
    if scheme not in ("swap-asap", "nested"):
        raise PlanError(f"scheme {scheme!r}: expected swap-asap or nested")
    if attempt_period_s is not None and not attempt_period_s > 0:
        raise PlanError(f"attempt period {attempt_period_s!r}: expected a positive number of seconds")
    grid = sorted({int(c) for c in cutoffs})
    if not grid and not include_none:
        raise PlanError("the cut-off grid is empty")
    if any(c < 0 for c in grid):
        raise PlanError(f"cut-offs are whole numbers of attempts >= 0, got {grid[0]}")
    options: list = [*grid, None] if include_none else grid
    if scheme == "nested":
        levels = segments.bit_length() - 1
        if segments & (segments - 1) or levels < 1:
            raise PlanError(f"the nested scheme needs a power of two >= 2 segments, got {segments}")
        combos = list(itertools.product(options, repeat=levels))
        if len(combos) > MAX_EVALUATIONS:
            raise PlanError(f"{len(options)} cut-offs per level over {levels} levels is {len(combos):,} exact "
                            f"evaluations (at most {MAX_EVALUATIONS:,}): use a coarser grid (--cutoffs a:b:step)")
        candidates_in = [tuple(c) for c in combos]
    else:
        candidates_in = options
    per = 1.0 / attempt_period_s if attempt_period_s else 1.0
    unit = {"rate": "pairs", "rate-at-fidelity": "pairs", "bbm92": "secret bits"}[figure] + \
        (" per second" if attempt_period_s else " per attempt")
    points = []
    for cutoff in candidates_in:
        result = _evaluate(scheme, segments, p_gen, p_swap, w0, t_coh, cutoff, swap_timing, link_age)
        rate = 1.0 / result.mean_waiting_time
        fidelity = result.mean_fidelity
        value: float | None = rate * per
        if figure == "rate-at-fidelity" and fidelity < fidelity_min:
            value = None
        elif figure == "bbm92":
            bits = bbm92_bits_per_pair(fidelity, f_ec)
            value = rate * bits * per if bits > 0 else None
        points.append(CutoffPoint(scheme, cutoff, result.mean_waiting_time, fidelity, rate, value))
    feasible = [p for p in points if p.figure is not None]
    if not feasible:
        top = max(points, key=lambda p: p.mean_fidelity)
        if figure == "bbm92":
            raise PlanError(f"no cut-off of the grid gives a secret key: the best mean fidelity is "
                            f"{top.mean_fidelity:.4f} (cut-off {top.cutoff}), BBM92 needs the QBER 2(1-F)/3 under "
                            "about 11 % (F > 0.835); improve w0 or t_coh, or use fewer segments")
        raise PlanError(f"no cut-off of the grid reaches fidelity {fidelity_min:g}: the best is "
                        f"{top.mean_fidelity:.4f} (cut-off {top.cutoff}); lower the target, or improve w0 or t_coh")
    best = max(feasible, key=lambda p: (p.figure, -(p.cutoff if isinstance(p.cutoff, int) else 0)))
    return CutoffPlan(figure, unit, best, points)
