"""Validating a scenario routes its requests without networkx (its import was about 30 % of `qfabric validate`'s
time, benchmarks/bench_cli.py), and the routes it checks are the ones the run takes."""

import json
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest
import yaml

from qfabric.control.routing import compute_routes
from qfabric.network.generators import topology
from qfabric.scenario import load_scenario
from qfabric.scenario.graph import heralded_link, link_profile, resolve_profiles, routing_adjacency, routing_graph

SCENARIOS = sorted((Path(__file__).resolve().parents[2] / "scenarios").glob("*.yaml"))

# Loads each file in this (fresh) interpreter, in order, and prints which of networkx and numpy were loaded after it.
PROBE = """
import json, sys
from qfabric.network.generators import topology
from qfabric.scenario import load_scenario

loaded = {}
for path in sys.argv[1:]:
    load_scenario(path)
    loaded[path] = sorted(name for name in ("networkx", "numpy") if name in sys.modules)
print(json.dumps(loaded))
"""


def generator(path: Path) -> str | None:
    return (yaml.safe_load(path.read_text()).get("topology") or {}).get("generator")


def test_validation_imports_no_networkx(write_scenario, small_data):
    explicit = [path for path in SCENARIOS if generator(path) is None]
    assert len(explicit) >= 8, "scenarios/ ships the scenarios this test is about"
    grid = write_scenario({**{k: v for k, v in small_data.items() if k not in ("nodes", "links", "chain")},
                           "topology": {"generator": "grid", "rows": 3, "cols": 3, "spacing_km": 10},
                           "requests": [{"name": "x", "from": "n0_0", "to": "n2_2"}]}, "grid.yaml")
    drawn = [path for path in SCENARIOS if generator(path) == "random"]  # last: numpy draws the topology
    paths = [str(p) for p in [*explicit, grid, *drawn]]
    result = subprocess.run([sys.executable, "-c", PROBE, *paths], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = json.loads(result.stdout)
    assert loaded == {path: ["numpy"] if Path(path) in drawn else [] for path in paths}


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_validation_checks_the_routes_the_run_takes(path):
    # load.py routes on routing_adjacency, build.py on routing_graph: the same graph, so the same routes under
    # every metric, and k = 3 to exercise Yen's spur searches
    scenario = load_scenario(path)
    profiles = resolve_profiles(scenario)
    heralded = {spec.name: heralded_link(spec, link_profile(profiles, spec)) for spec in scenario.links}
    graph, plain = routing_graph(scenario, heralded), routing_adjacency(scenario, heralded)
    assert plain == nx.to_dict_of_dicts(graph) and [list(ends) for ends in plain.values()] == [
        list(graph.adj[node]) for node in graph]
    demands = [(r.name, r.source, r.target) for r in scenario.all_requests()]
    for metric in ("hops", "length", "expected-time", "fidelity"):
        assert compute_routes(plain, demands, metric, 3) == compute_routes(graph, demands, metric, 3)


@pytest.mark.parametrize(("name", "params"), [
    ("line", {"nodes": 4}), ("ring", {"nodes": 5}), ("star", {"leaves": 4, "hub": "z"}),
    ("grid", {"rows": 3, "cols": 4}),
    ("random", {"nodes": 128, "edges": 160, "seed": 1}), ("random", {"nodes": 30, "edges": 60, "seed": 4}),
    ("waxman", {"nodes": 20, "seed": 7, "alpha": 0.5, "beta": 0.9}),
])
def test_a_generated_topology_lists_its_nodes_and_links_in_networkx_order(name, params):
    # a scenario's links are named and ordered by what Topology.edges lists: networkx's order for the same graph
    made = topology(name, **params)
    graph = made.to_graph()
    assert list(made.nodes.items()) == list(graph.nodes(data="pos"))
    assert made.edges() == list(graph.edges(data="length_km"))
    assert len(made.edges()) == len(made.links) == graph.number_of_edges()
