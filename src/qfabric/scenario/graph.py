"""A scenario's network as the layers below see it: generated or imported topology, hardware, link models,
memory per link end, and the graph routing runs on.

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
from typing import TYPE_CHECKING

from qfabric.errors import ParameterError, ScenarioError
from qfabric.hardware import PROFILES, HardwareProfile
from qfabric.link import HeraldedLink
from qfabric.scenario.schema import LinkSpec, NodeSpec, Scenario, TopologySpec

if TYPE_CHECKING:  # networkx and the generators (numpy) are imported where a graph is made: validating a scenario
    import networkx as nx  # without a topology section needs neither until it routes its requests


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


def _graph_of(topology: TopologySpec, seed: int, base_dir: Path | None) -> nx.Graph:
    from qfabric.network.generators import generate, read_graph

    if topology.file is not None:
        path = Path(topology.file)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        return read_graph(path)
    params = {"seed": topology.seed if topology.seed is not None else seed} \
        if topology.generator in ("waxman", "random") else {}
    for field, name in (("nodes", "nodes"), ("edges", "edges"), ("rows", "rows"), ("cols", "cols"),
                        ("size_km", "size_km"), ("alpha", "alpha"), ("beta", "beta"), ("spacing_km", "length_km")):
        value = getattr(topology, field)
        if value is not None:
            params[name] = value
    if topology.generator == "star" and "nodes" in params:
        params["leaves"] = params.pop("nodes")
    params["prefix"] = topology.prefix
    return generate(topology.generator, **params)


def expand_topology(scenario: Scenario, base_dir: Path | None = None, path: str = "<scenario>") -> Scenario:
    """The scenario with its ``topology`` turned into nodes and links (explicit ones win), every link named
    and every link's length known (from its nodes' positions when not given)."""
    nodes: dict[str, NodeSpec] = {}
    links: list[LinkSpec] = []
    if scenario.topology is not None:
        from qfabric.network.generators import TopologyFileError

        try:
            graph = _graph_of(scenario.topology, scenario.seed, base_dir)
        except TopologyFileError as err:
            raise ScenarioError(path, [("topology.file", str(err))]) from None
        except ParameterError as err:
            raise ScenarioError(path, [(f"topology.{err.name}" if err.name != "generator" else "topology.generator",
                                        str(err))]) from None
        defaults = scenario.topology.link.model_dump(exclude_none=True)
        for name, data in graph.nodes(data=True):
            pos = data.get("pos")
            nodes[str(name)] = NodeSpec(name=str(name), position_km=tuple(pos) if pos is not None else None)
        for a, b, data in graph.edges(data=True):
            fields = {"length_km": data["length_km"], **defaults}
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
                from qfabric.network.generators import positions_length_km

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


def routing_graph(scenario: Scenario, links: dict[str, HeraldedLink]) -> nx.Graph:
    """The graph routing runs on: nodes in file order; per link its name, ``length_km``, ``expected_time_s``
    (mean time to one heralded pair on one memory pair) and ``werner`` (of the heralded pair)."""
    import networkx as nx

    graph = nx.Graph()
    graph.add_nodes_from(node.name for node in scenario.nodes)
    for spec in scenario.links:
        link = links[spec.name]
        p = link.success_probability
        expected = (1 / p - 1) * link.attempt_period_s + link.herald_delay_s if p > 0 else math.inf
        graph.add_edge(*spec.between, name=spec.name, length_km=spec.length_km, expected_time_s=expected,
                       werner=link.heralded_state.werner_parameter)
    return graph
