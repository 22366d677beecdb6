"""Proactive, centralised routing: paths computed over the whole graph, to be installed as forwarding state.

A route is a list of node names from source to target. Edges may carry ``length_km`` (fibre),
``expected_time_s`` (mean time for the link to deliver one heralded pair) and ``werner`` (the Werner
parameter w in (0, 1] of the link's pair, fidelity ``F = (1 + 3w) / 4``); a :class:`Metric` turns them
into an additive cost. Ties are broken deterministically by the graph's node order (``list(graph.nodes)``),
never by the order edges were added, so the same network always gets the same routes.

>>> g = nx.Graph()
>>> g.add_edge("a", "r", length_km=20, werner=0.9)
>>> g.add_edge("r", "b", length_km=25, werner=0.9)
>>> g.add_edge("a", "b", length_km=60, werner=0.7)
>>> shortest_path(g, "a", "b")
['a', 'b']
>>> shortest_path(g, "a", "b", metric="fidelity")  # 0.9 * 0.9 = 0.81 beats 0.7
['a', 'r', 'b']
>>> compute_routes(g, [("alice-bob", "a", "b")], metric="length", k=2)
{'alice-bob': [['a', 'r', 'b'], ['a', 'b']]}
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from typing import Any

import networkx as nx

from qfabric.errors import ParameterError, QfabricError

__all__ = [
    "Metric",
    "NoRouteError",
    "RoutingError",
    "compute_routes",
    "edge_cost",
    "k_shortest_paths",
    "path_cost",
    "shortest_path",
    "weight_function",
]

REL_TOL = 1e-12
"""Two path costs within this relative tolerance are equal (float sums in different orders still tie)."""

WeightFunction = Callable[[str, str, dict[str, Any]], float | None]


class RoutingError(QfabricError):
    """A route cannot be computed or an explicit route is invalid (the message names the edge or request)."""


class NoRouteError(RoutingError):
    """No route joins the two nodes: one is not in the graph, they are the same node, or they are not connected."""


class Metric(StrEnum):
    """What a route minimises; each is a sum of per-link costs, so Dijkstra and Yen apply.

    * ``HOPS`` ("hops"): 1 per link, the number of links (and swaps + 1).
    * ``LENGTH`` ("length"): the link's ``length_km``, total fibre length.
    * ``EXPECTED_TIME`` ("expected-time"): the link's ``expected_time_s``, the mean time for it to deliver
      one heralded pair; the sum is an additive proxy for the time to an end-to-end pair.
    * ``FIDELITY`` ("fidelity"): ``-ln(werner)`` per link, so the cheapest path maximises the product of the
      links' Werner parameters, which is the end-to-end Werner parameter (hence fidelity) after ideal swaps
      of Werner pairs (REFERENCES §1: swapping gives ``w = w1 * w2``).

    A bad name raises :class:`~qfabric.errors.ParameterError`:

    >>> Metric("expected-time")
    <Metric.EXPECTED_TIME: 'expected-time'>
    """

    HOPS = "hops"
    LENGTH = "length"
    EXPECTED_TIME = "expected-time"
    FIDELITY = "fidelity"

    @classmethod
    def _missing_(cls, value: object) -> Metric:
        raise ParameterError("metric", value, f"one of {[m.value for m in cls]}")


_ATTRIBUTE = {Metric.LENGTH: "length_km", Metric.EXPECTED_TIME: "expected_time_s", Metric.FIDELITY: "werner"}


def _cost(data: Mapping[str, Any], metric: Metric, where: str) -> float:
    if metric is Metric.HOPS:
        return 1.0
    name = _ATTRIBUTE[metric]
    if name not in data:
        raise RoutingError(f"{where} has no {name!r} attribute (needed by metric {metric.value!r})")
    try:
        value = float(data[name])
    except (TypeError, ValueError):
        raise RoutingError(f"{where} has {name} = {data[name]!r}: expected a number") from None
    if metric is Metric.FIDELITY:
        if not 0.0 < value <= 1.0:
            raise RoutingError(f"{where} has werner = {value!r}: expected a Werner parameter in (0, 1]")
        return 0.0 - math.log(value)  # 0.0 - 0.0 is +0.0 for a perfect link
    if not (math.isfinite(value) and value >= 0.0):
        raise RoutingError(f"{where} has {name} = {value!r}: expected a finite number >= 0")
    return value


def edge_cost(data: Mapping[str, Any], metric: Metric | str) -> float:
    """The cost of one link with attributes ``data`` under ``metric``.

    >>> round(edge_cost({"length_km": 20, "werner": 0.5}, "fidelity"), 6)  # -ln 0.5
    0.693147
    """
    return _cost(data, Metric(metric), "the edge")


def weight_function(metric: Metric | str) -> Callable[[str, str, dict[str, Any]], float]:
    """A networkx ``weight=`` callable ``(u, v, data) -> cost``; a missing attribute raises :class:`RoutingError`.

    >>> g = nx.Graph([("a", "b", {"length_km": 3.0}), ("b", "c", {"length_km": 4.0})])
    >>> nx.shortest_path_length(g, "a", "c", weight=weight_function("length"))
    7.0
    """
    metric = Metric(metric)

    def weight(u: str, v: str, data: dict[str, Any]) -> float:
        return _cost(data, metric, f"edge ({u!r}, {v!r})")

    return weight


def path_cost(graph: nx.Graph, path: Sequence[str], metric: Metric | str) -> float:
    """The sum of the links' costs along ``path`` (summed exactly rounded, so the order of links does not matter).

    >>> g = nx.Graph([("a", "b", {"length_km": 3.0}), ("b", "c", {"length_km": 4.0})])
    >>> path_cost(g, ["a", "b", "c"], "length")
    7.0
    """
    weight = weight_function(metric)
    for u, v in zip(path, path[1:], strict=False):
        if not graph.has_edge(u, v):
            raise RoutingError(f"no edge ({u!r}, {v!r}) in the graph for path {list(path)!r}")
    return math.fsum(weight(u, v, graph.adj[u][v]) for u, v in zip(path, path[1:], strict=False))


def _close(a: float, b: float) -> bool:
    return a == b or abs(a - b) <= REL_TOL * max(abs(a), abs(b))


def _node_index(graph: nx.Graph) -> dict[str, int]:
    return {node: i for i, node in enumerate(graph.nodes)}


def _check_endpoints(graph: nx.Graph, source: str, target: str) -> None:
    if graph.is_directed() or graph.is_multigraph():
        raise ParameterError("graph", type(graph).__name__, "an undirected networkx.Graph")
    for role, node in (("source", source), ("target", target)):
        if node not in graph:
            raise NoRouteError(f"no route from {source!r} to {target!r}: {role} {node!r} is not a node of the graph")
    if source == target:
        raise NoRouteError(f"no route from {source!r} to {target!r}: a route needs two distinct nodes")


def _lex_path(graph: nx.Graph, source: str, target: str, weight: WeightFunction, index: dict[str, int],
              unit_costs: bool = False):
    """The minimum-cost path whose sequence of node indices is smallest, or None if there is none.

    Dijkstra from the target gives the distance to it of every node no farther than the source; an edge u -> v
    is *tight* when
    ``dist[u] == cost(u, v) + dist[v]`` (within REL_TOL), and the minimum-cost paths from the source are
    exactly the simple paths of tight edges. Walk from the source taking the smallest-index unvisited tight
    neighbour. With positive costs the tight edges form a DAG, the walk never dead-ends and so each choice
    was the smallest that completes: the result is the lexicographically smallest. Zero-cost links can
    close cycles of tight edges; only if the walk dead-ends does it restart, checking at each step which
    neighbours can still reach the target without revisiting a node. ``weight`` returning None hides an edge.
    """
    try:  # the cost of the best path first (a bidirectional search touches few nodes), then the distances
        if unit_costs:  # to the target of only the nodes that can lie on a path that good
            best = len(nx.bidirectional_shortest_path(graph, source, target)) - 1
            dist = nx.single_source_shortest_path_length(graph, target, cutoff=best)
        else:
            best = nx.bidirectional_dijkstra(graph, source, target, weight=weight)[0]
            dist = nx.single_source_dijkstra_path_length(graph, target, cutoff=best + REL_TOL * max(best, 1.0),
                                                         weight=weight)
    except nx.NetworkXNoPath:
        return None

    def tight(u: str) -> list[str]:
        out = []
        for v, data in graph.adj[u].items():
            if v in dist:
                cost = weight(u, v, data)
                if cost is not None and _close(dist[u], cost + dist[v]):
                    out.append(v)
        return sorted(out, key=index.__getitem__)

    path, seen = [source], {source}
    while path[-1] != target:
        step = next((v for v in tight(path[-1]) if v not in seen), None)
        if step is None:
            return _lex_path_with_cycles(source, target, {u: tight(u) for u in dist})
        path.append(step)
        seen.add(step)
    return path


def _lex_path_with_cycles(source: str, target: str, successors: dict[str, list[str]]) -> list[str]:
    predecessors: dict[str, list[str]] = {u: [] for u in successors}
    for u, vs in successors.items():
        for v in vs:
            predecessors[v].append(u)
    path, seen = [source], {source}
    while path[-1] != target:
        reaches, stack = {target}, [target]  # nodes with a tight path to the target avoiding the path so far
        while stack:
            for w in predecessors[stack.pop()]:
                if w not in reaches and w not in seen:
                    reaches.add(w)
                    stack.append(w)
        step = next(v for v in successors[path[-1]] if v in reaches)
        path.append(step)
        seen.add(step)
    return path


def shortest_path(graph: nx.Graph, source: str, target: str, metric: Metric | str = "hops") -> list[str]:
    """The minimum-cost route; among equal costs the one whose node indices (graph order) sort first.

    Raises :class:`NoRouteError` for an unknown node, ``source == target`` or no connection.

    >>> g = nx.Graph([("n0", "n2"), ("n2", "n3"), ("n0", "n1"), ("n1", "n3")])
    >>> shortest_path(g, "n0", "n3")  # nodes in order n0, n2, n3, n1: n2 comes before n1
    ['n0', 'n2', 'n3']
    """
    metric = Metric(metric)
    _check_endpoints(graph, source, target)
    path = _lex_path(graph, source, target, weight_function(metric), _node_index(graph),
                     unit_costs=metric is Metric.HOPS)
    if path is None:
        raise NoRouteError(f"no route from {source!r} to {target!r}: they are not connected")
    return path


def _hiding(weight: WeightFunction, nodes: set[str], edges: set[frozenset[str]]) -> WeightFunction:
    def restricted(u: str, v: str, data: dict[str, Any]) -> float | None:
        if u in nodes or v in nodes or frozenset((u, v)) in edges:
            return None
        return weight(u, v, data)

    return restricted


def k_shortest_paths(
    graph: nx.Graph, source: str, target: str, k: int, metric: Metric | str = "hops"
) -> list[list[str]]:
    """Up to ``k`` simple routes by Yen's algorithm, ordered by cost, then by node-index sequence.

    The first is :func:`shortest_path`'s route. Each spur path is the deterministic shortest path, so the
    result is the first ``k`` of all simple paths in (cost, node indices) order, whatever the edge order.

    >>> g = nx.Graph([("a", "b"), ("b", "c"), ("a", "c")])
    >>> k_shortest_paths(g, "a", "c", 3)
    [['a', 'c'], ['a', 'b', 'c']]
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ParameterError("k", k, "a whole number >= 1")
    metric = Metric(metric)
    found = [shortest_path(graph, source, target, metric)]
    weight, index = weight_function(metric), _node_index(graph)
    candidates: list[tuple[float, list[int], list[str]]] = []
    queued = {tuple(found[0])}
    while len(found) < k:
        last = found[-1]
        for i in range(len(last) - 1):
            root = last[: i + 1]
            hidden_edges = {frozenset(p[i : i + 2]) for p in found if p[: i + 1] == root}
            if metric is Metric.HOPS:  # breadth-first on a view without the hidden nodes and links
                view = nx.restricted_view(graph, root[:-1], [tuple(e) for e in hidden_edges])
                spur = _lex_path(view, last[i], target, weight, index, unit_costs=True)
            else:
                spur = _lex_path(graph, last[i], target, _hiding(weight, set(root[:-1]), hidden_edges), index)
            if spur is not None and tuple(path := root[:-1] + spur) not in queued:
                queued.add(tuple(path))
                candidates.append((path_cost(graph, path, metric), [index[n] for n in path], path))
        if not candidates:
            break
        low = min(c[0] for c in candidates)
        best = min((c for c in candidates if _close(c[0], low)), key=lambda c: c[1])
        candidates.remove(best)
        found.append(best[2])
    return found


def _check_explicit(graph: nx.Graph, name: str, source: str, target: str, path: Sequence[str]) -> list[str]:
    path = list(path)
    problem = None
    if len(path) < 2:
        problem = "it needs at least two nodes"
    elif path[0] != source:
        problem = f"it starts at {path[0]!r}, not at the source {source!r}"
    elif path[-1] != target:
        problem = f"it ends at {path[-1]!r}, not at the target {target!r}"
    elif unknown := [n for n in path if n not in graph]:
        problem = f"{unknown[0]!r} is not a node of the graph"
    elif repeated := [n for i, n in enumerate(path) if n in path[:i]]:
        problem = f"node {repeated[0]!r} is repeated"
    elif gaps := [(u, v) for u, v in zip(path, path[1:], strict=False) if not graph.has_edge(u, v)]:
        problem = f"no link joins {gaps[0][0]!r} and {gaps[0][1]!r}"
    if problem:
        raise RoutingError(f"explicit path {path!r} for request {name!r}: {problem}")
    return path


def compute_routes(
    graph: nx.Graph,
    demands: Sequence[tuple[str, str, str]],
    metric: Metric | str = "hops",
    k: int = 1,
    explicit: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, list[list[str]]]:
    """Routes for each demand ``(name, source, target)``: its ``k`` shortest paths, or ``[explicit[name]]``.

    An explicit path is checked (from source to target, each hop a link, no node twice); a bad one, a
    repeated request name or an explicit path for no request raises :class:`RoutingError`.

    >>> g = nx.Graph([("a", "r"), ("r", "b"), ("a", "s"), ("s", "b")])
    >>> compute_routes(g, [("x", "a", "b"), ("y", "a", "b")], explicit={"y": ["a", "s", "b"]})
    {'x': [['a', 'r', 'b']], 'y': [['a', 's', 'b']]}
    """
    metric = Metric(metric)
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ParameterError("k", k, "a whole number >= 1")
    explicit = dict(explicit or {})
    names = [name for name, _, _ in demands]
    if repeated := [n for i, n in enumerate(names) if n in names[:i]]:
        raise RoutingError(f"request {repeated[0]!r} appears more than once in the demands")
    if orphans := sorted(set(explicit) - set(names)):
        raise RoutingError(f"explicit path given for {orphans[0]!r}, which is not a request in the demands")
    routes: dict[str, list[list[str]]] = {}
    for name, source, target in demands:
        if name in explicit:
            routes[name] = [_check_explicit(graph, name, source, target, explicit[name])]
            continue
        try:
            routes[name] = k_shortest_paths(graph, source, target, k, metric)
        except NoRouteError as err:
            raise NoRouteError(f"request {name!r}: {err}") from err
    return routes
