"""Routing: costs agree with networkx, ties break by node order (never by edge order), errors name the problem."""

import itertools
import math
import random
import re
import time

import networkx as nx
import numpy as np
import pytest

from qfabric.control import (
    Metric,
    NoRouteError,
    RoutingError,
    compute_routes,
    edge_cost,
    k_shortest_paths,
    path_cost,
    shortest_path,
    weight_function,
)
from qfabric.errors import ParameterError, QfabricError

METRICS = list(Metric)
SEEDS = [1, 7, 42]


def random_graph(seed, n=40, m=90, werners=None, int_lengths=False):
    """A connected gnm graph on nodes 'n0'..'n{n-1}' (in order) with random link attributes."""
    rng = random.Random(seed)
    g = nx.gnm_random_graph(n, m, seed=seed)
    components = [min(c) for c in nx.connected_components(g)]
    g.add_edges_from(zip(components, components[1:], strict=False))
    g = nx.relabel_nodes(g, {i: f"n{i}" for i in range(n)})
    for _, _, data in g.edges(data=True):
        data["length_km"] = rng.randint(1, 4) if int_lengths else rng.uniform(1.0, 100.0)
        data["expected_time_s"] = rng.uniform(1e-3, 1.0)
        data["werner"] = rng.choice(werners) if werners else rng.uniform(0.5, 1.0)
    return g


def shuffled_copy(graph, seed):
    """The same graph (same node order) with its edges inserted in a shuffled order and orientation."""
    rng = random.Random(seed)
    edges = [(u, v, dict(d)) if rng.random() < 0.5 else (v, u, dict(d)) for u, v, d in graph.edges(data=True)]
    rng.shuffle(edges)
    copy = nx.Graph()
    copy.add_nodes_from(graph.nodes)
    copy.add_edges_from(edges)
    return copy


def endpoint_pairs(graph, count, seed):
    rng = random.Random(seed)
    nodes = list(graph.nodes)
    return [tuple(rng.sample(nodes, 2)) for _ in range(count)]


def is_simple_path(graph, path):
    return len(set(path)) == len(path) and all(graph.has_edge(u, v) for u, v in itertools.pairwise(path))


def brute_force_order(graph, source, target, metric):
    """Every simple path, in (cost, node-index sequence) order; costs within 1e-12 relative count as equal."""
    index = {n: i for i, n in enumerate(graph.nodes)}
    paths = sorted(
        ((path_cost(graph, p, metric), p) for p in nx.all_simple_paths(graph, source, target)), key=lambda cp: cp[0]
    )
    groups = []
    for cost, path in paths:
        if groups and math.isclose(cost, groups[-1][0][0], rel_tol=1e-12):
            groups[-1].append((cost, path))
        else:
            groups.append([(cost, path)])
    return [p for group in groups for _, p in sorted(group, key=lambda cp: [index[n] for n in cp[1]])]


# --- agreement with networkx ---------------------------------------------------------------------------


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("seed", SEEDS)
def test_shortest_path_cost_equals_networkx(metric, seed):
    g = random_graph(seed)
    for source, target in endpoint_pairs(g, 15, seed):
        path = shortest_path(g, source, target, metric)
        assert path[0] == source and path[-1] == target and is_simple_path(g, path)
        expected = nx.shortest_path_length(g, source, target, weight=weight_function(metric))
        assert path_cost(g, path, metric) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("seed", SEEDS)
def test_k_shortest_costs_equal_networkx_yen(metric, seed):
    g = random_graph(seed, n=25, m=50)
    k = 6
    for source, target in endpoint_pairs(g, 4, seed):
        paths = k_shortest_paths(g, source, target, k, metric)
        theirs = list(itertools.islice(nx.shortest_simple_paths(g, source, target, weight=weight_function(metric)), k))
        assert len(paths) == len(theirs)
        assert len({tuple(p) for p in paths}) == len(paths) and all(is_simple_path(g, p) for p in paths)
        assert [path_cost(g, p, metric) for p in paths] == pytest.approx(
            [path_cost(g, p, metric) for p in theirs], rel=1e-9
        )
        assert paths[0] == shortest_path(g, source, target, metric)


def test_k_shortest_returns_fewer_when_fewer_exist():
    g = nx.Graph([("a", "b"), ("b", "c"), ("a", "c"), ("c", "d")])
    assert k_shortest_paths(g, "a", "d", 10) == [["a", "c", "d"], ["a", "b", "c", "d"]]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("metric", [Metric.HOPS, Metric.LENGTH, Metric.FIDELITY])
def test_order_matches_brute_force_over_all_simple_paths(seed, metric):
    # small graphs with many exact ties (integer lengths, hops, Werner parameters from a short list incl. 1.0,
    # whose zero-cost links close cycles of tied edges): the whole (cost, node indices) order is checked
    g = random_graph(seed, n=9, m=16, werners=[0.5, 0.8, 1.0], int_lengths=True)
    for source, target in endpoint_pairs(g, 4, seed):
        expected = brute_force_order(g, source, target, metric)
        assert shortest_path(g, source, target, metric) == expected[0]
        assert k_shortest_paths(g, source, target, 8, metric) == expected[:8]


# --- deterministic tie-breaking --------------------------------------------------------------------------


@pytest.mark.parametrize("metric", METRICS)
def test_edge_insertion_order_does_not_change_routes(metric):
    g = random_graph(3, n=40, m=80, werners=[0.6, 0.9, 1.0], int_lengths=True)
    copies = [shuffled_copy(g, s) for s in range(4)]
    for source, target in endpoint_pairs(g, 10, 3):
        path = shortest_path(g, source, target, metric)
        paths = k_shortest_paths(g, source, target, 5, metric)
        for copy in copies:
            assert shortest_path(copy, source, target, metric) == path
            assert k_shortest_paths(copy, source, target, 5, metric) == paths


def test_four_cycle_picks_lower_index_middle_node():
    for edges in (
        [("n0", "n2"), ("n2", "n3"), ("n0", "n1"), ("n1", "n3")],
        [("n3", "n1"), ("n2", "n0"), ("n1", "n0"), ("n3", "n2")],
    ):
        g = nx.Graph()
        g.add_nodes_from(["n0", "n1", "n2", "n3"])
        g.add_edges_from(edges)
        assert shortest_path(g, "n0", "n3") == ["n0", "n1", "n3"]
        assert k_shortest_paths(g, "n0", "n3", 2) == [["n0", "n1", "n3"], ["n0", "n2", "n3"]]


def test_order_is_node_index_not_string_order():
    g = nx.Graph()
    g.add_nodes_from(f"n{i}" for i in range(11))
    g.add_edges_from([("n0", "n10"), ("n10", "n1"), ("n0", "n2"), ("n2", "n1")])
    assert shortest_path(g, "n0", "n1") == ["n0", "n2", "n1"]  # 'n2' (index 2) before 'n10' (index 10)


def grid(rows, cols, **attributes):
    """A rows x cols grid on nodes 'n0'.. in row-major order; every link carries ``attributes``."""
    g = nx.Graph()
    g.add_nodes_from(f"n{r * cols + c}" for r in range(rows) for c in range(cols))
    for r, c in itertools.product(range(rows), range(cols)):
        if c + 1 < cols:
            g.add_edge(f"n{r * cols + c}", f"n{r * cols + c + 1}", **attributes)
        if r + 1 < rows:
            g.add_edge(f"n{r * cols + c}", f"n{(r + 1) * cols + c}", **attributes)
    return g


def test_grid_hop_ties_pick_lexicographically_smallest_by_index():
    g = grid(4, 4)
    assert shortest_path(g, "n0", "n15") == ["n0", "n1", "n2", "n3", "n7", "n11", "n15"]
    index = {n: i for i, n in enumerate(g.nodes)}
    for source, target in [("n0", "n15"), ("n15", "n0"), ("n3", "n12"), ("n5", "n14")]:
        best = min(nx.all_shortest_paths(g, source, target), key=lambda p: [index[n] for n in p])
        assert shortest_path(g, source, target) == best
    assert shortest_path(shuffled_copy(g, 9), "n15", "n0") == ["n15", "n11", "n7", "n3", "n2", "n1", "n0"]


def test_zero_cost_links_never_revisit_a_node():
    # perfect links (werner 1) cost nothing: from c both l1 and l2 lie on a cheapest path, l1 sorts first but
    # is a dead end; the route must still be simple and cheapest
    g = nx.Graph()
    g.add_nodes_from(["s", "c", "l1", "l2", "t"])
    g.add_edge("s", "c", werner=0.5)
    g.add_edge("c", "l1", werner=1.0)
    g.add_edge("c", "l2", werner=1.0)
    g.add_edge("l2", "t", werner=0.5)
    assert shortest_path(g, "s", "t", "fidelity") == ["s", "c", "l2", "t"]
    assert shortest_path(g, "t", "s", "fidelity") == ["t", "l2", "c", "s"]


# --- metrics ---------------------------------------------------------------------------------------------


def test_fidelity_prefers_longer_path_with_larger_werner_product():
    def network(w_relay):
        g = nx.Graph()
        g.add_edge("a", "b", werner=0.7, length_km=50, expected_time_s=0.1)
        for u, v in [("a", "r"), ("r", "s"), ("s", "b")]:
            g.add_edge(u, v, werner=w_relay, length_km=20, expected_time_s=0.1)
        return g

    better = network(0.9)  # 0.9^3 = 0.729 > 0.7: end-to-end F = (1 + 3 * 0.729) / 4 = 0.79675 > 0.775
    assert shortest_path(better, "a", "b", "fidelity") == ["a", "r", "s", "b"]
    assert math.exp(-path_cost(better, ["a", "r", "s", "b"], "fidelity")) == pytest.approx(0.729)
    assert shortest_path(better, "a", "b", "hops") == ["a", "b"]
    assert shortest_path(better, "a", "b", "expected-time") == ["a", "b"]
    assert shortest_path(better, "a", "b", "length") == ["a", "b"]
    worse = network(0.88)  # 0.88^3 = 0.681472 < 0.7
    assert shortest_path(worse, "a", "b", "fidelity") == ["a", "b"]


def test_edge_costs():
    data = {"length_km": 12.5, "expected_time_s": 0.25, "werner": 0.5}
    assert edge_cost(data, "hops") == 1.0
    assert edge_cost(data, Metric.LENGTH) == 12.5
    assert edge_cost(data, "expected-time") == 0.25
    assert edge_cost(data, "fidelity") == pytest.approx(math.log(2))
    assert edge_cost({"werner": 1.0}, "fidelity") == 0.0
    assert Metric("expected-time") is Metric.EXPECTED_TIME


# --- errors ----------------------------------------------------------------------------------------------


def two_paths():
    return nx.Graph([("a", "r", {"length_km": 1.0}), ("r", "b", {"length_km": 1.0}), ("a", "s"), ("s", "b")])


def test_unknown_node_and_same_node():
    g = two_paths()
    with pytest.raises(NoRouteError, match="'zz' is not a node"):
        shortest_path(g, "a", "zz")
    with pytest.raises(NoRouteError, match="'zz' is not a node"):
        k_shortest_paths(g, "zz", "a", 2)
    with pytest.raises(NoRouteError, match="two distinct nodes"):
        shortest_path(g, "a", "a")


def test_no_path_between_components():
    g = nx.Graph([("a", "b"), ("c", "d")])
    with pytest.raises(NoRouteError, match="'a' to 'd': they are not connected") as info:
        shortest_path(g, "a", "d")
    assert isinstance(info.value, RoutingError) and isinstance(info.value, QfabricError)
    with pytest.raises(NoRouteError, match="request 'x'.*not connected"):
        compute_routes(g, [("x", "a", "d")])


def test_missing_attribute_names_edge_and_attribute():
    g = two_paths()  # a-s and s-b carry no length_km
    with pytest.raises(
        RoutingError, match=r"edge \('[abs]', '[abs]'\) has no 'length_km' attribute \(needed by metric 'length'\)"
    ):
        shortest_path(g, "a", "b", "length")
    with pytest.raises(RoutingError, match="has no 'werner'"):
        k_shortest_paths(g, "a", "b", 2, "fidelity")
    bad = nx.Graph([("a", "r", {"werner": 0.9}), ("r", "b", {"werner": 1.5})])
    with pytest.raises(RoutingError, match=r"edge \('[br]', '[br]'\) has werner = 1.5: expected a Werner parameter in"):
        shortest_path(bad, "a", "b", "fidelity")
    bad = nx.Graph([("a", "b", {"length_km": -2.0})])
    with pytest.raises(RoutingError, match="length_km = -2.0: expected a finite number >= 0"):
        shortest_path(bad, "a", "b", "length")


def test_bad_metric():
    with pytest.raises(ParameterError, match=r"metric = 'latency': expected one of \['hops', 'length'"):
        shortest_path(two_paths(), "a", "b", "latency")
    with pytest.raises(ParameterError):
        Metric("fidelity ")


@pytest.mark.parametrize("k", [0, -1, 1.5, True])
def test_bad_k(k):
    with pytest.raises(ParameterError, match="k = .*a whole number >= 1"):
        k_shortest_paths(two_paths(), "a", "b", k)
    with pytest.raises(ParameterError):
        compute_routes(two_paths(), [("x", "a", "b")], k=k)


def test_compute_routes_k_and_explicit():
    g = two_paths()
    routes = compute_routes(g, [("x", "a", "b"), ("y", "b", "a")], k=2, explicit={"y": ("b", "s", "a")})
    assert routes == {"x": [["a", "r", "b"], ["a", "s", "b"]], "y": [["b", "s", "a"]]}


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        (["r", "b"], "it starts at 'r', not at the source 'a'"),
        (["a", "r"], "it ends at 'r', not at the target 'b'"),
        (["a", "b"], "no link joins 'a' and 'b'"),
        (["a", "r", "a", "s", "b"], "node 'a' is repeated"),
        (["a", "q", "b"], "'q' is not a node"),
        (["a"], "it needs at least two nodes"),
    ],
)
def test_bad_explicit_paths(path, problem):
    with pytest.raises(RoutingError, match=re.escape(f"for request 'x': {problem}")):
        compute_routes(two_paths(), [("x", "a", "b")], explicit={"x": path})


def test_bad_demands():
    g = two_paths()
    with pytest.raises(RoutingError, match="'x' appears more than once"):
        compute_routes(g, [("x", "a", "b"), ("x", "b", "a")])
    with pytest.raises(RoutingError, match="explicit path given for 'y'"):
        compute_routes(g, [("x", "a", "b")], explicit={"y": ["a", "r", "b"]})


# --- performance -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["hops", "length"])
def test_shortest_path_on_1000_node_grid_is_fast(metric):
    # Corner to corner of a 25 x 40 grid with equal weights there are C(63, 24) ~ 1e17 tied shortest paths, so
    # any tie-break that enumerated them would never finish; one Dijkstra plus a greedy walk takes milliseconds.
    # The 1 s bound is generous so a slow CI machine does not flake.
    g = grid(25, 40, length_km=1.0)
    start = time.perf_counter()
    path = shortest_path(g, "n0", "n999", metric)
    elapsed = time.perf_counter() - start
    assert len(path) == 64 and path[:40] == [f"n{i}" for i in range(40)]
    assert elapsed < 1.0


def test_hop_routes_on_random_networks_are_the_benchmark_workloads_canonical_routes():
    # ../shared/peers/make_randomtopo.py routes each request over the hop-count shortest path that is
    # lexicographically smallest by integer node index; qfabric's deterministic tie-break must give the same
    from qfabric.network.generators import random_connected

    for nodes, edges, seed in [(64, 80, 1), (128, 160, 1), (200, 260, 7)]:
        graph = random_connected(nodes, edges, seed=seed)
        ints = nx.relabel_nodes(graph, {n: int(n[1:]) for n in graph})
        rng = np.random.default_rng(seed)
        for a, b in rng.integers(0, nodes, size=(40, 2)):
            if a == b:
                continue
            canonical = [f"n{i}" for i in min(nx.all_shortest_paths(ints, int(a), int(b)))]
            assert shortest_path(graph, f"n{a}", f"n{b}") == canonical
