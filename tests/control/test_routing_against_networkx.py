"""Routing's own search (heapq Dijkstra, breadth-first for hops) against networkx's on random graphs: the same
distances, the smallest (by node order) of networkx's tied shortest paths, the same routes whether the graph is
an ``nx.Graph`` or a plain dict of dicts, and Yen's spur searches equal to searches on ``nx.restricted_view``."""

import itertools
import random

import networkx as nx
import pytest

from qfabric.control.routing import (
    NoRouteError,
    _distances_to,
    _hiding,
    _lex_path,
    adjacency,
    compute_routes,
    path_cost,
    shortest_path,
    weight_function,
)
from qfabric.errors import ParameterError

SEEDS = range(6)


def tied_graph(seed, n=30, m=40):
    """A random graph (often in several pieces) on 'n0'.. in a shuffled node order, with integer lengths 1-3 and
    expected times 1-2 s, so that many paths cost exactly the same."""
    rng = random.Random(seed)
    base = nx.gnm_random_graph(n, m, seed=seed)
    order = list(range(n))
    rng.shuffle(order)
    g = nx.Graph()
    g.add_nodes_from(f"n{i}" for i in order)
    for u, v in base.edges:
        g.add_edge(f"n{u}", f"n{v}", length_km=rng.randint(1, 3), expected_time_s=float(rng.randint(1, 2)),
                   werner=rng.uniform(0.6, 1.0))
    return g


def smallest_by_node_order(graph, paths):
    index = {node: i for i, node in enumerate(graph)}
    return min(paths, key=lambda path: [index[node] for node in path])


def networkx_weight(metric):
    return None if metric == "hops" else weight_function(metric)


@pytest.mark.parametrize("metric", ["hops", "length", "expected-time"])
@pytest.mark.parametrize("seed", SEEDS)
def test_route_is_the_first_of_networkx_tied_shortest_paths(metric, seed):
    g = tied_graph(seed)
    plain = nx.to_dict_of_dicts(g)
    pairs = random.Random(seed).sample(list(itertools.permutations(g, 2)), 40)
    connected = 0
    for source, target in pairs:
        if not nx.has_path(g, source, target):
            for graph in (g, plain):
                with pytest.raises(NoRouteError, match="not connected"):
                    shortest_path(graph, source, target, metric)
            continue
        connected += 1
        tied = list(nx.all_shortest_paths(g, source, target, weight=networkx_weight(metric)))
        expected = smallest_by_node_order(g, tied)
        assert shortest_path(g, source, target, metric) == expected
        assert shortest_path(plain, source, target, metric) == expected
    assert connected >= 10  # the sample exercises both cases


@pytest.mark.parametrize("metric", ["hops", "length", "fidelity"])
@pytest.mark.parametrize("seed", SEEDS)
def test_distances_equal_networkx_dijkstra_up_to_the_source(metric, seed):
    # every node no farther from the target than the source, at networkx's distance (float weights: rel 1e-12)
    g = tied_graph(seed)
    weight = weight_function(metric)
    for source, target in random.Random(seed).sample(list(itertools.permutations(g, 2)), 15):
        ours = _distances_to(adjacency(g), target, source, weight, hops=metric == "hops")
        theirs = nx.single_source_dijkstra_path_length(g, target, weight=weight)
        if source not in theirs:
            assert ours is None
            continue
        within = {node for node, d in theirs.items() if d <= theirs[source] * (1 + 1e-12)}
        assert set(ours) == within
        assert [ours[node] for node in within] == pytest.approx([theirs[node] for node in within], rel=1e-12)


@pytest.mark.parametrize("metric", ["hops", "length"])
@pytest.mark.parametrize("seed", SEEDS)
def test_search_with_hidden_links_equals_search_on_networkx_restricted_view(metric, seed):
    # what Yen's spur search does: some nodes and links hidden by the weight returning None
    g = tied_graph(seed)
    rng = random.Random(seed)
    index = {node: i for i, node in enumerate(g)}
    weight = weight_function(metric)
    for _ in range(15):
        source, target = rng.sample(list(g), 2)
        nodes = set(rng.sample([n for n in g if n not in (source, target)], 4))
        edges = {frozenset(e) for e in rng.sample(list(g.edges), 6)}
        ours = _lex_path(adjacency(g), source, target, _hiding(weight, nodes, edges), index, hops=metric == "hops")
        view = nx.restricted_view(g, nodes, [tuple(e) for e in edges])
        if not nx.has_path(view, source, target):
            assert ours is None
            continue
        tied = list(nx.all_shortest_paths(view, source, target, weight=networkx_weight(metric)))
        assert ours == smallest_by_node_order(g, tied)


@pytest.mark.parametrize("metric", ["hops", "length", "expected-time", "fidelity"])
def test_an_adjacency_mapping_gets_the_routes_of_its_networkx_graph(metric):
    # float weights, k = 4: Yen's routes whichever way the graph is given, as cheap as networkx's 4 cheapest
    rng = random.Random(5)
    g = nx.relabel_nodes(nx.connected_watts_strogatz_graph(40, 4, 0.3, seed=5), lambda i: f"r{i}")
    for _, _, data in g.edges(data=True):
        data.update(length_km=rng.uniform(1, 50), expected_time_s=rng.uniform(0.01, 1), werner=rng.uniform(0.7, 1))
    demands = [(f"d{i}", *rng.sample(list(g), 2)) for i in range(10)]
    routes = compute_routes(g, demands, metric, k=4)
    assert compute_routes(nx.to_dict_of_dicts(g), demands, metric, k=4) == routes
    for name, source, target in demands:
        theirs = itertools.islice(nx.shortest_simple_paths(g, source, target, weight=networkx_weight(metric)), 4)
        assert [path_cost(g, p, metric) for p in routes[name]] == pytest.approx(
            [path_cost(g, p, metric) for p in theirs], rel=1e-9)


def test_graphs_routing_refuses_name_the_problem():
    with pytest.raises(ParameterError, match="an undirected networkx.Graph"):
        shortest_path(nx.DiGraph([("a", "b")]), "a", "b")
    with pytest.raises(ParameterError, match="an undirected networkx.Graph"):
        shortest_path(nx.MultiGraph([("a", "b")]), "a", "b")
    with pytest.raises(ParameterError, match=r"link \('a', 'b'\) under 'a' only.*both its ends"):
        shortest_path({"a": {"b": {}}, "b": {}}, "a", "b")
    with pytest.raises(ParameterError, match="graph = 'list': expected a networkx.Graph or an adjacency mapping"):
        shortest_path([("a", "b")], "a", "b")
