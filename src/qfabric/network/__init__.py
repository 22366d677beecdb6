"""Paths of links: repeater chains with swapping, purification and cut-offs; exact chain analysis."""

from qfabric.network.chain import (
    ChainStats,
    NodeModel,
    Pair,
    PurificationProtocol,
    RepeaterChain,
    SegmentModel,
    SwapScheme,
)
from qfabric.network.topology import NoPathError, Topology

__all__ = [
    "ChainStats",
    "NodeModel",
    "Pair",
    "PurificationProtocol",
    "RepeaterChain",
    "SegmentModel",
    "SwapScheme",
    "NoPathError",
    "Topology",
]
