"""The network's topology: a networkx graph of nodes and links, and paths through it.

>>> topo = Topology()
>>> for a, b, km in [("a", "r", 20), ("r", "b", 25)]:
...     topo.add_link(f"{a}-{b}", a, b, length_km=km)
>>> topo.path("a", "b")
['a', 'r', 'b']
"""

from __future__ import annotations

from typing import Any

import networkx as nx

from qfabric.errors import QfabricError


class NoPathError(QfabricError):
    """The two nodes are not connected."""


class Topology:
    """Nodes and links; each link's attributes (length, hardware) are kept on its graph edge."""

    def __init__(self) -> None:
        self.graph = nx.Graph()

    def add_node(self, name: str, **attributes: Any) -> None:
        self.graph.add_node(name, **attributes)

    def add_link(self, name: str, a: str, b: str, *, length_km: float, **attributes: Any) -> None:
        self.graph.add_edge(a, b, name=name, length_km=length_km, **attributes)

    def path(self, source: str, target: str) -> list[str]:
        """Shortest path by fibre length; raises :class:`NoPathError` if there is none."""
        try:
            return nx.shortest_path(self.graph, source, target, weight="length_km")
        except (nx.NetworkXNoPath, nx.NodeNotFound) as err:
            raise NoPathError(f"no path from {source!r} to {target!r}") from err

    def link_between(self, a: str, b: str) -> dict[str, Any]:
        return self.graph.edges[a, b]
