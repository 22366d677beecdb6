"""The network engine: links with memories, circuits over paths, swapping, purification, cut-offs, delivery."""

from qfabric.network.chain import repeater_chain
from qfabric.network.circuit import Circuit, CircuitStats, Pair
from qfabric.network.engine import Link, LinkStats, MemoryPool, Network
from qfabric.network.models import (
    ClassicalHop,
    LinkModel,
    Multiplexing,
    NodeModel,
    Protocol,
    PurificationProtocol,
    QubitSelection,
    SwapScheme,
    required_capacity,
)
from qfabric.network.topology import NoPathError, Topology

__all__ = [
    "Circuit",
    "CircuitStats",
    "ClassicalHop",
    "Link",
    "LinkModel",
    "LinkStats",
    "MemoryPool",
    "Multiplexing",
    "Network",
    "NoPathError",
    "NodeModel",
    "Pair",
    "Protocol",
    "PurificationProtocol",
    "QubitSelection",
    "SwapScheme",
    "Topology",
    "repeater_chain",
    "required_capacity",
]
