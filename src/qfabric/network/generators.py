"""Topology generators and topology files: each returns a plain :class:`networkx.Graph`.

Nodes are strings; a node carries ``pos = (x_km, y_km)`` when its position is known; every edge carries
``length_km`` (a float > 0). Random generators are deterministic given ``seed``. :func:`topology` builds the
same nodes and links as plain data (:class:`Topology`) without importing networkx, which loading a scenario
does not need (``waxman`` and files excepted: networkx checks connectivity and reads GML/GraphML).

>>> g = generate("ring", nodes=4, length_km=10.0)
>>> sorted(g.nodes), g.number_of_edges()
(['n0', 'n1', 'n2', 'n3'], 4)
>>> round(positions_length_km(g.nodes["n0"]["pos"], g.nodes["n1"]["pos"]), 9)
10.0
"""

from __future__ import annotations

import inspect
import math
import numbers
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qfabric.errors import ParameterError, QfabricError

if TYPE_CHECKING:
    import networkx as nx

EARTH_RADIUS_KM = 6371.0
LENGTH_ATTRIBUTES = ("length_km", "length", "distance")  # edge attributes read as the length in km, in this order
GML_SUFFIXES = (".gml",)
GRAPHML_SUFFIXES = (".graphml", ".xml")


class TopologyFileError(QfabricError):
    """A topology file cannot be used: ``TopologyFileError("zoo.graphml", "not connected: ...")``."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path, self.problem = str(path), problem
        super().__init__(f"{self.path}: {problem}")


def positions_length_km(a_pos: Sequence[float], b_pos: Sequence[float]) -> float:
    """Euclidean distance between two ``(x_km, y_km)`` positions.

    >>> positions_length_km((0.0, 0.0), (3.0, 4.0))
    5.0
    """
    return math.dist(a_pos, b_pos)


@dataclass
class Topology:
    """A network as plain data: ``nodes`` maps each name to its ``(x_km, y_km)`` or None (in order), ``links``
    lists ``(a, b, length_km)`` in the order they were added. :meth:`to_graph` is the networkx graph.

    >>> t = Topology({"a": (0.0, 0.0), "b": None, "c": None}, [("b", "c", 2.0), ("a", "b", 1.0)])
    >>> t.edges()  # networkx's order: by the first end's position in the nodes
    [('a', 'b', 1.0), ('b', 'c', 2.0)]
    >>> list(t.to_graph().edges(data="length_km")) == t.edges()
    True
    """

    nodes: dict[str, tuple[float, float] | None] = field(default_factory=dict)
    links: list[tuple[str, str, float]] = field(default_factory=list)

    def edges(self) -> list[tuple[str, str, float]]:
        """Every link once, as ``to_graph().edges(data="length_km")`` lists them (a scenario's links take this
        order): node by node, each node's links in the order they were added, unless listed already."""
        neighbours: dict[str, dict[str, float]] = {name: {} for name in self.nodes}
        for a, b, length_km in self.links:
            neighbours[a][b] = neighbours[b][a] = length_km
        done: set[str] = set()
        out = []
        for a, ends in neighbours.items():
            out += [(a, b, length_km) for b, length_km in ends.items() if b not in done]
            done.add(a)
        return out

    def to_graph(self) -> nx.Graph:
        """The :class:`networkx.Graph`: nodes with their ``pos`` (when known), links with their ``length_km``."""
        import networkx as nx

        g = nx.Graph()
        for name, pos in self.nodes.items():
            g.add_node(name, **({} if pos is None else {"pos": pos}))
        for a, b, length_km in self.links:
            g.add_edge(a, b, length_km=length_km)
        return g


# ---------------------------------------------------------------------------------------------------------------
# generators: each public one returns the networkx graph of its builder's Topology


def line(nodes: int, *, length_km: float = 10.0, prefix: str = "n") -> nx.Graph:
    """A chain ``n0 - n1 - ...`` along the x axis, neighbours ``length_km`` apart.

    >>> list(line(3, length_km=5.0).edges(data="length_km"))
    [('n0', 'n1', 5.0), ('n1', 'n2', 5.0)]
    """
    return _line(nodes, length_km=length_km, prefix=prefix).to_graph()


def _line(nodes: int, *, length_km: float = 10.0, prefix: str = "n") -> Topology:
    _count("nodes", nodes, 2)
    length_km = _positive("length_km", length_km)
    _text("prefix", prefix)
    t = Topology()
    for i in range(nodes):
        t.nodes[f"{prefix}{i}"] = (i * length_km, 0.0)
    for i in range(nodes - 1):
        t.links.append((f"{prefix}{i}", f"{prefix}{i + 1}", length_km))
    return t


def ring(nodes: int, *, length_km: float = 10.0, prefix: str = "n") -> nx.Graph:
    """A cycle on a circle whose chord between neighbours is ``length_km`` (``nodes >= 3``).

    >>> g = ring(6, length_km=10.0)
    >>> g.number_of_edges(), g.edges["n5", "n0"]["length_km"], round(g.nodes["n0"]["pos"][0], 9)  # radius = chord
    (6, 10.0, 10.0)
    """
    return _ring(nodes, length_km=length_km, prefix=prefix).to_graph()


def _ring(nodes: int, *, length_km: float = 10.0, prefix: str = "n") -> Topology:
    _count("nodes", nodes, 3)
    length_km = _positive("length_km", length_km)
    _text("prefix", prefix)
    radius_km = length_km / (2.0 * math.sin(math.pi / nodes))
    t = Topology()
    for i in range(nodes):
        angle = 2.0 * math.pi * i / nodes
        t.nodes[f"{prefix}{i}"] = (radius_km * math.cos(angle), radius_km * math.sin(angle))
    for i in range(nodes):
        t.links.append((f"{prefix}{i}", f"{prefix}{(i + 1) % nodes}", length_km))
    return t


def star(leaves: int, *, length_km: float = 10.0, prefix: str = "n", hub: str = "hub") -> nx.Graph:
    """A hub at (0, 0) linked to ``leaves`` nodes ``n0 ..`` on a circle of radius ``length_km``.

    >>> g = star(3, length_km=7.0)
    >>> sorted(g["hub"]), g.nodes["hub"]["pos"], g.edges["hub", "n0"]["length_km"]
    (['n0', 'n1', 'n2'], (0.0, 0.0), 7.0)
    """
    return _star(leaves, length_km=length_km, prefix=prefix, hub=hub).to_graph()


def _star(leaves: int, *, length_km: float = 10.0, prefix: str = "n", hub: str = "hub") -> Topology:
    _count("leaves", leaves, 1)
    length_km = _positive("length_km", length_km)
    _text("prefix", prefix)
    _text("hub", hub)
    names = [f"{prefix}{i}" for i in range(leaves)]
    if hub in names:
        raise ParameterError("hub", hub, f"a name different from the leaves' names {prefix}0 .. {prefix}{leaves - 1}")
    t = Topology({hub: (0.0, 0.0)})
    for i, name in enumerate(names):
        angle = 2.0 * math.pi * i / leaves
        t.nodes[name] = (length_km * math.cos(angle), length_km * math.sin(angle))
        t.links.append((hub, name, length_km))
    return t


def grid(rows: int, cols: int, *, length_km: float = 10.0, prefix: str = "n") -> nx.Graph:
    """A ``rows x cols`` lattice of nodes ``f"{prefix}{r}_{c}"`` at ``(c, r) * length_km``.

    >>> g = grid(2, 3, length_km=4.0)
    >>> g.number_of_nodes(), g.number_of_edges(), g.nodes["n1_2"]["pos"]
    (6, 7, (8.0, 4.0))
    """
    return _grid(rows, cols, length_km=length_km, prefix=prefix).to_graph()


def _grid(rows: int, cols: int, *, length_km: float = 10.0, prefix: str = "n") -> Topology:
    _count("rows", rows, 1)
    _count("cols", cols, 1)
    if rows * cols < 2:
        raise ParameterError("cols", cols, f"at least 2 nodes in all (rows * cols >= 2; rows = {rows})")
    length_km = _positive("length_km", length_km)
    _text("prefix", prefix)
    t = Topology()
    for r in range(rows):
        for c in range(cols):
            t.nodes[f"{prefix}{r}_{c}"] = (c * length_km, r * length_km)
    for r in range(rows):
        for c in range(cols):
            if c + 1 < cols:
                t.links.append((f"{prefix}{r}_{c}", f"{prefix}{r}_{c + 1}", length_km))
            if r + 1 < rows:
                t.links.append((f"{prefix}{r}_{c}", f"{prefix}{r + 1}_{c}", length_km))
    return t


def waxman(
    nodes: int,
    *,
    seed: int,
    size_km: float = 100.0,
    alpha: float = 0.4,
    beta: float = 0.2,
    prefix: str = "n",
    max_tries: int = 1000,
) -> nx.Graph:
    """A connected Waxman graph: nodes uniform in a ``size_km`` square, link probability ``beta exp(-d / (alpha L))``.

    ``L`` is the largest distance between two nodes; each edge's ``length_km`` is its Euclidean length. Draw ``k``
    (0, 1, ...) uses ``numpy.random.default_rng(SeedSequence(seed).spawn(k + 1)[k])``; the first connected draw is
    returned, and :class:`~qfabric.errors.ParameterError` is raised if none of ``max_tries`` draws is connected.

    >>> import networkx as nx
    >>> g = waxman(20, seed=7, alpha=0.5, beta=0.9)
    >>> g.number_of_nodes(), nx.is_connected(g), nx.utils.graphs_equal(g, waxman(20, seed=7, alpha=0.5, beta=0.9))
    (20, True, True)
    """
    return _waxman(nodes, seed=seed, size_km=size_km, alpha=alpha, beta=beta, prefix=prefix,
                   max_tries=max_tries).to_graph()


def _waxman(nodes: int, *, seed: int, size_km: float = 100.0, alpha: float = 0.4, beta: float = 0.2,
            prefix: str = "n", max_tries: int = 1000) -> Topology:
    _count("nodes", nodes, 2)
    seed = _seed(seed)
    size_km = _positive("size_km", size_km)
    alpha = _positive("alpha", alpha)
    beta = _positive("beta", beta)
    if beta > 1.0:
        raise ParameterError("beta", beta, "a probability in (0, 1]")
    _text("prefix", prefix)
    _count("max_tries", max_tries, 1)
    import networkx as nx  # checks each draw's connectivity
    import numpy as np  # here, not at the top: line, ring, star, grid and files need no numpy

    i_idx, j_idx = np.triu_indices(nodes, k=1)
    for attempt in range(max_tries):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(attempt,)))
        xy = rng.uniform(0.0, size_km, size=(nodes, 2))
        d_km = np.hypot(*(xy[i_idx] - xy[j_idx]).T)
        p = beta * np.exp(-d_km / (alpha * d_km.max()))
        keep = (rng.random(d_km.size) < p) & (d_km > 0.0)
        if np.count_nonzero(keep) < nodes - 1:
            continue
        t = Topology({f"{prefix}{k}": (float(xy[k, 0]), float(xy[k, 1])) for k in range(nodes)})
        for i, j, d in zip(i_idx[keep], j_idx[keep], d_km[keep], strict=True):
            t.links.append((f"{prefix}{i}", f"{prefix}{j}", float(d)))
        if nx.is_connected(t.to_graph()):
            return t
    raise ParameterError(
        "beta/alpha",
        (beta, alpha),
        f"values large enough for a connected graph: with nodes = {nodes}, size_km = {size_km}, seed = {seed}, "
        f"none of max_tries = {max_tries} draws was connected, so beta/alpha are too small for a connected graph "
        f"(raise beta towards 1 or alpha)",
    )


def random_connected(nodes: int, edges: int, *, seed: int, length_km: float = 30.0, prefix: str = "n") -> nx.Graph:
    """A random spanning tree plus random extra links, ``edges`` links of ``length_km`` in all (no positions).

    The draws match the benchmark workload generator (``make_randomtopo.py``): with
    ``rng = numpy.random.default_rng(seed)``, node ``i = 1 .. N-1`` links to ``rng.integers(0, i)``; then pairs
    ``rng.integers(0, N, size=2)`` are drawn, skipping ``a == b`` and linked pairs, until there are ``edges`` links.
    Nodes are added in index order and links in drawing order.

    >>> import networkx as nx
    >>> g = random_connected(5, 6, seed=1)
    >>> g.number_of_edges(), nx.is_connected(g), {length for *_, length in g.edges(data="length_km")}
    (6, True, {30.0})
    """
    return _random_connected(nodes, edges, seed=seed, length_km=length_km, prefix=prefix).to_graph()


def _random_connected(nodes: int, edges: int, *, seed: int, length_km: float = 30.0, prefix: str = "n") -> Topology:
    _count("nodes", nodes, 2)
    most = nodes * (nodes - 1) // 2
    if not isinstance(edges, numbers.Integral) or isinstance(edges, bool) or not nodes - 1 <= edges <= most:
        raise ParameterError("edges", edges, f"an integer from N-1 = {nodes - 1} to N(N-1)/2 = {most} (N = {nodes})")
    seed = _seed(seed)
    length_km = _positive("length_km", length_km)
    _text("prefix", prefix)
    import numpy as np

    rng = np.random.default_rng(seed)
    linked: set[tuple[int, int]] = set()
    links: list[tuple[int, int]] = []

    def add(a: int, b: int) -> None:
        pair = (min(a, b), max(a, b))
        linked.add(pair)
        links.append(pair)

    for i in range(1, nodes):
        add(i, int(rng.integers(0, i)))
    while len(links) < edges:
        a, b = (int(x) for x in rng.integers(0, nodes, size=2))
        if a != b and (min(a, b), max(a, b)) not in linked:
            add(a, b)
    return Topology({f"{prefix}{i}": None for i in range(nodes)},
                    [(f"{prefix}{a}", f"{prefix}{b}", length_km) for a, b in links])


GENERATORS: dict[str, Callable[..., nx.Graph]] = {
    "line": line,
    "ring": ring,
    "star": star,
    "grid": grid,
    "waxman": waxman,
    "random": random_connected,
}
_BUILDERS: dict[str, Callable[..., Topology]] = {
    "line": _line,
    "ring": _ring,
    "star": _star,
    "grid": _grid,
    "waxman": _waxman,
    "random": _random_connected,
}


def generate(name: str, **params: Any) -> nx.Graph:
    """Call the generator called ``name`` (a key of :data:`GENERATORS`) with ``params``.

    >>> generate("grid", rows=2, cols=2).number_of_edges()
    4
    >>> generate("tree", nodes=3)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    qfabric.errors.ParameterError: generator = 'tree': expected one of ['grid', 'line', 'random', ...]
    """
    return topology(name, **params).to_graph()


def topology(name: str, **params: Any) -> Topology:
    """What :func:`generate` returns, as plain data (no networkx unless the generator is ``waxman``).

    >>> t = topology("line", nodes=3, length_km=5.0)
    >>> t.nodes, t.edges()
    ({'n0': (0.0, 0.0), 'n1': (5.0, 0.0), 'n2': (10.0, 0.0)}, [('n0', 'n1', 5.0), ('n1', 'n2', 5.0)])
    """
    if name not in GENERATORS:
        raise ParameterError("generator", name, f"one of {sorted(GENERATORS)}")
    accepted = inspect.signature(GENERATORS[name]).parameters
    for key in params:
        if key not in accepted:
            raise ParameterError(key, params[key], f"no such parameter of generator {name!r}: one of {list(accepted)}")
    for key, parameter in accepted.items():
        if parameter.default is inspect.Parameter.empty and key not in params:
            raise ParameterError(key, None, f"a value: generator {name!r} requires {key}")
    return _BUILDERS[name](**params)


# ---------------------------------------------------------------------------------------------------------------
# files


def read_graph(path: str | os.PathLike) -> nx.Graph:
    """Read a GML (``.gml``) or GraphML (``.graphml``, ``.xml``) topology into a connected :class:`networkx.Graph`.

    Node names become strings (GML nodes are named by their ``label``, or their ``id`` if they have none). An edge's
    ``length_km`` is its ``length_km``, ``length`` or ``distance`` attribute (km), else the distance between its nodes'
    positions: node attributes ``x``, ``y`` (km) or ``pos``, giving a Euclidean distance, or ``Latitude``,
    ``Longitude`` (degrees, as in the Internet Topology Zoo), giving a great-circle distance on a sphere of radius
    6371 km; then the node's ``pos`` is an equirectangular projection in km about the nodes' mean latitude, for
    plotting. Directed files are read as undirected; of parallel edges the shortest is kept; self-loops are dropped.
    Other node, edge and graph attributes are kept. Raises :class:`TopologyFileError` naming the file.

    >>> import tempfile, networkx as nx
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     nx.write_gml(nx.Graph([(1, 2, {"length": 12.5})]), f"{tmp}/two.gml")
    ...     list(read_graph(f"{tmp}/two.gml").edges(data="length_km"))
    [('1', '2', 12.5)]
    """
    shown = str(path)
    file = Path(path)
    if not file.exists():
        raise TopologyFileError(shown, "no such file; expected a GML (.gml) or GraphML (.graphml, .xml) topology file")
    if not file.is_file():
        raise TopologyFileError(shown, "not a file; expected a GML (.gml) or GraphML (.graphml, .xml) topology file")
    suffix = file.suffix.lower()
    if suffix not in GML_SUFFIXES + GRAPHML_SUFFIXES:
        raise TopologyFileError(
            shown, f"unknown extension {file.suffix!r}; expected .gml (GML) or .graphml, .xml (GraphML)"
        )
    raw = _read_raw(file, shown, "GML" if suffix in GML_SUFFIXES else "GraphML")
    return _normalise(raw, shown)


def _read_raw(file: Path, shown: str, kind: str) -> nx.Graph:
    import xml.etree.ElementTree as ET

    import networkx as nx

    try:
        if kind == "GraphML":
            return nx.read_graphml(file)
        try:
            return nx.read_gml(file)
        except nx.NetworkXError as err:
            if not re.fullmatch(r"node #\d+ has no 'label' attribute", str(err)):
                raise
            return nx.read_gml(file, label="id")
    except OSError as err:
        raise TopologyFileError(shown, f"cannot read the file: {err.strerror or err}") from err
    except (nx.NetworkXError, ET.ParseError, ValueError, KeyError, TypeError, IndexError, AttributeError) as err:
        raise TopologyFileError(shown, f"not a valid {kind} file ({type(err).__name__}: {err})") from err


def _normalise(raw: nx.Graph, shown: str) -> nx.Graph:
    import networkx as nx

    names: dict[Any, str] = {}
    for node in raw.nodes:
        name = str(node)
        if name in names.values():
            raise TopologyFileError(shown, f"two nodes are both named {name!r} as strings; expected unique node names")
        names[node] = name
    if raw.number_of_nodes() < 2:
        raise TopologyFileError(shown, f"{raw.number_of_nodes()} node(s); expected a network of at least 2 nodes")

    g = nx.Graph(**dict(raw.graph))
    plane: dict[str, tuple[float, float]] = {}
    geo: dict[str, tuple[float, float]] = {}  # name -> (latitude_deg, longitude_deg)
    for node, data in raw.nodes(data=True):
        name = names[node]
        attributes = dict(data)
        where = _node_position(attributes, shown, name)
        if where is not None and where[0] == "plane":
            plane[name] = where[1]
            attributes["pos"] = where[1]
        elif where is not None:
            geo[name] = where[1]
        g.add_node(name, **attributes)
    if geo:
        lat0 = math.radians(sum(lat for lat, _ in geo.values()) / len(geo))
        for name, (lat, lon) in geo.items():
            g.nodes[name]["pos"] = (
                EARTH_RADIUS_KM * math.radians(lon) * math.cos(lat0),
                EARTH_RADIUS_KM * math.radians(lat),
            )

    for u, v, data in raw.edges(data=True):
        a, b = names[u], names[v]
        if a == b:
            continue
        length_km = _edge_length_km(data, a, b, plane, geo, shown)
        if g.has_edge(a, b) and g.edges[a, b]["length_km"] <= length_km:
            continue
        if g.has_edge(a, b):
            g.remove_edge(a, b)
        g.add_edge(a, b, **{**data, "length_km": length_km})

    if g.number_of_edges() == 0:
        raise TopologyFileError(shown, f"{g.number_of_nodes()} nodes and no links; expected a connected network")
    if not nx.is_connected(g):
        parts = sorted(nx.connected_components(g), key=len, reverse=True)
        biggest, small = parts[0], parts[-1]
        raise TopologyFileError(
            shown,
            f"not connected: {len(parts)} components; node {min(small)!r} (in a component of {len(small)} node(s)) "
            f"cannot reach node {min(biggest)!r} (in the largest, of {len(biggest)} nodes); "
            f"expected one connected network",
        )
    return g


def _node_position(data: dict[str, Any], shown: str, name: str) -> tuple[str, tuple[float, float]] | None:
    """``("plane", (x_km, y_km))``, ``("geo", (latitude_deg, longitude_deg))`` or None, from a node's attributes."""
    if "x" in data and "y" in data:
        return "plane", (_number(data["x"], shown, f"node {name!r}: x"), _number(data["y"], shown, f"node {name!r}: y"))
    if "pos" in data:
        value = data["pos"]
        parts = re.findall(r"[-+0-9.eE]+|nan|inf", value) if isinstance(value, str) else value
        if not isinstance(parts, Sequence) or len(parts) != 2:
            raise TopologyFileError(shown, f"node {name!r}: pos = {value!r}; expected two numbers (x_km, y_km)")
        return "plane", tuple(_number(p, shown, f"node {name!r}: pos") for p in parts)
    if "Latitude" in data and "Longitude" in data:
        lat = _number(data["Latitude"], shown, f"node {name!r}: Latitude")
        lon = _number(data["Longitude"], shown, f"node {name!r}: Longitude")
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
            raise TopologyFileError(
                shown, f"node {name!r}: Latitude, Longitude = {lat}, {lon}; expected degrees in [-90, 90], [-180, 180]"
            )
        return "geo", (lat, lon)
    return None


def _edge_length_km(data: dict[str, Any], a: str, b: str, plane: dict, geo: dict, shown: str) -> float:
    for key in LENGTH_ATTRIBUTES:
        if key in data:
            length_km = _number(data[key], shown, f"edge ({a!r}, {b!r}): {key}")
            if length_km <= 0.0:
                raise TopologyFileError(shown, f"edge ({a!r}, {b!r}): {key} = {data[key]!r}; expected a length > 0 km")
            return length_km
    if a in plane and b in plane:
        length_km, how = positions_length_km(plane[a], plane[b]), "positions"
    elif a in geo and b in geo:
        length_km, how = _great_circle_km(geo[a], geo[b]), "Latitude/Longitude"
    else:
        raise TopologyFileError(
            shown,
            f"edge ({a!r}, {b!r}) has no length: expected an edge attribute {' or '.join(LENGTH_ATTRIBUTES)} (km), "
            f"or positions of both nodes (x and y, pos, or Latitude and Longitude)",
        )
    if length_km <= 0.0:
        raise TopologyFileError(
            shown, f"edge ({a!r}, {b!r}): its nodes have the same {how}, so its length would be 0; give it a length_km"
        )
    return length_km


def _great_circle_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Haversine distance between two (latitude_deg, longitude_deg) points on a sphere of radius 6371 km."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2.0 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def _number(value: Any, shown: str, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or isinstance(value, bool):
        raise TopologyFileError(shown, f"{what} = {value!r}; expected a finite number")
    return number


# ---------------------------------------------------------------------------------------------------------------
# parameter checks


def _count(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ParameterError(name, value, f"an integer >= {minimum}")


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and value > 0):
        raise ParameterError(name, value, "a finite number > 0")
    return float(value)


def _seed(value: Any) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 0:
        raise ParameterError("seed", value, "an integer >= 0")
    return int(value)


def _text(name: str, value: Any) -> None:
    if not isinstance(value, str):
        raise ParameterError(name, value, "a string")
