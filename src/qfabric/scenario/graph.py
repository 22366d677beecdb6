"""A scenario's network as the layers below see it: generated or imported topology, hardware, link models,
memory per link end, and the graph routing runs on.

Loading a scenario imports no networkx (its import was 30 % of ``qfabric validate``'s time, ``bench_cli.py``):
generated topologies come as plain data (:func:`~qfabric.network.generators.topology`) and validation routes on
:func:`routing_adjacency`; topology files, ``waxman`` draws and the run (:func:`routing_graph`) use networkx.

>>> from qfabric.scenario.schema import Scenario
>>> sc = Scenario.model_validate({"name": "ring", "duration_s": 1, "requests": [{"name": "r", "from": "n0",
...     "to": "n2"}], "topology": {"generator": "ring", "nodes": 4, "spacing_km": 5}})
>>> sc = expand_topology(sc)
>>> [n.name for n in sc.nodes], [l.name for l in sc.links][:2], sc.links[0].length_km
(['n0', 'n1', 'n2', 'n3'], ['n0-n1', 'n0-n3'], 5.0)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qfabric.errors import ParameterError, ScenarioError
from qfabric.hardware import PROFILES, HardwareProfile
from qfabric.link import HeraldedLink
from qfabric.network.generators import TopologyFileError, positions_length_km, read_graph, topology
from qfabric.scenario.schema import LinkSpec, NodeSpec, Scenario, TopologySpec

if TYPE_CHECKING:
    import networkx as nx


def resolve_profiles(scenario: Scenario) -> dict[str, HardwareProfile]:
    """Built-in profiles plus the scenario's custom ones (each may start from an earlier one)."""
    profiles = dict(PROFILES)
    for name, spec in scenario.hardware.items():
        base = profiles[spec.base] if spec.base else HardwareProfile(name=name)
        profiles[name] = base.with_overrides({**spec.overrides(), "name": name})
    return profiles


def link_profile(profiles: dict[str, HardwareProfile], spec: LinkSpec) -> HardwareProfile:
    """The hardware of one link: its profile with the link's own overrides."""
    profile = profiles[spec.profile]
    return profile.with_overrides(spec.hardware.overrides()) if spec.hardware is not None else profile


def heralded_link(spec: LinkSpec, profile: HardwareProfile) -> HeraldedLink:
    return HeraldedLink(spec.length_km, profile, spec.scheme, spec.attenuation_db_per_km, spec.herald_latency_s,
                        spec.refractive_index)


def _nodes_and_links(spec: TopologySpec, seed: int, base_dir: Path | None
                     ) -> tuple[list[tuple[str, Any]], list[tuple[str, str, float]]]:
    """The ``(name, position_km or None)`` nodes and ``(a, b, length_km)`` links of a topology section."""
    if spec.file is not None:  # read with networkx
        path = Path(spec.file)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        graph = read_graph(path)
        return list(graph.nodes(data="pos")), list(graph.edges(data="length_km"))
    params = {"seed": spec.seed if spec.seed is not None else seed} if spec.generator in ("waxman", "random") else {}
    for field, name in (("nodes", "nodes"), ("edges", "edges"), ("rows", "rows"), ("cols", "cols"),
                        ("size_km", "size_km"), ("alpha", "alpha"), ("beta", "beta"), ("spacing_km", "length_km")):
        value = getattr(spec, field)
        if value is not None:
            params[name] = value
    if spec.generator == "star" and "nodes" in params:
        params["leaves"] = params.pop("nodes")
    params["prefix"] = spec.prefix
    made = topology(spec.generator, **params)
    return list(made.nodes.items()), made.edges()


def expand_topology(scenario: Scenario, base_dir: Path | None = None, path: str = "<scenario>") -> Scenario:
    """The scenario with its ``topology`` turned into nodes and links (explicit ones win), every link named
    and every link's length known (from its nodes' positions when not given)."""
    nodes: dict[str, NodeSpec] = {}
    links: list[LinkSpec] = []
    if scenario.topology is not None:
        try:
            topology_nodes, topology_links = _nodes_and_links(scenario.topology, scenario.seed, base_dir)
        except TopologyFileError as err:
            raise ScenarioError(path, [("topology.file", str(err))]) from None
        except ParameterError as err:
            raise ScenarioError(path, [(f"topology.{err.name}" if err.name != "generator" else "topology.generator",
                                        str(err))]) from None
        defaults = scenario.topology.link.model_dump(exclude_none=True)
        for name, pos in topology_nodes:
            nodes[str(name)] = NodeSpec(name=str(name), position_km=tuple(pos) if pos is not None else None)
        for a, b, length_km in topology_links:
            fields = {"length_km": length_km, **defaults}
            links.append(LinkSpec(name=f"{a}-{b}", between=(str(a), str(b)), **fields))
    for node in scenario.nodes:
        nodes[node.name] = node
    explicit = {frozenset(link.between) for link in scenario.links}
    links = [link for link in links if frozenset(link.between) not in explicit] + list(scenario.links)
    named = []
    problems = []
    for i, link in enumerate(links):
        update = {}
        if link.name is None:
            update["name"] = f"{link.between[0]}-{link.between[1]}"
        if link.length_km is None:
            ends = [nodes.get(n) for n in link.between]
            if all(e is not None and e.position_km is not None for e in ends):
                length = positions_length_km(ends[0].position_km, ends[1].position_km)
                if length > 0:
                    update["length_km"] = length
                else:
                    problems.append((f"links[{i}].length_km", "the two nodes share a position: give length_km"))
            else:
                problems.append((f"links[{i}].length_km", "required: give length_km or both nodes' position_km"))
        named.append(link.model_copy(update=update) if update else link)
    if problems and scenario.topology is None:
        raise ScenarioError(path, problems)
    if problems:
        raise ScenarioError(path, [("topology", msg) for _, msg in problems])
    return scenario.model_copy(update={"nodes": list(nodes.values()), "links": named, "topology": None})


def side_capacities(scenario: Scenario, profiles: dict[str, HardwareProfile]) -> dict[tuple[str, str], int]:
    """Memory qubits each node devotes to each of its links, by (node, link name).

    A node's ``memory_split`` names links explicitly; its ``memory_qubits`` is split evenly over its other
    links (the remainder to the links listed first); otherwise each link's profile capacity.

    >>> from qfabric.scenario.schema import Scenario
    >>> sc = expand_topology(Scenario.model_validate({"name": "s", "duration_s": 1,
    ...     "nodes": [{"name": "h", "memory_qubits": 5}, {"name": "a"}, {"name": "b"}],
    ...     "links": [{"between": ["h", "a"], "length_km": 1}, {"between": ["h", "b"], "length_km": 1}]}))
    >>> side_capacities(sc, resolve_profiles(sc))[("h", "h-a")], side_capacities(sc, resolve_profiles(sc))[("h", "h-b")]
    (3, 2)
    """
    out: dict[tuple[str, str], int] = {}
    incident: dict[str, list[LinkSpec]] = {}
    for link in scenario.links:
        capacity = link_profile(profiles, link).memory.capacity
        for node in link.between:
            out[(node, link.name)] = capacity
            incident.setdefault(node, []).append(link)
    for node in scenario.nodes:
        mine = incident.get(node.name, [])
        split = dict(node.memory_split or {})
        rest = [link for link in mine if link.name not in split]
        if node.memory_qubits is not None:
            left = node.memory_qubits - sum(split.values())
            base, extra = divmod(max(left, 0), len(rest)) if rest else (0, 0)
            for i, link in enumerate(rest):
                out[(node.name, link.name)] = base + (1 if i < extra else 0)
        for name, qubits in split.items():
            out[(node.name, name)] = qubits
    return out


def routing_links(scenario: Scenario, links: dict[str, HeraldedLink]) -> list[tuple[str, str, dict[str, Any]]]:
    """What routing knows of each link, in file order: ``(a, b, attributes)`` with its ``name``, ``length_km``,
    ``expected_time_s`` (mean time to one heralded pair on one memory pair) and ``werner`` (of the heralded pair)."""
    out = []
    for spec in scenario.links:
        link = links[spec.name]
        p = link.success_probability
        expected = (1 / p - 1) * link.attempt_period_s + link.herald_delay_s if p > 0 else math.inf
        out.append((*spec.between, {"name": spec.name, "length_km": spec.length_km, "expected_time_s": expected,
                                    "werner": link.heralded_state.werner_parameter}))
    return out


def routing_graph(scenario: Scenario, links: dict[str, HeraldedLink]) -> nx.Graph:
    """The graph the run routes on (a :class:`networkx.Graph`, which the control plane edits as links fail):
    nodes in file order, each link with its :func:`routing_links` attributes."""
    import networkx as nx

    graph = nx.Graph()
    graph.add_nodes_from(node.name for node in scenario.nodes)
    graph.add_edges_from(routing_links(scenario, links))
    return graph


def routing_adjacency(scenario: Scenario, links: dict[str, HeraldedLink]) -> dict[str, dict[str, dict[str, Any]]]:
    """The same graph as :func:`routing_graph` (nodes, neighbours and attributes in the same order) as the plain
    adjacency mapping :mod:`qfabric.control.routing` reads, without networkx: what validation routes on.

    >>> from qfabric.scenario.schema import Scenario
    >>> sc = expand_topology(Scenario.model_validate({"name": "s", "duration_s": 1, "requests": [{"name": "r",
    ...     "from": "n0", "to": "n2"}], "topology": {"generator": "line", "nodes": 3, "spacing_km": 5}}))
    >>> profiles = resolve_profiles(sc)
    >>> adjacency = routing_adjacency(sc, {s.name: heralded_link(s, link_profile(profiles, s)) for s in sc.links})
    >>> list(adjacency["n1"]), adjacency["n1"]["n2"]["name"], adjacency["n1"]["n2"]["length_km"]
    (['n0', 'n2'], 'n1-n2', 5.0)
    """
    adjacency: dict[str, dict[str, dict[str, Any]]] = {node.name: {} for node in scenario.nodes}
    for a, b, attributes in routing_links(scenario, links):
        adjacency[a][b] = adjacency[b][a] = attributes
    return adjacency
