"""Benchmark workloads (qfabric-peer-workload/1) run as scenarios with the same topology, routes and physics."""

import json

import networkx as nx
import pytest

from qfabric.errors import ScenarioError
from qfabric.network.generators import random_connected
from qfabric.scenario import load_scenario, run_scenario
from qfabric.scenario.build import build_network
from qfabric.scenario.workload import DEFAULT_PARAMS, WORKLOAD_FORMAT


def workload(nodes=12, edges=15, seed=2):
    graph = random_connected(nodes, edges, seed=seed, length_km=30.0)
    names = list(graph.nodes)
    pairs = [(a, b) for a in names for b in names if a < b and 2 <= nx.shortest_path_length(graph, a, b) <= 4][:2]
    routes = [min(nx.all_shortest_paths(graph, a, b)) for a, b in pairs]
    return {
        "format": WORKLOAD_FORMAT, "seed": seed, "nodes": names,
        "links": [{"a": a, "b": b, "length_km": 30.0, "attenuation_db_per_km": 0.2} for a, b in graph.edges],
        "requests": [{"id": i, "src": r[0], "dst": r[-1], "hops": len(r) - 1, "route": r}
                     for i, r in enumerate(routes)],
        "params": dict(DEFAULT_PARAMS),
    }


def test_a_workload_file_runs_with_its_routes_and_physics(tmp_path):
    data = workload()
    path = tmp_path / "w.json"
    path.write_text(json.dumps(data))
    scenario = load_scenario(path)
    assert [n.name for n in scenario.nodes] == data["nodes"]
    assert len(scenario.links) == len(data["links"])
    built = build_network(scenario)
    built.sim.run(until=1)  # the requests arrive at time 0 and are routed
    assert [r.routes[0] for r in built.records] == [r["route"] for r in data["requests"]]
    link = built.links[scenario.links[0].name]
    eta = 0.95 * 10 ** (-0.2 * 15 / 10) * 0.95  # memory, half the fibre, detector (Barrett-Kok: eta^2 / 2)
    assert link.success_probability == pytest.approx(eta**2 / 2, rel=1e-12)
    assert link.heralded_state.fidelity() == pytest.approx(0.99, abs=1e-12)
    assert link.fibre.delay_s == pytest.approx(30e3 / 2e8, rel=1e-9)  # the workload's fibre speed
    report = run_scenario(scenario)
    assert all(r["pairs_delivered"] > 0 for r in report["requests"])
    assert all(r["fidelity"]["max"] <= 0.99 ** r["hops"][0] + 1e-12 for r in report["requests"])


def test_bad_workloads_name_the_field(tmp_path):
    path = tmp_path / "w.json"
    data = workload()
    data["params"]["swap_success_probability"] = 1.5
    data["requests"][0] = {"id": 0}
    path.write_text(json.dumps(data))
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    found = dict(info.value.problems)
    assert "w.json" in str(info.value)
    assert "expected a number > 0 and <= 1, got 1.5" in found["params.swap_success_probability"]
    assert "route" in found["requests[0]"]
    data = workload()
    data["requests"][0]["route"] = [data["requests"][0]["src"], "n999"]
    path.write_text(json.dumps(data))
    with pytest.raises(ScenarioError, match="requests\\[0\\].path"):
        load_scenario(path)
