"""Topology generators and topology files (GML, GraphML) against their definitions and the benchmark generator."""

import importlib.util
import math
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from qfabric.errors import ParameterError, QfabricError
from qfabric.network.generators import (
    GENERATORS,
    TopologyFileError,
    generate,
    grid,
    line,
    positions_length_km,
    random_connected,
    read_graph,
    ring,
    star,
    waxman,
)

MAKE_RANDOMTOPO = Path("/work/shared/peers/make_randomtopo.py")


def assert_lengths_are_distances(g):
    for a, b, length_km in g.edges(data="length_km"):
        assert length_km > 0
        assert length_km == pytest.approx(positions_length_km(g.nodes[a]["pos"], g.nodes[b]["pos"]), rel=1e-12)


def assert_plain(g):
    assert type(g) is nx.Graph
    assert all(isinstance(v, str) for v in g.nodes)
    assert nx.is_connected(g)
    assert all(isinstance(d, float) and d > 0 for *_, d in g.edges(data="length_km"))


# ---------------------------------------------------------------------------------------------------------------
# generators


@pytest.mark.parametrize(
    ("graph", "nodes", "edges"),
    [
        (line(5), 5, 4),
        (ring(7), 7, 7),
        (star(6), 7, 6),
        (grid(3, 4), 12, 3 * 3 + 2 * 4),
        (grid(1, 2), 2, 1),
        (random_connected(16, 20, seed=1), 16, 20),
        (random_connected(6, 15, seed=2), 6, 15),  # complete
        (waxman(30, seed=5), 30, None),
    ],
    ids=["line", "ring", "star", "grid", "grid-1x2", "random", "random-complete", "waxman"],
)
def test_counts_and_connectivity(graph, nodes, edges):
    assert_plain(graph)
    assert graph.number_of_nodes() == nodes
    if edges is not None:
        assert graph.number_of_edges() == edges


@pytest.mark.parametrize(
    "graph",
    [
        line(4, length_km=3.5),
        ring(3, length_km=12.0),
        ring(11, length_km=25.0),
        star(5, length_km=40.0),
        grid(3, 3, length_km=8.0),
        waxman(25, seed=3, size_km=500.0),
    ],
    ids=["line", "ring3", "ring11", "star", "grid", "waxman"],
)
def test_edge_lengths_are_euclidean_distances(graph):
    assert all(
        isinstance(p, tuple) and len(p) == 2 and all(isinstance(c, float) for c in p)
        for _, p in graph.nodes(data="pos")
    )
    assert_lengths_are_distances(graph)


def test_fixed_shapes():
    assert [p for _, p in line(3, length_km=2.0).nodes(data="pos")] == [(0.0, 0.0), (2.0, 0.0), (4.0, 0.0)]
    assert {d for *_, d in ring(5, length_km=9.0).edges(data="length_km")} == {9.0}
    s = star(4, length_km=6.0, prefix="leaf", hub="center")
    assert s.nodes["center"]["pos"] == (0.0, 0.0) and sorted(s["center"]) == ["leaf0", "leaf1", "leaf2", "leaf3"]
    g = grid(2, 3, length_km=5.0, prefix="q")
    assert g.nodes["q1_2"]["pos"] == (10.0, 5.0) and g.has_edge("q0_0", "q1_0") and not g.has_edge("q0_0", "q1_1")
    assert set(random_connected(4, 3, seed=0, prefix="v")) == {"v0", "v1", "v2", "v3"}


def test_waxman_positions_in_square_and_deterministic_by_seed():
    g = waxman(40, seed=11, size_km=250.0)
    assert all(0.0 <= c <= 250.0 for _, p in g.nodes(data="pos") for c in p)
    same = waxman(40, seed=11, size_km=250.0)
    assert nx.utils.graphs_equal(g, same) and list(g.nodes(data="pos")) == list(same.nodes(data="pos"))
    other = waxman(40, seed=12, size_km=250.0)
    assert list(g.nodes(data="pos")) != list(other.nodes(data="pos"))


def test_waxman_too_sparse_to_connect_names_beta_and_alpha():
    with pytest.raises(ParameterError, match="beta/alpha are too small for a connected graph") as info:
        waxman(30, seed=1, alpha=0.01, beta=0.01, max_tries=20)
    assert "beta" in str(info.value) and "alpha" in str(info.value) and "max_tries = 20" in str(info.value)


def test_random_connected_deterministic_by_seed():
    a, b = random_connected(30, 45, seed=4), random_connected(30, 45, seed=4)
    assert list(a.edges) == list(b.edges)
    assert set(a.edges) != set(random_connected(30, 45, seed=5).edges)
    assert {d for *_, d in random_connected(10, 12, seed=0, length_km=7.5).edges(data="length_km")} == {7.5}


@pytest.fixture(scope="module")
def make_randomtopo():
    if not MAKE_RANDOMTOPO.is_file():
        pytest.skip(f"the benchmark workload generator {MAKE_RANDOMTOPO} is missing")
    spec = importlib.util.spec_from_file_location("make_randomtopo", MAKE_RANDOMTOPO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("n", "e", "seed"), [(16, 20, 1), (64, 80, 3)])
def test_random_connected_reproduces_make_randomtopo(make_randomtopo, n, e, seed):
    links = make_randomtopo.build_links(np.random.default_rng(seed), n, e)
    g = random_connected(n, e, seed=seed)
    assert len(links) == e == g.number_of_edges()
    assert sorted(tuple(sorted((int(a[1:]), int(b[1:])))) for a, b in g.edges) == sorted(links)
    assert all(g.edges[f"n{a}", f"n{b}"]["length_km"] == make_randomtopo.LINK_KM for a, b in links)
    # the script's own graph (nodes in index order, links in drawing order) iterates its edges in the same order
    theirs = nx.Graph()
    theirs.add_nodes_from(range(n))
    theirs.add_edges_from(links)
    assert list(g.edges) == [(f"n{a}", f"n{b}") for a, b in theirs.edges]
    assert list(g.nodes) == [f"n{i}" for i in range(n)]


# ---------------------------------------------------------------------------------------------------------------
# generate() and parameter errors


def test_generate_dispatches_by_name():
    assert set(GENERATORS) == {"line", "ring", "star", "grid", "waxman", "random"}
    assert list(generate("line", nodes=3).edges) == list(line(3).edges)
    assert list(generate("random", nodes=8, edges=10, seed=2).edges) == list(random_connected(8, 10, seed=2).edges)
    assert nx.utils.graphs_equal(generate("waxman", nodes=30, seed=9), waxman(30, seed=9))


@pytest.mark.parametrize(
    ("name", "params", "parameter"),
    [
        ("tree", {"nodes": 3}, "generator"),
        ("line", {"nodes": 1}, "nodes"),
        ("line", {"nodes": 3.0}, "nodes"),
        ("line", {"nodes": 3, "length_km": 0.0}, "length_km"),
        ("line", {"nodes": 3, "length_km": -2.0}, "length_km"),
        ("line", {"nodes": 3, "length_km": math.inf}, "length_km"),
        ("ring", {"nodes": 2}, "nodes"),
        ("star", {"leaves": 0}, "leaves"),
        ("star", {"leaves": 3, "hub": "n1"}, "hub"),
        ("grid", {"rows": 0, "cols": 3}, "rows"),
        ("grid", {"rows": 1, "cols": 1}, "cols"),
        ("grid", {"rows": 2, "cols": 2, "length_km": 0}, "length_km"),
        ("waxman", {"nodes": 10}, "seed"),
        ("waxman", {"nodes": 10, "seed": -1}, "seed"),
        ("waxman", {"nodes": 1, "seed": 1}, "nodes"),
        ("waxman", {"nodes": 10, "seed": 1, "beta": 1.5}, "beta"),
        ("waxman", {"nodes": 10, "seed": 1, "alpha": 0.0}, "alpha"),
        ("waxman", {"nodes": 10, "seed": 1, "size_km": -5.0}, "size_km"),
        ("waxman", {"nodes": 10, "seed": 1, "max_tries": 0}, "max_tries"),
        ("random", {"nodes": 1, "edges": 0, "seed": 1}, "nodes"),
        ("random", {"nodes": 5, "edges": 3, "seed": 1}, "edges"),
        ("random", {"nodes": 5, "edges": 11, "seed": 1}, "edges"),
        ("random", {"nodes": 5, "edges": 6, "seed": 1, "length_km": 0}, "length_km"),
        ("random", {"nodes": 5, "edges": 6, "seed": 1, "colour": "red"}, "colour"),
    ],
)
def test_bad_parameters_name_the_parameter(name, params, parameter):
    with pytest.raises(ParameterError) as info:
        generate(name, **params)
    assert info.value.name == parameter
    assert str(info.value).startswith(f"{parameter} = ") and "expected" in str(info.value)


def test_edges_error_gives_the_allowed_range():
    with pytest.raises(ParameterError, match=r"N-1 = 4 to N\(N-1\)/2 = 10"):
        random_connected(5, 11, seed=0)


# ---------------------------------------------------------------------------------------------------------------
# files


def test_gml_round_trip(tmp_path):
    original = grid(2, 3, length_km=4.0)
    for _, data in original.nodes(data=True):
        data["x"], data["y"] = data.pop("pos")
    path = tmp_path / "grid.gml"
    nx.write_gml(original, path)
    g = read_graph(path)
    assert_plain(g)
    assert list(g.nodes) == list(original.nodes) and set(g.edges) == set(original.edges)
    assert g.nodes["n1_2"]["pos"] == (8.0, 4.0)
    assert {d for *_, d in g.edges(data="length_km")} == {4.0}


def test_gml_lengths_from_positions_and_attribute_aliases(tmp_path):
    src = nx.Graph()
    src.add_node(1, pos=[0.0, 0.0])  # GML keeps a position as a list; integer names become strings
    src.add_node(2, pos=[3.0, 4.0])
    src.add_node(3, pos=[3.0, 0.0])
    src.add_edge(1, 2)  # from positions
    src.add_edge(2, 3, distance=9.0)  # attribute wins over positions
    src.add_edge(1, 3, length=2.5, length_km=1.5)  # length_km first
    nx.write_gml(src, tmp_path / "t.gml")
    g = read_graph(str(tmp_path / "t.gml"))
    assert g.edges["1", "2"]["length_km"] == pytest.approx(5.0)
    assert g.edges["2", "3"]["length_km"] == 9.0
    assert g.edges["1", "3"]["length_km"] == 1.5
    assert g.nodes["2"]["pos"] == (3.0, 4.0)


def test_gml_without_labels_uses_ids(tmp_path):
    path = tmp_path / "ids.gml"
    path.write_text("graph [\n node [ id 0 ]\n node [ id 1 ]\n edge [ source 0 target 1 length_km 7 ]\n]\n")
    g = read_graph(path)
    assert list(g.edges(data="length_km")) == [("0", "1", 7.0)]


def test_graphml_round_trip(tmp_path):
    original = nx.Graph()
    for name, x, y in [("a", 0.0, 0.0), ("b", 6.0, 8.0), ("c", 6.0, 0.0)]:
        original.add_node(name, x=x, y=y, kind="repeater")
    original.add_edge("a", "b", length_km=12.0)
    original.add_edge("b", "c")
    for suffix in (".graphml", ".xml"):
        path = tmp_path / f"net{suffix}"
        nx.write_graphml(original, path)
        g = read_graph(path)
        assert_plain(g)
        assert g.edges["a", "b"]["length_km"] == 12.0
        assert g.edges["b", "c"]["length_km"] == pytest.approx(8.0)
        assert g.nodes["b"]["pos"] == (6.0, 8.0) and g.nodes["b"]["kind"] == "repeater"


ZOO = """<?xml version="1.0" encoding="utf-8"?><graphml xmlns="http://graphml.graphdrawing.org/xmlns"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://graphml.graphdrawing.org/xmlns http://graphml.graphdrawing.org/xmlns/1.0/graphml.xsd">
  <key attr.name="Network" attr.type="string" for="graph" id="d3" />
  <key attr.name="Latitude" attr.type="double" for="node" id="d29" />
  <key attr.name="Country" attr.type="string" for="node" id="d30" />
  <key attr.name="Internal" attr.type="int" for="node" id="d31" />
  <key attr.name="Longitude" attr.type="double" for="node" id="d32" />
  <key attr.name="label" attr.type="string" for="node" id="d33" />
  <key attr.name="LinkLabel" attr.type="string" for="edge" id="d36" />
  <graph edgedefault="undirected">
    <data key="d3">Toy</data>
    <node id="0"><data key="d29">52.3702</data><data key="d30">Netherlands</data><data key="d31">1</data>
      <data key="d32">4.8952</data><data key="d33">Amsterdam</data></node>
    <node id="1"><data key="d29">51.5074</data><data key="d30">United Kingdom</data><data key="d31">1</data>
      <data key="d32">-0.1278</data><data key="d33">London</data></node>
    <node id="2"><data key="d29">0.0</data><data key="d31">1</data><data key="d32">4.8952</data>
      <data key="d33">Equator</data></node>
    <node id="3"><data key="d29">0.0</data><data key="d31">1</data><data key="d32">5.8952</data>
      <data key="d33">Equator east</data></node>
    <edge source="0" target="1"><data key="d36">10 Gbps</data></edge>
    <edge source="0" target="2" />
    <edge source="2" target="3" />
    EXTRA
  </graph>
</graphml>
"""


def test_topology_zoo_graphml_uses_great_circle_distances(tmp_path):
    path = tmp_path / "Toy.graphml"
    path.write_text(ZOO.replace("EXTRA", ""))
    g = read_graph(path)
    assert_plain(g)
    assert g.graph["Network"] == "Toy" and g.nodes["1"]["label"] == "London"
    # Amsterdam (52.3702 N, 4.8952 E) - London (51.5074 N, 0.1278 W), by the spherical law of cosines with
    # R = 6371 km: 357.3678 km; tolerance 1 m
    assert g.edges["0", "1"]["length_km"] == pytest.approx(357.3678, abs=1e-3)
    assert g.edges["0", "1"]["LinkLabel"] == "10 Gbps"
    # one degree of longitude on the equator: 6371 pi / 180 = 111.19493 km
    assert g.edges["2", "3"]["length_km"] == pytest.approx(111.19493, abs=1e-3)
    assert all(isinstance(p, tuple) and len(p) == 2 for _, p in g.nodes(data="pos"))


def test_topology_zoo_node_without_coordinates_names_file_and_edge(tmp_path):
    extra = '<node id="4"><data key="d33">Internal</data></node><edge source="1" target="4" />'
    path = tmp_path / "Toy.graphml"
    path.write_text(ZOO.replace("EXTRA", extra))
    with pytest.raises(TopologyFileError, match="no length") as info:
        read_graph(path)
    assert "Toy.graphml" in str(info.value) and "('1', '4')" in str(info.value)
    assert isinstance(info.value, QfabricError) and info.value.path == str(path)


def test_parallel_edges_keep_the_shortest_and_self_loops_are_dropped(tmp_path):
    multi = nx.MultiGraph()
    multi.add_edge("a", "b", length_km=20.0, fibre="long")
    multi.add_edge("a", "b", length_km=5.0, fibre="short")
    multi.add_edge("b", "a", length_km=9.0)
    multi.add_edge("b", "c", length_km=1.0)
    multi.add_edge("c", "c", length_km=1.0)
    for name in ("multi.gml", "multi.graphml"):
        path = tmp_path / name
        (nx.write_gml if name.endswith(".gml") else nx.write_graphml)(multi, path)
        g = read_graph(path)
        assert type(g) is nx.Graph and g.number_of_edges() == 2 and not list(nx.selfloop_edges(g))
        assert g.edges["a", "b"]["length_km"] == 5.0 and g.edges["a", "b"]["fibre"] == "short"


def test_directed_file_is_read_as_undirected(tmp_path):
    path = tmp_path / "directed.graphml"
    nx.write_graphml(nx.DiGraph([("a", "b", {"length_km": 3.0}), ("b", "a", {"length_km": 2.0})]), path)
    assert list(read_graph(path).edges(data="length_km")) == [("a", "b", 2.0)]


def test_disconnected_file_names_a_node_of_the_smaller_component(tmp_path):
    path = tmp_path / "split.gml"
    g = line(4)
    g.add_edge("x", "y", length_km=1.0)
    nx.write_gml(nx.Graph(g.edges(data=True)), path)
    with pytest.raises(TopologyFileError, match="not connected: 2 components") as info:
        read_graph(path)
    assert "split.gml" in str(info.value) and "'x'" in str(info.value)


def two_nodes_gml(a="", b="", edge=""):
    return f'graph [ node [ id 0 label "a" {a} ] node [ id 1 label "b" {b} ] edge [ source 0 target 1 {edge} ] ]'


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("missing.gml", None, "no such file"),
        ("topo.json", "{}", "unknown extension '.json'"),
        ("broken.gml", "graph [ node [ id 0 label ", "not a valid GML file"),
        ("broken.graphml", "<graphml><graph><node id='a'></graph>", "not a valid GraphML file"),
        ("text.xml", "this is not xml", "not a valid GraphML file"),
        ("empty.gml", "graph [ ]", "expected a network of at least 2 nodes"),
        ("one.gml", 'graph [ node [ id 0 label "a" ] ]', "expected a network of at least 2 nodes"),
        ("nolinks.gml", 'graph [ node [ id 0 label "a" ] node [ id 1 label "b" ] ]', "no links"),
        ("zero.gml", two_nodes_gml(edge="length 0"), "expected a length > 0"),
        ("word.gml", two_nodes_gml(edge='length "x"'), "expected a finite number"),
        ("nolen.gml", two_nodes_gml(), "edge ('a', 'b') has no length"),
        ("badpos.gml", two_nodes_gml(a='pos "1 2 3"'), "node 'a': pos"),
        ("same.gml", two_nodes_gml(a="x 1 y 1", b="x 1 y 1"), "length would be 0"),
    ],
)
def test_file_errors_name_the_file_and_the_expectation(tmp_path, name, content, expected):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(TopologyFileError) as info:
        read_graph(path)
    assert name in str(info.value) and expected in str(info.value)


def test_directory_is_not_a_topology_file(tmp_path):
    folder = tmp_path / "folder.gml"
    folder.mkdir()
    with pytest.raises(TopologyFileError, match="folder.gml: not a file"):
        read_graph(folder)
