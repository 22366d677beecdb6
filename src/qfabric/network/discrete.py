"""The discrete chain model of :mod:`qfabric.network.analysis`, run on the event engine.

One kernel tick is one attempt. Each segment is a :class:`~qfabric.network.models.LinkModel`
that succeeds with ``p_gen`` per attempt and heralds at the end of the attempt; each memory is
depolarising with time ``2 t_coh``, so a stored pair decays as ``exp(-wait / t_coh)``.

>>> r = simulate_chain(segments=2, p_gen=0.5, samples=4000, seed=3)
>>> abs(r.mean_waiting_time - 8 / 3) < 4 * r.waiting_time_stderr
True
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from qfabric.errors import ParameterError
from qfabric.hardware import Memory
from qfabric.network.analysis import SampledWerner, check_chain_parameters
from qfabric.network.chain import repeater_chain
from qfabric.network.models import LinkModel, NodeModel, SwapScheme
from qfabric.sim import Simulator
from qfabric.states import BellDiagonal


@dataclass(frozen=True)
class SimulatedChain(SampledWerner):
    """Sample means with standard errors (95 % interval: mean +- 1.96 stderr)."""

    scheme: str
    segments: int
    samples: int
    mean_waiting_time: float
    waiting_time_stderr: float
    mean_werner: float
    werner_stderr: float
    events: int
    attempts: int = 0  # generation attempts made by all segments during the simulation

    def to_dict(self) -> dict:
        return asdict(self) | {"mean_fidelity": self.mean_fidelity, "fidelity_stderr": self.fidelity_stderr,
                               "time_unit": "attempts (one time step each)"}


def simulate_chain(
    segments: int,
    p_gen: float,
    p_swap: float = 1.0,
    w0: float = 1.0,
    t_coh: float = math.inf,
    cutoffs: list[int | None] | int | None = None,
    scheme: SwapScheme | str = SwapScheme.NESTED,
    samples: int = 10_000,
    seed: int = 0,
    progress=None,
    swap_timing: str = "sequential",
    link_age: str = "reset",
) -> SimulatedChain:
    """Deliver ``samples`` end-to-end pairs one after another (the chain restarts empty after each).

    ``swap_timing`` and ``link_age`` choose the swap-asap conventions (see :func:`~qfabric.network.analysis.
    swap_asap_exact`): node by node or all at once, and a swapped pair's cut-off age restarting or its oldest
    part's."""
    if samples < 2:
        raise ParameterError("samples", samples, "at least 2 samples")
    check_chain_parameters(segments, p_gen, p_swap, w0, t_coh)
    sim = Simulator(seed=seed)
    segment = LinkModel(
        success_probability=p_gen, attempt_period=1, herald_delay=1, state=BellDiagonal.werner(w0).weights
    )
    memory = Memory(depolarising_time_s=2.0 * t_coh) if math.isfinite(t_coh) else Memory()
    node = NodeModel(swap_success_probability=p_swap)
    count = 0

    def on_delivery(pair, now):
        nonlocal count
        count += 1
        if progress is not None and count % 1000 == 0:
            progress(count)
        if count >= samples:
            sim.stop()

    chain = repeater_chain(
        sim, [segment] * segments, [node] * (segments + 1), memories=memory, scheme=scheme, cutoffs=cutoffs,
        seconds_per_tick=1.0, regenerate_covered=False, defer_swaps=True, on_delivery=on_delivery,
        name="discrete-chain", swap_timing=swap_timing, link_age=link_age,
    )
    chain.network.activate(chain)
    sim.run()
    chain.network.finish()
    waits = np.asarray(chain.stats.waiting_ticks, dtype=float)
    werner = (4.0 * np.asarray([w[0] for w in chain.stats.delivered_weights]) - 1.0) / 3.0
    return SimulatedChain(
        scheme=str(SwapScheme(scheme)),
        segments=segments,
        samples=len(waits),
        mean_waiting_time=float(waits.mean()),
        waiting_time_stderr=float(waits.std(ddof=1) / math.sqrt(len(waits))),
        mean_werner=float(werner.mean()),
        werner_stderr=float(werner.std(ddof=1) / math.sqrt(len(werner))),
        events=sim.events_processed,
        attempts=sum(link.stats.attempts for link in chain.network.links),
    )
