"""A scenario skeleton to edit, written from a generated or imported graph (``qfabric topology``).

>>> from qfabric.network.generators import generate
>>> data = skeleton(generate("line", nodes=4, length_km=12), name="line-4", seed=1)
>>> [l["between"] for l in data["links"]], [(r["from"], r["to"]) for r in data["requests"]]
([['n0', 'n1'], ['n1', 'n2'], ['n2', 'n3']], [('n0', 'n2'), ('n1', 'n3')])
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import yaml


def example_requests(graph: nx.Graph, count: int, seed: int, *, min_hops: int = 2, max_hops: int = 5) -> list:
    """``count`` requests between distinct node pairs ``min_hops..max_hops`` apart (or the farthest pair when
    none is), drawn reproducibly from ``seed``."""
    nodes = list(graph.nodes)
    rng = np.random.default_rng(seed)
    hops = dict(nx.all_pairs_shortest_path_length(graph, cutoff=max_hops)) if len(nodes) <= 2000 else {}
    candidates = [(a, b) for i, a in enumerate(nodes) for b in nodes[i + 1:]
                  if min_hops <= hops.get(a, {}).get(b, -1) <= max_hops]
    if not candidates:
        a = nodes[0]
        far = nx.single_source_shortest_path_length(graph, a)
        candidates = [(a, max(far, key=lambda n: (far[n], -nodes.index(n))))]
    picked, ends = [], set()
    for i in rng.permutation(len(candidates)):
        a, b = candidates[int(i)]
        if a in ends or b in ends:
            continue
        picked.append((a, b))
        ends.update((a, b))
        if len(picked) == count:
            break
    return picked


def skeleton(graph: nx.Graph, *, name: str, seed: int = 0, duration_s: float = 1.0, profile: str = "near-term",
             scheme: str = "double-click", requests: int | None = None, cutoff_s: float = 0.05,
             description: str = "") -> dict:
    """Scenario data: the graph's nodes (with positions) and links (with lengths) spelled out, example requests,
    routing and multiplexing, ready to write as YAML and edit."""
    count = requests if requests is not None else max(2, graph.number_of_nodes() // 10)
    nodes = []
    for node, data in graph.nodes(data=True):
        entry = {"name": str(node)}
        if data.get("pos") is not None:
            entry["position_km"] = [round(float(x), 3) for x in data["pos"]]
        nodes.append(entry)
    links = [{"name": f"{a}-{b}", "between": [str(a), str(b)], "length_km": round(float(d["length_km"]), 3),
              "profile": profile, "scheme": scheme} for a, b, d in graph.edges(data=True)]
    pairs = example_requests(graph, count, seed)
    return {
        "name": name,
        "description": description or f"{graph.number_of_nodes()} nodes, {graph.number_of_edges()} links",
        "seed": seed,
        "duration_s": duration_s,
        "nodes": nodes,
        "links": links,
        "requests": [{"name": f"r{i}", "from": str(a), "to": str(b), "cutoff_s": cutoff_s}
                     for i, (a, b) in enumerate(pairs)],
        "routing": {"metric": "hops", "paths": 1},
        "multiplexing": {"mode": "statistical", "qubit_selection": "oldest"},
    }


def to_yaml(data: dict, header: str = "") -> str:
    """YAML with one node, link or request per line.

    >>> print(to_yaml({"name": "x", "nodes": [{"name": "a"}, {"name": "b"}]}, "a comment"), end="")
    # a comment
    name: x
    nodes:
      - {name: a}
      - {name: b}
    """
    lines = [f"# {line}" for line in header.splitlines()]
    for key, value in data.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            lines.append(f"{key}:")
            lines += [f"  - {_flow(item)}" for item in value]
        elif isinstance(value, dict | list):
            lines.append(f"{key}: {_flow(value)}")
        else:
            lines.append(yaml.safe_dump({key: value}, default_flow_style=False, width=10**6).rstrip())
    return "\n".join(lines) + "\n"


def _flow(item: dict | list) -> str:
    return yaml.safe_dump(item, sort_keys=False, default_flow_style=True, width=10**6).strip()
