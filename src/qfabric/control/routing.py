"""Proactive, centralised routing: paths computed over the whole graph, to be installed as forwarding state.

A route is a list of node names from source to target. The graph is any undirected graph given as an
adjacency mapping, node -> neighbour -> link attributes, in node order: a :class:`networkx.Graph` (or view) or
a plain dict of dicts (what validating a scenario builds, :func:`~qfabric.scenario.graph.routing_adjacency`).
The search is this module's own (Dijkstra on :mod:`heapq`, breadth-first for hops) and imports no networkx:
``benchmarks/bench_cli.py`` showed networkx's import (~0.09 s) was what kept ``qfabric validate``, which computes
the routes the run takes, over its 0.3 s goal.

Edges may carry ``length_km`` (fibre), ``expected_time_s`` (mean time for the link to deliver one heralded pair)
and ``werner`` (the Werner parameter w in (0, 1] of the link's pair, fidelity ``F = (1 + 3w) / 4``); a
:class:`Metric` turns them into an additive cost. Ties are broken deterministically by the graph's node order
(``list(graph)``), never by the order edges were added, so the same network always gets the same routes.

>>> import networkx as nx
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
>>> plain = {"a": {"r": {"werner": 0.9}, "b": {"werner": 0.7}}, "r": {"a": {"werner": 0.9}, "b": {"werner": 0.9}},
...          "b": {"r": {"werner": 0.9}, "a": {"werner": 0.7}}}
>>> shortest_path(plain, "a", "b", metric="fidelity")  # the same graph as a dict of dicts
['a', 'r', 'b']
"""

from __future__ import annotations

import heapq
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeAlias

from qfabric.errors import ParameterError, QfabricError

if TYPE_CHECKING:
    import networkx as nx

__all__ = [
    "Metric",
    "NoRouteError",
    "RoutingError",
    "adjacency",
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
Adjacency: TypeAlias = Mapping[str, Mapping[str, Mapping[str, Any]]]
"""node -> neighbour -> link attributes, each link under both its ends (``nx.Graph.adj`` is one)."""


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


def _cost(data: Mapping[str, Any], metric: Metric, u: str | None = None, v: str | None = None) -> float:
    """The cost of link ``(u, v)`` with attributes ``data`` (called for every link a search looks at: the error
    message is written only when there is an error)."""
    if metric is Metric.HOPS:
        return 1.0
    try:
        value = float(data[_ATTRIBUTE[metric]])
    except (KeyError, TypeError, ValueError):
        value = math.nan
    if metric is Metric.FIDELITY:
        if 0.0 < value <= 1.0:
            return 0.0 - math.log(value)  # 0.0 - 0.0 is +0.0 for a perfect link
    elif math.isfinite(value) and value >= 0.0:
        return value
    raise RoutingError(_cost_problem(data, metric, "the edge" if u is None else f"edge ({u!r}, {v!r})"))


def _cost_problem(data: Mapping[str, Any], metric: Metric, where: str) -> str:
    name = _ATTRIBUTE[metric]
    if name not in data:
        return f"{where} has no {name!r} attribute (needed by metric {metric.value!r})"
    try:
        value = float(data[name])
    except (TypeError, ValueError):
        return f"{where} has {name} = {data[name]!r}: expected a number"
    if metric is Metric.FIDELITY:
        return f"{where} has werner = {value!r}: expected a Werner parameter in (0, 1]"
    return f"{where} has {name} = {value!r}: expected a finite number >= 0"


def edge_cost(data: Mapping[str, Any], metric: Metric | str) -> float:
    """The cost of one link with attributes ``data`` under ``metric``.

    >>> round(edge_cost({"length_km": 20, "werner": 0.5}, "fidelity"), 6)  # -ln 0.5
    0.693147
    """
    return _cost(data, Metric(metric))


def weight_function(metric: Metric | str) -> Callable[[str, str, dict[str, Any]], float]:
    """A weight callable ``(u, v, data) -> cost`` (networkx's ``weight=`` too); a missing attribute raises
    :class:`RoutingError`.

    >>> import networkx as nx
    >>> g = nx.Graph([("a", "b", {"length_km": 3.0}), ("b", "c", {"length_km": 4.0})])
    >>> nx.shortest_path_length(g, "a", "c", weight=weight_function("length"))
    7.0
    """
    metric = Metric(metric)

    def weight(u: str, v: str, data: dict[str, Any]) -> float:
        return _cost(data, metric, u, v)

    return weight


def adjacency(graph: nx.Graph | Adjacency) -> Adjacency:
    """The adjacency mapping routing reads: a networkx graph's (its ``adjacency()``, node -> its own neighbour
    dict, no copy of the links), or ``graph`` itself if it is one.

    Raises :class:`~qfabric.errors.ParameterError` for a directed or multi-graph, or a mapping in which a
    link is listed under one of its ends only.

    >>> adjacency({"a": {"b": {}}, "b": {"a": {}}})
    {'a': {'b': {}}, 'b': {'a': {}}}
    >>> adjacency({"a": {"b": {}}, "b": {}})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    qfabric.errors.ParameterError: graph = "link ('a', 'b') under 'a' only": expected an undirected graph: ...
    """
    if hasattr(graph, "is_directed"):  # a networkx graph or view
        if graph.is_directed() or graph.is_multigraph():
            raise ParameterError("graph", type(graph).__name__, "an undirected networkx.Graph")
        return dict(graph.adjacency())
    if not isinstance(graph, Mapping):
        raise ParameterError("graph", type(graph).__name__, "a networkx.Graph or an adjacency mapping node -> "
                             "neighbour -> link attributes")
    for u, neighbours in graph.items():
        for v in neighbours:
            if u not in graph.get(v, ()):
                raise ParameterError("graph", f"link ({u!r}, {v!r}) under {u!r} only", "an undirected graph: an "
                                     "adjacency mapping node -> neighbour -> link attributes listing each link "
                                     "under both its ends")
    return graph


def path_cost(graph: nx.Graph | Adjacency, path: Sequence[str], metric: Metric | str) -> float:
    """The sum of the links' costs along ``path`` (summed exactly rounded, so the order of links does not matter).

    >>> path_cost({"a": {"b": {"length_km": 3.0}}, "b": {"a": {"length_km": 3.0}, "c": {"length_km": 4.0}},
    ...            "c": {"b": {"length_km": 4.0}}}, ["a", "b", "c"], "length")
    7.0
    """
    return _path_cost(adjacency(graph), path, metric)


def _path_cost(adj: Adjacency, path: Sequence[str], metric: Metric | str) -> float:
    weight = weight_function(metric)
    for u, v in zip(path, path[1:], strict=False):
        if v not in adj.get(u, ()):
            raise RoutingError(f"no edge ({u!r}, {v!r}) in the graph for path {list(path)!r}")
    return math.fsum(weight(u, v, adj[u][v]) for u, v in zip(path, path[1:], strict=False))


def _close(a: float, b: float) -> bool:
    return a == b or abs(a - b) <= REL_TOL * max(abs(a), abs(b))


def _node_index(adj: Adjacency) -> dict[str, int]:
    return {node: i for i, node in enumerate(adj)}


def _check_endpoints(adj: Adjacency, source: str, target: str) -> None:
    for role, node in (("source", source), ("target", target)):
        if node not in adj:
            raise NoRouteError(f"no route from {source!r} to {target!r}: {role} {node!r} is not a node of the graph")
    if source == target:
        raise NoRouteError(f"no route from {source!r} to {target!r}: a route needs two distinct nodes")


def _distances_to(adj: Adjacency, target: str, source: str, weight: WeightFunction,
                  hops: bool = False) -> dict[str, float] | None:
    """The cost to ``target`` of every node no farther than ``source`` (within REL_TOL), or None if ``source``
    cannot reach it: Dijkstra from ``target``, breadth-first when every link costs 1 (``hops``). ``weight``
    returning None hides a link.

    >>> adj = {"a": {"b": {}}, "b": {"a": {}, "c": {}}, "c": {"b": {}}, "d": {}}
    >>> _distances_to(adj, "c", "b", weight_function("hops")), _distances_to(adj, "c", "d", weight_function("hops"))
    ({'c': 0.0, 'b': 1.0}, None)
    """
    if hops:
        dist, level, d = {target: 0.0}, [target], 0.0
        while level and source not in dist:  # one whole level at a time: every node as near as the source
            d += 1.0
            next_level = []
            for u in level:
                for v, data in adj[u].items():
                    if v not in dist and weight(u, v, data) is not None:
                        dist[v] = d
                        next_level.append(v)
            level = next_level
        return dist if source in dist else None
    dist = {}
    reached = {target: 0.0}
    heap = [(0.0, 0, target)]  # (cost, push count, node): equal costs leave the heap in the order they entered
    pushes, limit = 1, math.inf
    while heap:
        d, _, u = heapq.heappop(heap)
        if u in dist:
            continue
        if d > limit:
            break
        dist[u] = d
        if u == source:
            limit = d + REL_TOL * max(d, 1.0)
        for v, data in adj[u].items():
            cost = weight(u, v, data)
            if cost is None or v in dist:
                continue
            if (dv := d + cost) < reached.get(v, math.inf):
                reached[v] = dv
                heapq.heappush(heap, (dv, pushes, v))
                pushes += 1
    return dist if source in dist else None


def _lex_path(adj: Adjacency, source: str, target: str, weight: WeightFunction, index: dict[str, int],
              hops: bool = False):
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
    dist = _distances_to(adj, target, source, weight, hops)
    if dist is None:
        return None

    def tight(u: str) -> list[str]:
        out = []
        for v, data in adj[u].items():
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


def shortest_path(graph: nx.Graph | Adjacency, source: str, target: str, metric: Metric | str = "hops") -> list[str]:
    """The minimum-cost route; among equal costs the one whose node indices (graph order) sort first.

    Raises :class:`NoRouteError` for an unknown node, ``source == target`` or no connection.

    >>> import networkx as nx
    >>> g = nx.Graph([("n0", "n2"), ("n2", "n3"), ("n0", "n1"), ("n1", "n3")])
    >>> shortest_path(g, "n0", "n3")  # nodes in order n0, n2, n3, n1: n2 comes before n1
    ['n0', 'n2', 'n3']
    """
    metric = Metric(metric)
    return _shortest_path(adjacency(graph), source, target, metric)


def _shortest_path(adj: Adjacency, source: str, target: str, metric: Metric) -> list[str]:
    _check_endpoints(adj, source, target)
    path = _lex_path(adj, source, target, weight_function(metric), _node_index(adj), metric is Metric.HOPS)
    if path is None:
        raise NoRouteError(f"no route from {source!r} to {target!r}: they are not connected")
    return path


def _hiding(weight: WeightFunction, nodes: set[str], edges: set[frozenset[str]]) -> WeightFunction:
    """``weight`` with the links at ``nodes`` and the ``edges`` hidden (None): what a spur path may not use."""
    def restricted(u: str, v: str, data: dict[str, Any]) -> float | None:
        if u in nodes or v in nodes or frozenset((u, v)) in edges:
            return None
        return weight(u, v, data)

    return restricted


def k_shortest_paths(
    graph: nx.Graph | Adjacency, source: str, target: str, k: int, metric: Metric | str = "hops"
) -> list[list[str]]:
    """Up to ``k`` simple routes by Yen's algorithm, ordered by cost, then by node-index sequence.

    The first is :func:`shortest_path`'s route. Each spur path is the deterministic shortest path, so the
    result is the first ``k`` of all simple paths in (cost, node indices) order, whatever the edge order.

    >>> triangle = {"a": {"b": {}, "c": {}}, "b": {"a": {}, "c": {}}, "c": {"a": {}, "b": {}}}
    >>> k_shortest_paths(triangle, "a", "c", 3)
    [['a', 'c'], ['a', 'b', 'c']]
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ParameterError("k", k, "a whole number >= 1")
    metric = Metric(metric)
    return _k_shortest_paths(adjacency(graph), source, target, k, metric)


def _k_shortest_paths(adj: Adjacency, source: str, target: str, k: int, metric: Metric) -> list[list[str]]:
    found = [_shortest_path(adj, source, target, metric)]
    weight, index = weight_function(metric), _node_index(adj)
    candidates: list[tuple[float, list[int], list[str]]] = []
    queued = {tuple(found[0])}
    while len(found) < k:
        last = found[-1]
        for i in range(len(last) - 1):
            root = last[: i + 1]
            hidden_edges = {frozenset(p[i : i + 2]) for p in found if p[: i + 1] == root}
            spur = _lex_path(adj, last[i], target, _hiding(weight, set(root[:-1]), hidden_edges), index,
                             metric is Metric.HOPS)
            if spur is not None and tuple(path := root[:-1] + spur) not in queued:
                queued.add(tuple(path))
                candidates.append((_path_cost(adj, path, metric), [index[n] for n in path], path))
        if not candidates:
            break
        low = min(c[0] for c in candidates)
        best = min((c for c in candidates if _close(c[0], low)), key=lambda c: c[1])
        candidates.remove(best)
        found.append(best[2])
    return found


def _check_explicit(adj: Adjacency, name: str, source: str, target: str, path: Sequence[str]) -> list[str]:
    path = list(path)
    problem = None
    if len(path) < 2:
        problem = "it needs at least two nodes"
    elif path[0] != source:
        problem = f"it starts at {path[0]!r}, not at the source {source!r}"
    elif path[-1] != target:
        problem = f"it ends at {path[-1]!r}, not at the target {target!r}"
    elif unknown := [n for n in path if n not in adj]:
        problem = f"{unknown[0]!r} is not a node of the graph"
    elif repeated := [n for i, n in enumerate(path) if n in path[:i]]:
        problem = f"node {repeated[0]!r} is repeated"
    elif gaps := [(u, v) for u, v in zip(path, path[1:], strict=False) if v not in adj[u]]:
        problem = f"no link joins {gaps[0][0]!r} and {gaps[0][1]!r}"
    if problem:
        raise RoutingError(f"explicit path {path!r} for request {name!r}: {problem}")
    return path


def compute_routes(
    graph: nx.Graph | Adjacency,
    demands: Sequence[tuple[str, str, str]],
    metric: Metric | str = "hops",
    k: int = 1,
    explicit: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, list[list[str]]]:
    """Routes for each demand ``(name, source, target)``: its ``k`` shortest paths, or ``[explicit[name]]``.

    An explicit path is checked (from source to target, each hop a link, no node twice); a bad one, a
    repeated request name or an explicit path for no request raises :class:`RoutingError`.

    >>> import networkx as nx
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
    adj = adjacency(graph)
    routes: dict[str, list[list[str]]] = {}
    for name, source, target in demands:
        if name in explicit:
            routes[name] = [_check_explicit(adj, name, source, target, explicit[name])]
            continue
        try:
            routes[name] = _k_shortest_paths(adj, source, target, k, metric)
        except NoRouteError as err:
            raise NoRouteError(f"request {name!r}: {err}") from err
    return routes
