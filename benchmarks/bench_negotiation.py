"""The controller's admission and routing decision per request on the 512-node random network.

    python benchmarks/bench_negotiation.py [--requests 50] [--paths 3] [--heterogeneous] [--profile]

Network: ``random_connected(512, 640, seed=1, length_km=30)`` (the benchmark workload's construction, as
``scenarios/random-128.yaml`` with 512 nodes and 640 links) with that scenario's hardware: Barrett-Kok links of
30 km, two memory qubits per link end, T2 = 5 ms, Werner pairs of F = 0.99, swaps that succeed half the time.
Requests: random end nodes 2 to 5 hops apart, each with a fidelity floor (0.55, 0.65 or 0.75) and no rate target.
With ``--heterogeneous`` every link gets a random length (20-40 km), so no two paths share facts and every
prediction is computed afresh.

Per request the controller computes the 3 shortest paths (``control.routing.compute_routes``), reads the facts of
each path off the network (``facts_from_network``) and negotiates a plan over paths, purification rounds and
cut-offs (``negotiate``). Times are wall milliseconds per request, median and 95th percentile: first call
(prediction caches empty at the start; requests after the first reuse what earlier ones cached, as a running
controller would) and cached (the same requests again). Goal: under 1 ms per request.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import statistics
import time
from pathlib import Path

import networkx as nx
import yaml

from qfabric.control import negotiation
from qfabric.control.negotiation import MAX_LINKS, facts_from_network, negotiate
from qfabric.control.routing import compute_routes
from qfabric.network.generators import random_connected
from qfabric.scenario import parse_scenario
from qfabric.scenario.build import build_network

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "random-128.yaml"
FLOORS = (0.55, 0.65, 0.75)


def build(nodes: int = 512, edges: int = 640, heterogeneous: bool = False):
    """The network: random-128.yaml's hardware and generator with ``nodes`` and ``edges``; ``heterogeneous``: every
    link a random length from 20 to 40 km instead of 30 km (no two paths share their facts: nothing is cached)."""
    data = yaml.safe_load(SCENARIO.read_text())
    data["topology"].update(nodes=nodes, edges=edges)
    if heterogeneous:
        rng = random.Random(11)
        graph = random_connected(nodes, edges, seed=data["topology"]["seed"], length_km=30)
        data["links"] = [{"between": [a, b], "length_km": round(rng.uniform(20, 40), 3), **data["topology"]["link"]}
                         for a, b in graph.edges]
    data["requests"] = [{"name": "probe", "from": "n0", "to": "n1"}]
    data["name"] = f"random-{nodes}"
    return build_network(parse_scenario(data))


def requests(graph: nx.Graph, count: int, seed: int = 7) -> list[tuple[str, str, float]]:
    rng = random.Random(seed)
    nodes = sorted(graph.nodes, key=lambda x: int(x[1:]))
    out = []
    while len(out) < count:
        a, b = rng.sample(nodes, 2)
        if 2 <= nx.shortest_path_length(graph, a, b) <= 5:
            out.append((a, b, rng.choice(FLOORS)))
    return out


def decide(built, source: str, target: str, floor: float, name: str, k: int = 3) -> tuple[float, float, float, object]:
    """One request: (routing s, facts s, negotiation s, offer)."""
    t0 = time.perf_counter()
    routes = compute_routes(built.graph, [(name, source, target)], "hops", k)[name]
    t1 = time.perf_counter()
    candidates = [(*facts_from_network(built.network, route), tuple(route)) for route in routes
                  if len(route) - 1 <= MAX_LINKS]  # longer paths are beyond the controller's model
    t2 = time.perf_counter()
    offer = negotiate(candidates, fidelity_min=floor)
    t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2, offer


def clear_caches() -> None:
    negotiation._CACHE.clear()
    negotiation._BOUNDS.clear()
    negotiation._FACTS.clear()
    negotiation._effective.cache_clear()
    negotiation._structure.cache_clear()
    negotiation._live.cache_clear()


def summary(label: str, rows: list[tuple[float, float, float, object]]) -> None:
    def ms(values):
        values = sorted(v * 1e3 for v in values)
        p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
        return f"{statistics.median(values):8.3f} {p95:8.3f}"

    print(f"{label:12s} {'routing':>17s} {'facts':>17s} {'negotiate':>17s} {'admission':>17s} {'total':>17s}")
    print(f"{'':12s} " + " ".join(f"{'median':>8s} {'p95':>8s}" for _ in range(5)))
    print(f"{'ms/request':12s} {ms([r[0] for r in rows])} {ms([r[1] for r in rows])} {ms([r[2] for r in rows])} "
          f"{ms([r[1] + r[2] for r in rows])} {ms([r[0] + r[1] + r[2] for r in rows])}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--nodes", type=int, default=512)
    ap.add_argument("--edges", type=int, default=640)
    ap.add_argument("--paths", type=int, default=3, help="candidate paths per request (k shortest)")
    ap.add_argument("--heterogeneous", action="store_true", help="random link lengths (20-40 km): no cache hits")
    ap.add_argument("--profile", action="store_true", help="profile the first pass and print the top functions")
    args = ap.parse_args()

    t0 = time.perf_counter()
    built = build(args.nodes, args.edges, args.heterogeneous)
    demands = requests(built.graph, args.requests)
    print(f"network: {built.graph.number_of_nodes()} nodes, {built.graph.number_of_edges()} links "
          f"(built in {time.perf_counter() - t0:.2f} s); {len(demands)} requests 2-5 hops apart")

    clear_caches()
    profiler = cProfile.Profile() if args.profile else None
    if profiler:
        profiler.enable()
    first = [decide(built, a, b, f, f"r{i}", args.paths) for i, (a, b, f) in enumerate(demands)]
    if profiler:
        profiler.disable()
    cached = [decide(built, a, b, f, f"r{i}", args.paths) for i, (a, b, f) in enumerate(demands)]

    print()
    summary("first call", first)
    summary("cached", cached)
    admitted = sum(r[3].admit for r in first)
    print(f"\n{admitted}/{len(first)} admitted; predictions cached: {len(negotiation._CACHE)}")
    for (a, b, f), row in list(zip(demands, first, strict=True))[:5]:
        offer = row[3]
        print(f"  {a} -> {b}, fidelity >= {f}: {offer.reason}")
    if profiler:
        print()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(18)


if __name__ == "__main__":
    main()
