"""Scenarios with many requests: windows, targets, fidelity floors, multipath, tenants, stalls, bad input."""

import copy

import pytest

from qfabric.errors import ScenarioError
from qfabric.scenario import load_scenario, parse_scenario, run_scenario

MESH = {
    "name": "mesh",
    "seed": 5,
    "duration_s": 1.0,
    "nodes": [{"name": n} for n in ("a", "b", "c", "d", "e")],
    "links": [{"between": list(pair), "length_km": 10, "profile": "near-term", "scheme": "double-click"}
              for pair in (("a", "b"), ("b", "c"), ("c", "d"), ("a", "e"), ("e", "d"), ("b", "e"))],
    "requests": [
        {"name": "ad", "from": "a", "to": "d", "tenant": "bank", "cutoff_s": 0.05},
        {"name": "bc", "from": "b", "to": "c", "tenant": "lab", "start_s": 0.2, "end_s": 0.6, "rate_hz": 500},
    ],
}


@pytest.fixture
def mesh():
    return copy.deepcopy(MESH)


def strip(report):
    return {k: v for k, v in report.items() if k != "performance"}


def test_requests_run_at_once_in_their_windows(mesh):
    report = run_scenario(parse_scenario(mesh))
    ad, bc = report["requests"]
    assert ad["paths"] == [["a", "e", "d"]]  # two hops beat three; a-b-... and a-e-... tie-break by node order
    assert ad["pairs_delivered"] > 100 and bc["pairs_delivered"] > 100
    assert bc["window_s"] == pytest.approx([0.2, 0.6])
    assert bc["active_s"] == pytest.approx(0.4)
    assert bc["rate_hz"] == pytest.approx(bc["pairs_delivered"] / 0.4)
    assert bc["share_of_target"] == pytest.approx(bc["rate_hz"] / 500)
    assert 0.2 < bc["time_to_first_pair_s"] + 0.2 < 0.6
    assert ad["tenant"] == "bank" and bc["tenant"] == "lab"
    idle = [row["name"] for row in report["links"] if row["idle"]]
    assert sorted(idle) == ["a-b", "b-e", "c-d"]  # every link is in the report, idle ones too
    assert {row["name"]: row["requests"] for row in report["links"]}["a-e"] == ["ad"]
    assert 0 < report["fairness"]["jain_index_rate"] <= 1
    nodes = {row["name"]: row for row in report["nodes"]}
    assert nodes["b"]["memory_qubits"] == 3 * 4 and 0 < nodes["a"]["memory_utilisation"] <= 1


def test_same_seed_same_report_and_another_seed_another(mesh):
    first, second = run_scenario(parse_scenario(mesh)), run_scenario(parse_scenario(mesh))
    assert strip(first) == strip(second)
    mesh["seed"] += 1
    assert strip(run_scenario(parse_scenario(mesh))) != strip(first)


def test_a_pair_count_stops_the_request_and_frees_its_memories(mesh):
    mesh["requests"][0]["pairs"] = 25
    report = run_scenario(parse_scenario(mesh))
    ad = report["requests"][0]
    assert ad["pairs_delivered"] == 25 and ad["share_of_target"] == 1.0
    assert ad["completed_s"] == pytest.approx(ad["window_s"][1])
    assert ad["completed_s"] < 0.5


def test_pairs_below_the_fidelity_floor_are_discarded(mesh):
    plain = run_scenario(parse_scenario(mesh))["requests"][0]["fidelity"]
    floor = plain["p50"]  # pairs that waited longer in memory fall below the median
    mesh["requests"][0]["fidelity_min"] = floor
    ad = run_scenario(parse_scenario(mesh))["requests"][0]
    assert ad["below_fidelity_discards"] > 0.2 * plain["count"]
    assert ad["fidelity"]["min"] >= floor


def test_several_paths_serve_one_request(mesh):
    mesh["requests"][0]["paths"] = 2
    report = run_scenario(parse_scenario(mesh))
    ad = report["requests"][0]
    assert ad["paths"] == [["a", "e", "d"], ["a", "b", "c", "d"]]
    assert all(n > 20 for n in ad["pairs_per_path"])
    assert sum(ad["pairs_per_path"]) == ad["pairs_delivered"]


def test_routing_metric_and_explicit_paths(mesh):
    mesh["links"][3]["length_km"] = 40  # a-e long: by length a-b-e-d (30 km) beats a-e-d (50) and a-b-c-d (45)
    mesh["links"][2]["length_km"] = 25
    mesh["routing"] = {"metric": "length"}
    report = run_scenario(parse_scenario(mesh))
    assert report["requests"][0]["paths"] == [["a", "b", "e", "d"]]
    mesh["requests"][0]["path"] = ["a", "b", "c", "d"]
    report = run_scenario(parse_scenario(mesh))
    assert report["requests"][0]["paths"] == [["a", "b", "c", "d"]]


def test_a_deadlocked_chain_is_reported(small_data):
    # swap-asap without a cut-off on a long chain with two qubits per link end: pairs that cross hold every
    # memory (see the network engine tests); the run must say so instead of reporting a low rate silently
    names = [f"n{i}" for i in range(9)]
    small_data["nodes"] = [{"name": n} for n in names]
    small_data["links"] = [{"between": [a, b], "length_km": 2, "profile": "near-term",
                            "hardware": {"memory": {"capacity": 2}}} for a, b in zip(names, names[1:], strict=False)]
    small_data["chain"] = {"from": "n0", "to": "n8", "scheme": "swap-asap"}
    small_data["duration_s"] = 5.0
    report = run_scenario(parse_scenario(small_data))
    row = report["requests"][0]
    assert row["stalled_since_s"] is not None and row["stalled_since_s"] < 5.0
    assert any("stalled" in w and "cutoff_s" in w for w in report["warnings"])
    small_data["chain"]["cutoff_s"] = 0.05
    report = run_scenario(parse_scenario(small_data))
    assert report["requests"][0]["stalled_since_s"] is None and not report["warnings"]


def test_generated_topology_runs(mesh):
    del mesh["nodes"], mesh["links"]
    mesh["topology"] = {"generator": "grid", "rows": 3, "cols": 3, "spacing_km": 8,
                        "link": {"profile": "near-term", "scheme": "double-click"}}
    mesh["requests"] = [{"name": "corner", "from": "n0_0", "to": "n2_2", "cutoff_s": 0.05},
                        {"name": "edge", "from": "n0_2", "to": "n2_0", "cutoff_s": 0.05}]
    report = run_scenario(parse_scenario(mesh))
    assert [len(r["paths"][0]) - 1 for r in report["requests"]] == [4, 4]
    assert all(r["pairs_delivered"] > 0 for r in report["requests"])
    assert len(report["links"]) == 12


def problems(data, tmp_path=None):
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data, "bad.yaml")
    assert "bad.yaml" in str(info.value)
    return dict(info.value.problems)


def test_bad_requests_name_their_field(mesh):
    bad = copy.deepcopy(mesh)
    bad["requests"][0]["from"] = "aa"
    bad["requests"][1]["name"] = "ad"
    found = problems(bad)
    assert "unknown node 'aa'; did you mean 'a'?" in found["requests[0].from"]
    assert "request name 'ad' is used twice" in found["requests[1].name"]
    bad = copy.deepcopy(mesh)
    bad["requests"][1]["end_s"] = 0.1
    assert "end_s (0.1) must be after start_s (0.2)" in problems(bad)["requests[1]"]
    bad = copy.deepcopy(mesh)
    bad["requests"][0]["path"] = ["a", "c", "d"]
    assert "no link joins 'a' and 'c'" in problems(bad)["requests[0].path"]
    bad = copy.deepcopy(mesh)
    bad["nodes"][0]["memory_qubits"] = 0
    assert "node 'a' has no memory qubits" in problems(bad)["requests[0].from"]
    bad = copy.deepcopy(mesh)
    bad["routing"] = {"metric": "cheapest", "paths": 0}
    found = problems(bad)
    assert "'hops', 'length', 'expected-time' or 'fidelity'" in found["routing.metric"]
    assert "expected a number >= 1, got 0" in found["routing.paths"]
    bad = copy.deepcopy(mesh)
    bad["requests"][0]["scheme"] = "fastest"
    bad["requests"][0]["pairs"] = 10
    bad["requests"][0]["rate_hz"] = 10
    found = problems(bad)
    assert "'swap-asap', 'nested' or 'sequential'" in found["requests[0].scheme"]
    bad = copy.deepcopy(mesh)
    bad["requests"][0]["pairs"] = 10
    bad["requests"][0]["rate_hz"] = 10
    assert "either pairs" in problems(bad)["requests[0]"]
    bad = copy.deepcopy(mesh)
    bad["chain"] = {"from": "a", "to": "d"}
    assert "either chain" in problems(bad)[""]


def test_bad_topologies_name_their_field(mesh, tmp_path):
    del mesh["nodes"], mesh["links"]
    mesh["topology"] = {"generator": "waxman", "nodes": 10, "beta": 0.01, "alpha": 0.01, "seed": 1}
    assert "too small for a connected graph" in problems(mesh)["topology.beta/alpha"]
    mesh["topology"] = {"generator": "random", "nodes": 10, "edges": 5}
    assert "edges" in problems(mesh)["topology.edges"]
    mesh["topology"] = {"generator": "ring"}
    assert "nodes" in " ".join(problems(mesh))
    missing = tmp_path / "net.graphml"
    mesh["topology"] = {"file": str(missing)}
    assert "net.graphml" in problems(mesh)["topology.file"]
    bad = tmp_path / "bad.gml"
    bad.write_text("graph [ node [ id 0 label")
    mesh["topology"] = {"file": str(bad)}
    assert "bad.gml" in problems(mesh)["topology.file"]
    mesh["topology"] = {"generator": "ring", "file": "x.gml", "nodes": 4}
    assert "either generator or file" in problems(mesh)["topology"]


def test_a_graphml_file_is_imported_relative_to_the_scenario(tmp_path, mesh):
    import networkx as nx
    import yaml

    graph = nx.Graph()
    for a, b, km in [("x", "y", 12.5), ("y", "z", 7.5)]:
        graph.add_edge(a, b, length_km=km)
    nx.write_graphml(graph, tmp_path / "net.graphml")
    del mesh["nodes"], mesh["links"]
    mesh["topology"] = {"file": "net.graphml", "link": {"profile": "near-term"}}
    mesh["requests"] = [{"name": "xz", "from": "x", "to": "z", "cutoff_s": 0.1}]
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(mesh))
    sc = load_scenario(tmp_path / "s.yaml")
    assert sorted((link.name, link.length_km) for link in sc.links) == [("x-y", 12.5), ("y-z", 7.5)]


def test_the_shipped_metro_mesh_serves_both_tenants():
    from pathlib import Path

    report = run_scenario(load_scenario(Path(__file__).parents[2] / "scenarios" / "metro-mesh.yaml"))
    rows = {row["name"]: row for row in report["requests"]}
    assert {row["tenant"] for row in rows.values()} == {"health", "finance"}
    assert all(row["pairs_delivered"] > 100 for row in rows.values())
    assert rows["lab-share"]["completed_s"] is not None  # its 600 pairs arrive before the end
    assert rows["bank-sla"]["share_of_target"] >= 1.0 and len(rows["bank-sla"]["paths"]) == 2
    assert not report["warnings"]


def test_a_networkx_graph_becomes_a_scenario():
    # docs/network.md: build a topology with networkx, add requests, run it
    import networkx as nx

    from qfabric.scenario.skeleton import skeleton

    graph = nx.relabel_nodes(nx.grid_2d_graph(3, 3), lambda rc: f"{rc[0]}-{rc[1]}")
    nx.set_edge_attributes(graph, 8.0, "length_km")
    data = skeleton(graph, name="grid", seed=4, duration_s=0.5)
    data["requests"] = [{"name": "corner", "from": "0-0", "to": "2-2", "cutoff_s": 0.05},
                        {"name": "middle", "from": "1-0", "to": "1-2", "cutoff_s": 0.05, "tenant": "lab"}]
    report = run_scenario(parse_scenario(data))
    assert [r["hops"] for r in report["requests"]] == [[4], [2]]
    assert all(r["pairs_delivered"] > 0 for r in report["requests"])


def test_the_oldest_part_cutoff_convention_discards_more(mesh):
    # a swapped pair whose clock keeps its oldest part's age expires sooner than one whose clock restarts
    mesh["requests"] = [{"name": "ad", "from": "a", "to": "d", "path": ["a", "b", "c", "d"], "cutoff_s": 0.0003}]
    reset = run_scenario(parse_scenario(mesh))["requests"][0]
    mesh["requests"][0]["link_age"] = "oldest"
    oldest = run_scenario(parse_scenario(mesh))["requests"][0]
    assert oldest["cutoff_discards"] > reset["cutoff_discards"]
    assert oldest["pairs_delivered"] < reset["pairs_delivered"]
    mesh["requests"][0]["link_age"] = "newest"
    assert "'reset' or 'oldest'" in problems(mesh)["requests[0].link_age"]
