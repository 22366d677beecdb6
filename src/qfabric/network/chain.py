"""A repeater chain is a network with one circuit on one path: a line of links with its protocol.

>>> from qfabric.sim import Simulator
>>> from qfabric.states import BellDiagonal
>>> sim = Simulator(seed=1)
>>> seg = LinkModel(success_probability=0.5, attempt_period=1, herald_delay=1, state=BellDiagonal.werner(0.9).weights)
>>> chain = repeater_chain(sim, [seg, seg], seconds_per_tick=1.0)
>>> chain.network.activate(chain)
>>> _ = sim.run(until=1000)
>>> len(chain.stats.delivery_ticks) > 100
True
>>> round(chain.stats.delivered_weights[0][0], 4)   # F of w = 0.81 (no memory noise)
0.8575
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from qfabric.errors import ParameterError
from qfabric.hardware import Memory
from qfabric.network.circuit import Circuit, Pair
from qfabric.network.engine import Network
from qfabric.network.models import LinkModel, NodeModel, Protocol
from qfabric.sim import Simulator

__all__ = ["repeater_chain"]


def repeater_chain(
    sim: Simulator,
    segments: Sequence[LinkModel],
    nodes: Sequence[NodeModel] | None = None,
    *,
    memories: Sequence[Memory] | Memory | None = None,
    seconds_per_tick: float = 1e-12,
    on_delivery: Callable[[Pair, int], None] | None = None,
    name: str = "chain",
    **protocol,
) -> Circuit:
    """A line network ``n0 - n1 - ... - nN`` with one circuit from ``n0`` to ``nN``, not yet active.

    ``memories``: one memory model per node (or one for all); ``protocol``: the fields of
    :class:`~qfabric.network.models.Protocol`. Random streams are named ``<name>/segment-<s>`` and
    ``<name>/swaps``, so a chain's numbers depend only on its seed and its name.
    """
    n = len(segments)
    if n < 1:
        raise ParameterError("segments", n, "at least one segment")
    nodes = list(nodes) if nodes is not None else [NodeModel() for _ in range(n + 1)]
    if len(nodes) != n + 1:
        raise ParameterError("nodes", len(nodes), f"{n + 1} node models for {n} segments")
    if memories is None or isinstance(memories, Memory):
        memories = [memories or Memory()] * (n + 1)
    if len(memories) != n + 1:
        raise ParameterError("memories", len(memories), f"{n + 1} memory models for {n} segments")
    net = Network(sim, seconds_per_tick=seconds_per_tick)
    names = [f"n{i}" for i in range(n + 1)]
    for node, model in zip(names, nodes, strict=True):
        net.add_node(node, model)
    for s, seg in enumerate(segments):
        net.add_link(f"{names[s]}-{names[s + 1]}", names[s], names[s + 1], seg, memory_a=memories[s],
                     memory_b=memories[s + 1], stream=f"{name}/segment-{s}")
    net.install_route(name, names)
    consumer = None if on_delivery is None else (lambda circuit, pair, now: on_delivery(pair, now))
    return net.open_circuit(name, names[0], Protocol(**protocol), consumer=consumer, stream=name)
