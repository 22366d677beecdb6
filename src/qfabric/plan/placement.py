"""Repeater placement: which candidate sites get a repeater, and how many memory qubits, so that every demand is met
at the least cost; then the chosen design is simulated to check it.

The method (after Rabbie et al., "Designing quantum networks using preexisting infrastructure", npj Quantum Inf.
8, 5 (2022), with the controller's own predictions in place of their fixed link-length bounds):

1. **Stations** are the demands' ends and the candidate sites (GraphML/GML node attribute ``candidate``; default:
   every node that is not a demand end). Two stations can be joined by an elementary link if the shortest fibre
   route between them is at most ``max_link_km``; that link runs over that route.
2. **Routes.** For each demand, the ``routes_per_demand`` shortest station paths of at most
   :data:`~qfabric.control.negotiation.MAX_LINKS` links are candidates. Each is judged by the controller's
   negotiation (:func:`~qfabric.control.negotiation.negotiate`: exact swap-asap chain with cut-offs and
   purification, from the same link and node models the event engine runs), with ``memories`` qubits per link end
   for the demand, against its fidelity floor and its rate target times ``1 + rate_margin`` (predicted rates are
   within about 8 % of the engine's). Routes that meet both are feasible.
3. **An integer program** (``scipy.optimize.milp``, HiGHS) chooses one feasible route per demand: binary
   variables for sites, elementary links and routes; a route needs its sites and links; a site holds at most
   ``max_site_qubits`` (``2 x memories`` per demand through it); the objective is the cost of ownership over the
   lifetime (:mod:`qfabric.plan.costs`): sites, their qubits, links (heralding stations, sources), fibre lease,
   control plane and running costs; the capital cost must fit the budget.
4. **Verification**: :func:`verify` writes the design as a scenario (stations, links of the routes' fibre
   lengths, each demand a request on its route with the negotiated cut-off and purification, memories split per
   link so that each demand has its own) and runs it on the event engine.

When the budget is too small the cheapest design that meets the demands is reported with its cost; when a demand
has no feasible route the result names it and says why (the best offer found).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx
import numpy as np
import yaml

from qfabric.control.negotiation import MAX_LINKS, Offer, facts_from_network, negotiate
from qfabric.errors import QfabricError
from qfabric.network.generators import read_graph
from qfabric.plan.costs import CostOfOwnership, PriceTable, bbm92_bits_per_pair, cost_of_ownership


@dataclass(frozen=True)
class Demand:
    """Pairs between two sites: at least ``rate_hz`` pairs/s, each of fidelity at least ``fidelity_min``."""

    name: str
    source: str
    target: str
    rate_hz: float
    fidelity_min: float

    def __post_init__(self) -> None:
        if self.source == self.target:
            raise QfabricError(f"demand {self.name!r}: its two ends are the same site {self.source!r}")
        if not (self.rate_hz > 0 and math.isfinite(self.rate_hz)):
            raise QfabricError(f"demand {self.name!r}: rate_hz = {self.rate_hz!r}: expected pairs/s > 0")
        if not 0.5 < self.fidelity_min <= 1:
            raise QfabricError(f"demand {self.name!r}: fidelity_min = {self.fidelity_min!r}: expected a fidelity in "
                               "(0.5, 1]")


def load_demands(path: str | Path) -> list[Demand]:
    """``demands.yaml``: a list of ``{name, from, to, rate_hz, fidelity_min}`` (or ``{demands: [...]}``)."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise QfabricError(f"{path}: cannot read demands ({err})") from None
    rows = data.get("demands") if isinstance(data, dict) else data
    if not isinstance(rows, list) or not rows:
        raise QfabricError(f"{path}: expected a list of demands {{name, from, to, rate_hz, fidelity_min}}")
    out = []
    for i, row in enumerate(rows):
        need = ("from", "to", "rate_hz", "fidelity_min")
        if not isinstance(row, dict) or any(k not in row for k in need):
            raise QfabricError(f"{path}: demands[{i}]: expected fields name, from, to, rate_hz, fidelity_min")
        try:
            out.append(Demand(str(row.get("name", f"demand-{i}")), str(row["from"]), str(row["to"]),
                              float(row["rate_hz"]), float(row["fidelity_min"])))
        except (TypeError, ValueError):
            raise QfabricError(f"{path}: demands[{i}]: rate_hz and fidelity_min must be numbers") from None
        except QfabricError as err:
            raise QfabricError(f"{path}: demands[{i}]: {err}") from None
    names = [d.name for d in out]
    if len(set(names)) != len(names):
        raise QfabricError(f"{path}: demand names must differ: {names}")
    return out


@dataclass(frozen=True)
class Route:
    """A way to serve a demand: its stations, each elementary link's fibre route and length, and the plan."""

    demand: str
    stations: tuple[str, ...]
    lengths_km: tuple[float, ...]
    fibre: tuple[tuple[str, ...], ...]  # each elementary link's fibre path through the map
    offer: Offer

    @property
    def repeaters(self) -> tuple[str, ...]:
        return self.stations[1:-1]

    @property
    def links(self) -> tuple[tuple[str, str], ...]:
        return tuple(tuple(sorted(pair)) for pair in zip(self.stations, self.stations[1:], strict=False))


@dataclass
class Placement:
    """The result: a design (sites with qubits, a route per demand) and its costs, or why there is none."""

    feasible: bool
    reason: str
    sites: dict[str, int] = field(default_factory=dict)  # repeater site -> memory qubits
    routes: dict[str, Route] = field(default_factory=dict)
    links: dict[tuple[str, str], float] = field(default_factory=dict)  # elementary link -> fibre km
    cost: CostOfOwnership | None = None
    within_budget: bool = False
    unmet: dict[str, str] = field(default_factory=dict)  # demand -> why no route meets it
    routes_considered: int = 0

    def summary(self) -> dict:
        return {
            "feasible": self.feasible, "within_budget": self.within_budget, "reason": self.reason,
            "sites": self.sites, "unmet": self.unmet, "routes_considered": self.routes_considered,
            "links": [{"between": list(k), "length_km": v} for k, v in self.links.items()],
            "routes": {name: {"stations": list(r.stations), "lengths_km": list(r.lengths_km),
                              "plan": r.offer.plan.describe() if r.offer.plan else None,
                              "predicted_rate_hz": r.offer.prediction.rate_hz if r.offer.prediction else None,
                              "predicted_fidelity": r.offer.prediction.fidelity if r.offer.prediction else None}
                       for name, r in self.routes.items()},
            "cost": self.cost.as_dict() if self.cost else None,
        }


def fibre_map(path: str | Path, demands: list[Demand]) -> nx.Graph:
    """The fibre map (GML/GraphML, edge ``length_km``), checked to hold every demanded site."""
    graph = read_graph(path)
    missing = sorted({s for d in demands for s in (d.source, d.target)} - set(graph.nodes))
    if missing:
        raise QfabricError(f"{path}: the fibre map has no site {', '.join(map(repr, missing))} "
                           f"(demanded; the map has {graph.number_of_nodes()} sites)")
    return graph


def _candidates(graph: nx.Graph, demands: list[Demand]) -> set[str]:
    ends = {s for d in demands for s in (d.source, d.target)}
    marked = {n for n, flag in graph.nodes(data="candidate") if flag is not None}
    if marked:
        return {n for n, flag in graph.nodes(data="candidate") if str(flag).lower() in ("true", "1", "yes")}
    return set(graph.nodes) - ends


class _Judge:
    """Link and node facts for elementary links of a given length, built once through the scenario builder (the
    same models the event engine runs), and the controller's verdict on station paths."""

    def __init__(self, profile: str, scheme: str, memories: int):
        self.profile, self.scheme, self.memories = profile, scheme, memories
        self._facts: dict[float, tuple] = {}

    def facts(self, length_km: float):
        key = round(length_km, 6)
        if key not in self._facts:
            from qfabric.scenario import build_network, parse_scenario

            data = {"name": "placement-link", "seed": 1, "duration_s": 1.0,
                    "hardware": {"planned": {"base": self.profile, "memory": {"capacity": self.memories}}},
                    "nodes": [{"name": "u"}, {"name": "v"}],
                    "links": [{"name": "uv", "between": ["u", "v"], "length_km": key, "profile": "planned",
                               "scheme": self.scheme}]}
            built = build_network(parse_scenario(data, "placement"))
            links, nodes = facts_from_network(built.network, ["u", "v"])
            self._facts[key] = (links[0], nodes[0])
        return self._facts[key]

    def judge(self, stations: tuple[str, ...], lengths: tuple[float, ...], demand: Demand,
              rate_margin: float) -> Offer:
        facts = [self.facts(length) for length in lengths]
        node = facts[0][1]
        return negotiate([([f[0] for f in facts], [node] * len(stations), stations)],
                         fidelity_min=demand.fidelity_min, rate_hz=demand.rate_hz * (1 + rate_margin))


def place_repeaters(graph: nx.Graph, demands: list[Demand], *, budget: float | None = None,
                    prices: PriceTable | None = None, profile: str = "near-term", scheme: str = "double-click",
                    memories: int = 2, max_link_km: float = 60.0, max_site_qubits: int = 64,
                    routes_per_demand: int = 12, rate_margin: float = 0.15) -> Placement:
    """Choose repeater sites and their qubits meeting every demand at the least cost (see the module's text)."""
    prices = prices or PriceTable()
    if memories < 1 or max_site_qubits < 2 * memories:
        raise QfabricError(f"memories = {memories}, max_site_qubits = {max_site_qubits}: a site must hold at least "
                           "the 2 x memories qubits of one demand")
    sites = _candidates(graph, demands)
    ends = {s for d in demands for s in (d.source, d.target)}
    stations = sites | ends
    dist, paths = {}, {}
    for s in stations:
        d, p = nx.single_source_dijkstra(graph, s, cutoff=max_link_km, weight="length_km")
        for t, km in d.items():
            if t in stations and t != s:
                dist[s, t], paths[s, t] = km, tuple(p[t])
    virtual = nx.Graph()
    virtual.add_nodes_from(stations)
    virtual.add_weighted_edges_from((s, t, km) for (s, t), km in dist.items())
    judge = _Judge(profile, scheme, memories)
    routes: dict[str, list[Route]] = {}
    unmet: dict[str, str] = {}
    considered = 0
    for demand in demands:
        sub = virtual.subgraph(sites | {demand.source, demand.target})  # other demands' ends do not relay
        found, best = [], None
        try:
            walk = nx.shortest_simple_paths(sub, demand.source, demand.target, weight="weight")
            for path in itertools.islice((p for p in walk if len(p) - 1 <= MAX_LINKS), routes_per_demand):
                considered += 1
                path = tuple(path)
                lengths = tuple(dist[a, b] for a, b in zip(path, path[1:], strict=False))
                offer = judge.judge(path, lengths, demand, rate_margin)
                if offer.admit:
                    found.append(Route(demand.name, path, lengths,
                                       tuple(paths[a, b] for a, b in zip(path, path[1:], strict=False)), offer))
                elif best is None or (offer.prediction is not None and best.prediction is not None
                                      and offer.prediction.rate_hz > best.prediction.rate_hz):
                    best = offer
        except nx.NetworkXNoPath:
            pass
        if found:
            routes[demand.name] = found
        else:
            unmet[demand.name] = (best.reason if best is not None else
                                  f"no chain of stations at most {max_link_km:g} km of fibre apart joins "
                                  f"{demand.source} and {demand.target} in {MAX_LINKS} links or fewer")
    if unmet:
        return Placement(False, "no route meets " + "; ".join(f"{k}: {v}" for k, v in unmet.items()), unmet=unmet,
                         routes_considered=considered)
    placement = _solve(demands, routes, dist, prices, memories, max_site_qubits, budget)
    placement.routes_considered = considered
    return placement


def _solve(demands, routes, dist, prices: PriceTable, memories: int, max_site_qubits: int,
           budget: float | None) -> Placement:
    from scipy.optimize import Bounds, LinearConstraint, milp

    site_names = sorted({s for rs in routes.values() for r in rs for s in r.repeaters})
    link_names = sorted({link for rs in routes.values() for r in rs for link in r.links})
    route_list = [r for d in demands for r in routes[d.name]]
    n_s, n_l, n_r = len(site_names), len(link_names), len(route_list)
    s_at = {s: i for i, s in enumerate(site_names)}
    l_at = {link: n_s + i for i, link in enumerate(link_names)}
    r_at = n_s + n_l
    n = n_s + n_l + n_r
    years = prices.lifetime_years
    per_year = prices.annuity_factor()
    # cost over the lifetime (capital as its annuity): sites, links, and per route the qubits it holds
    lifetime = np.zeros(n)
    capex = np.zeros(n)
    for i in s_at.values():
        capex[i] = prices.repeater_site
        lifetime[i] = years * (prices.repeater_site * per_year + prices.site_opex_per_year
                               + prices.control_plane_per_site_year)
    for link, i in l_at.items():
        km = dist[link]
        capex[i] = prices.link_capex()
        lifetime[i] = years * (prices.link_capex() * per_year + km * prices.fibre_lease_per_km_year)
    for j, r in enumerate(route_list):
        qubits = 2 * memories * len(r.repeaters)
        capex[r_at + j] = qubits * prices.memory_qubit
        lifetime[r_at + j] = years * qubits * prices.memory_qubit * per_year
    rows, lo, hi = [], [], []

    def row(entries: dict[int, float], low: float, high: float) -> None:
        a = np.zeros(n)
        for k, v in entries.items():
            a[k] += v
        rows.append(a)
        lo.append(low)
        hi.append(high)

    for d in demands:  # one route per demand
        row({r_at + j: 1 for j, r in enumerate(route_list) if r.demand == d.name}, 1, 1)
    for j, r in enumerate(route_list):  # a route needs its sites and links
        for s in r.repeaters:
            row({r_at + j: 1, s_at[s]: -1}, -np.inf, 0)
        for link in r.links:
            row({r_at + j: 1, l_at[link]: -1}, -np.inf, 0)
    for s, i in s_at.items():  # a site's qubits
        row({i: -max_site_qubits, **{r_at + j: 2 * memories for j, r in enumerate(route_list) if s in r.repeaters}},
            -np.inf, 0)

    def run(with_budget: bool):
        extra = [(capex, -np.inf, budget)] if with_budget else []
        a = np.array(rows + [e[0] for e in extra])
        return milp(lifetime, constraints=LinearConstraint(a, lo + [e[1] for e in extra], hi + [e[2] for e in extra]),
                    integrality=np.ones(n), bounds=Bounds(0, 1))

    result = run(budget is not None)
    within = result.status == 0
    if not within:
        result = run(False)
        if result.status != 0:
            return Placement(False, "no design fits the site capacities (max_site_qubits): " + result.message)
    x = np.round(result.x).astype(int)
    chosen = {route_list[j].demand: route_list[j] for j in range(n_r) if x[r_at + j]}
    sites = {s: 0 for s in site_names if x[s_at[s]]}
    for r in chosen.values():
        for s in r.repeaters:
            sites[s] += 2 * memories
    links = {link: dist[link] for link in link_names if x[l_at[link]]}
    ends = {s for r in chosen.values() for s in (r.stations[0], r.stations[-1])}
    end_qubits = 2 * memories * len(chosen)  # each demand's two ends
    pairs = sum(d.rate_hz for d in demands)
    bits = sum(d.rate_hz * bbm92_bits_per_pair(chosen[d.name].offer.prediction.fidelity) for d in demands)
    cost = cost_of_ownership(prices, sites=len(sites), memory_qubits=sum(sites.values()) + end_qubits,
                             links=len(links), fibre_km=sum(links.values()), stations=len(sites) + len(ends),
                             pairs_per_s=pairs, key_bits_per_s=bits)
    if within:
        reason = f"every demand met at a capital cost of {cost.capex:,.0f}" + (
            f" (budget {budget:,.0f})" if budget is not None else "")
    else:
        reason = (f"the budget {budget:,.0f} is too small: the cheapest design that meets every demand costs "
                  f"{cost.capex:,.0f} in capital")
    return Placement(True, reason, sites, chosen, links, cost, within)


def design_scenario(placement: Placement, demands: list[Demand], *, profile: str = "near-term",
                    scheme: str = "double-click", memories: int = 2, duration_s: float = 2.0, seed: int = 1) -> dict:
    """The design as scenario data (for :func:`~qfabric.scenario.parse_scenario`): its stations, one link per
    elementary link with its fibre length, and each demand a request on its route with its plan; every link end
    has ``memories`` qubits per demand over it, and buffer-space multiplexing gives each demand its own."""
    if not placement.feasible:
        raise QfabricError(f"no design to simulate: {placement.reason}")
    link_name = {link: f"{link[0]}~{link[1]}" for link in placement.links}
    users: dict[tuple[str, str], int] = dict.fromkeys(placement.links, 0)
    for route in placement.routes.values():
        for link in route.links:
            users[link] += 1
    stations = sorted({s for r in placement.routes.values() for s in r.stations})
    nodes = []
    for s in stations:
        split = {link_name[link]: memories * users[link] for link in placement.links if s in link}
        nodes.append({"name": s, "role": "repeater" if s in placement.sites else "end",
                      "memory_qubits": sum(split.values()), "memory_split": split})
    top = max(users.values()) * memories
    requests = []
    for d in demands:
        plan = placement.routes[d.name].offer.plan
        request = {"name": d.name, "from": d.source, "to": d.target, "rate_hz": d.rate_hz,
                   "fidelity_min": d.fidelity_min, "path": list(placement.routes[d.name].stations),
                   "scheme": "swap-asap"}
        if plan.cutoff_s is not None:
            request["cutoff_s"] = plan.cutoff_s
        if plan.purification_rounds:
            request["purification"] = {"rounds": plan.purification_rounds, "protocol": "dejmps"}
        requests.append(request)
    return {"name": "placement-design", "seed": seed, "duration_s": duration_s,
            "description": f"repeater placement: {placement.reason}",
            "hardware": {"planned": {"base": profile, "memory": {"capacity": top}}},
            "multiplexing": {"mode": "buffer-space"},
            "nodes": nodes,
            "links": [{"name": link_name[link], "between": list(link), "length_km": km, "profile": "planned",
                       "scheme": scheme} for link, km in placement.links.items()],
            "requests": requests}


def verify(placement: Placement, demands: list[Demand], **options) -> dict[str, dict]:
    """Simulate the design (:func:`design_scenario`) on the event engine; per demand the delivered rate and
    fidelity, and whether it met its target and floor."""
    from qfabric.scenario import parse_scenario, run_scenario

    report = run_scenario(parse_scenario(design_scenario(placement, demands, **options), "placement design"))
    out = {}
    for d in demands:
        row = next(r for r in report["requests"] if r["name"] == d.name)
        fidelity = row["fidelity"]["mean"] if row["fidelity"] else None
        out[d.name] = {"rate_hz": row["rate_hz"], "rate_ci95_hz": row["rate_ci95_hz"], "fidelity": fidelity,
                       "target_rate_hz": d.rate_hz, "fidelity_min": d.fidelity_min,
                       "met": row["rate_hz"] >= d.rate_hz and fidelity is not None and fidelity >= d.fidelity_min}
    return out


def placement_html(placement: Placement, graph: nx.Graph, demands: list[Demand],
                   verification: dict[str, dict] | None = None) -> str:
    """A page: the fibre map with the chosen sites and each demand's route, the demands (predicted and, when
    given, simulated), the sites, the links and the cost of ownership."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from qfabric.observe.html import figure_to_img, page, table

    sections = [("Result", f"<p>{placement.reason}; {placement.routes_considered} routes judged.</p>")]
    if placement.unmet:
        unmet = [{"demand": k, "why": v} for k, v in placement.unmet.items()]
        sections.append(("Demands no route meets", table(unmet)))
    if placement.feasible:
        pos = {n: tuple(p) for n, p in graph.nodes(data="pos") if p is not None}
        if len(pos) != graph.number_of_nodes():
            pos = nx.kamada_kawai_layout(graph, weight="length_km")
        fig, ax = plt.subplots(figsize=(8, 6))
        nx.draw_networkx_edges(graph, pos, edge_color="#cccccc", width=1.5, ax=ax)
        colours = plt.cm.tab10.colors
        for i, (name, route) in enumerate(placement.routes.items()):
            edges = [e for hop in route.fibre for e in zip(hop, hop[1:], strict=False)]
            nx.draw_networkx_edges(graph, pos, edgelist=edges, edge_color=[colours[i % 10]], width=5 - 0.6 * i,
                                   alpha=0.6, ax=ax, label=name)
        ends = {s for d in demands for s in (d.source, d.target)}
        others = [n for n in graph.nodes if n not in ends and n not in placement.sites]
        nx.draw_networkx_nodes(graph, pos, nodelist=others, node_color="#bbbbbb", node_size=60, ax=ax)
        nx.draw_networkx_nodes(graph, pos, nodelist=sorted(ends), node_color="#1f4e79", node_size=160, ax=ax,
                               label="demand ends")
        nx.draw_networkx_nodes(graph, pos, nodelist=list(placement.sites), node_color="#c0392b", node_shape="s",
                               node_size=180, ax=ax, label="repeaters")
        nx.draw_networkx_labels(graph, pos, font_size=7, ax=ax, verticalalignment="bottom")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
        ax.set_axis_off()
        sections.append(("Design", figure_to_img(fig)))
        rows = []
        for d in demands:
            route, row = placement.routes[d.name], (verification or {}).get(d.name, {})
            rows.append({"demand": d.name, "route": " > ".join(route.stations), "target_pairs/s": d.rate_hz,
                         "predicted_pairs/s": route.offer.prediction.rate_hz, "simulated_pairs/s": row.get("rate_hz"),
                         "fidelity_min": d.fidelity_min, "predicted_fidelity": route.offer.prediction.fidelity,
                         "simulated_fidelity": row.get("fidelity"),
                         "met_in_simulation": None if not row else ("yes" if row["met"] else "NO"),
                         "plan": route.offer.plan.describe()})
        sections.append(("Demands", table(rows)))
        sites = [{"site": s, "memory_qubits": q} for s, q in placement.sites.items()]
        sections.append(("Repeater sites", table(sites)))
        sections.append(("Elementary links", table([{"between": " - ".join(k), "length_km": v}
                                                    for k, v in placement.links.items()])))
        c = placement.cost
        cost_rows = [{"item": f"capital: {k.replace('_', ' ')}", "amount": v} for k, v in c.capex_parts.items()]
        cost_rows += [{"item": f"per year: {k.replace('_', ' ')}", "amount": v} for k, v in c.opex_parts.items()]
        cost_rows += [{"item": "capital, total", "amount": c.capex},
                      {"item": "cost per year (capital as annuity + running)", "amount": c.cost_per_year},
                      {"item": "per delivered pair (at the demanded rates)", "amount": c.cost_per_pair},
                      {"item": "per BBM92 secret key bit", "amount": c.cost_per_key_bit}]
        sections.append(("Cost of ownership", table(cost_rows)))
    return page("Repeater placement", sections)
