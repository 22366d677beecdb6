"""Build the simulated stack from a :class:`Scenario` and run it to a report.

>>> from qfabric.scenario import parse_scenario
>>> sc = parse_scenario({"name": "doc", "seed": 1, "duration_s": 0.5,
...     "nodes": [{"name": "a"}, {"name": "r"}, {"name": "b"}],
...     "links": [{"between": ["a", "r"], "length_km": 10, "profile": "near-term"},
...               {"between": ["r", "b"], "length_km": 10, "profile": "near-term"}],
...     "chain": {"from": "a", "to": "b"}})
>>> report = run_scenario(sc)
>>> report["requests"][0]["pairs_delivered"] > 0
True
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import numpy as np

from qfabric import __version__
from qfabric.control import EntanglementService, Request, RequestRecord
from qfabric.errors import ParameterError
from qfabric.link import ClassicalChannel, HeraldedLink
from qfabric.network import ENGINE_BUILD, LinkModel, Network, NodeModel, Protocol
from qfabric.observe import LinkRecord, network_report
from qfabric.qkd.link import run_bbm92, run_decoy_bb84
from qfabric.qkd.theory import Channel
from qfabric.scenario.graph import heralded_link, link_profile, resolve_profiles, routing_graph, side_capacities
from qfabric.scenario.schema import QkdSpec, RequestSpec, Scenario
from qfabric.sim import Simulator
from qfabric.sim.kernel import stream_seed
from qfabric.units import TICKS_PER_S, seconds_to_ticks

PROGRESS_STEPS = 100


@dataclass
class BuiltNetwork:
    """The simulator, the network, the entanglement service and its requests, built from a scenario."""

    scenario: Scenario
    sim: Simulator
    network: Network
    service: EntanglementService
    graph: nx.Graph
    links: dict[str, HeraldedLink]
    link_records: list[LinkRecord]

    @property
    def records(self) -> list[RequestRecord]:
        return list(self.service.records.values())


def protocol_of(spec: RequestSpec) -> Protocol:
    """The circuit protocol a request asks for (times in kernel ticks)."""
    cutoff = spec.cutoff_s
    cutoffs = [seconds_to_ticks(c) for c in cutoff] if isinstance(cutoff, list) \
        else None if cutoff is None else seconds_to_ticks(cutoff)
    purification = spec.purification
    return Protocol(
        scheme=spec.scheme, cutoffs=cutoffs,
        purification_rounds=purification.rounds if purification else 0,
        purification_protocol=purification.protocol if purification else "dejmps",
        purification_spans=tuple(purification.spans) if purification else (1,),
        regenerate_covered=spec.regenerate_covered, swap_handshake=spec.swap_handshake,
        mesh_delay=None if spec.classical_mesh_latency_s is None else seconds_to_ticks(spec.classical_mesh_latency_s),
        fidelity_min=spec.fidelity_min, link_age=spec.link_age,
    )


def build_network(scenario: Scenario) -> BuiltNetwork:
    """Nodes and links with their hardware, and every request submitted to the entanglement service."""
    profiles = resolve_profiles(scenario)
    capacity = side_capacities(scenario, profiles)
    sim = Simulator(seed=scenario.seed)
    net = Network(sim, multiplexing=scenario.multiplexing.mode, qubit_selection=scenario.multiplexing.qubit_selection,
                  seconds_per_tick=1.0 / TICKS_PER_S)
    link_profiles = {spec.name: link_profile(profiles, spec) for spec in scenario.links}
    first_link: dict[str, str] = {}
    for spec in scenario.links:
        for end in spec.between:
            first_link.setdefault(end, spec.name)
    for node in scenario.nodes:
        own = profiles[node.profile] if node.profile else link_profiles.get(first_link.get(node.name))
        net.add_node(node.name, NodeModel(own.swap_success_probability, own.swap_depolarising) if own else None)
    heralded: dict[str, HeraldedLink] = {}
    records = []
    for spec in scenario.links:
        profile = link_profiles[spec.name]
        link = heralded_link(spec, profile)
        heralded[spec.name] = link
        a, b = spec.between
        herald = seconds_to_ticks(link.herald_delay_s)
        model = LinkModel(
            success_probability=link.success_probability,
            attempt_period=link.attempt_period_ticks,
            herald_delay=herald,
            stored_before_herald=herald,
            state=link.heralded_state.weights,
            capacity=profile.memory.capacity,
            classical_delay=ClassicalChannel(spec.length_km, spec.classical_latency_s,
                                             refractive_index=spec.refractive_index).delay_ticks(None),
            classical_jitter=seconds_to_ticks(spec.classical_jitter_s),
            classical_loss_probability=spec.classical_loss_probability,
            retransmit_timeout=seconds_to_ticks(spec.retransmit_timeout_s),
        )
        net.add_link(spec.name, a, b, model, memory_a=profile.memory, memory_b=profile.memory,
                     capacity_a=capacity[(a, spec.name)], capacity_b=capacity[(b, spec.name)])
        records.append(LinkRecord(
            name=spec.name, between=(a, b), length_km=spec.length_km, scheme=str(link.scheme), profile=profile.name,
            capacity=(capacity[(a, spec.name)], capacity[(b, spec.name)]),
            success_probability=link.success_probability, attempt_period_s=link.attempt_period_s,
            heralded_fidelity=link.heralded_state.fidelity(), hashing_yield=link.heralded_state.hashing_yield,
            plob_bound_per_use=link.plob_bound_per_use, relay_bound_per_use=link.relay_bound_per_use,
        ))
    graph = routing_graph(scenario, heralded)
    service = EntanglementService(net, graph, metric=scenario.routing.metric, paths=scenario.routing.paths)
    for spec in scenario.all_requests():
        service.submit(Request(spec.name, spec.source, spec.target, spec.tenant, spec.start_s, spec.end_s,
                               spec.pairs, spec.rate_hz, protocol_of(spec), spec.path, spec.paths))
    return BuiltNetwork(scenario, sim, net, service, graph, heralded, records)


def run_qkd(scenario: Scenario, spec: QkdSpec, delivered: dict[str, list]) -> dict:
    """One QKD service of the scenario, simulated and post-processed; its summary with the service's names."""
    seed = int(stream_seed(scenario.seed, f"qkd/{spec.name}").generate_state(1)[0])
    if spec.protocol == "decoy-bb84":
        fibre = next(link for link in scenario.links if link.name == spec.link)
        channel = Channel(fibre.length_km, fibre.attenuation_db_per_km, spec.detector_efficiency,
                          spec.dark_count_yield, spec.misalignment,
                          afterpulse_probability=spec.afterpulse_probability)
        pulses = int(min(spec.source_rate_hz * scenario.duration_s, spec.max_simulated_pulses))
        try:
            run = run_decoy_bb84(channel, pulses, seed=seed, variant=spec.cascade, eps_sec=spec.eps_sec,
                                 eps_cor=spec.eps_cor, source_rate_hz=spec.source_rate_hz)
        except ParameterError as err:  # e.g. blocks too small for a key: report it, do not fail the run
            return {"name": spec.name, "protocol": spec.protocol, "link": spec.link, "key_bits": 0,
                    "secret_key_rate_bps": 0.0, "aborted_blocks": None, "abort_reasons": [str(err)]}
        summary = run.summary() | {"between": list(fibre.between), "link": spec.link}
    else:
        request = next(r for r in scenario.all_requests() if r.name == (spec.request or next(iter(delivered))))
        weights = delivered[request.name]
        if len(weights) < 2:
            return {"name": spec.name, "protocol": spec.protocol, "request": request.name, "key_bits": 0,
                    "secret_key_rate_bps": 0.0, "aborted_blocks": None,
                    "abort_reasons": [f"request {request.name!r} delivered fewer than 2 pairs"]}
        run = run_bbm92(np.asarray(weights), seed=seed, variant=spec.cascade, eps_sec=spec.eps_sec,
                        eps_cor=spec.eps_cor, pair_rate_hz=len(weights) / scenario.duration_s)
        summary = run.summary() | {"between": [request.source, request.target], "request": request.name}
    summary["simulated_seconds"] = summary["pulses"] / summary["source_rate_hz"]
    summary["key_bits_over_run"] = summary["secret_key_rate_bps"] * scenario.duration_s
    return {"name": spec.name} | summary


def run_scenario(
    scenario: Scenario, *, progress: Callable[[float], None] | None = None, source_file: str | Path | None = None
) -> dict:
    """Simulate ``scenario.duration_s`` and return the JSON-ready report (``performance`` holds wall times)."""
    t0 = time.perf_counter()
    built = build_network(scenario)
    sim, net, service = built.sim, built.network, built.service
    end = seconds_to_ticks(scenario.duration_s)
    t1 = time.perf_counter()
    share = 0.5 if scenario.qkd else 1.0  # of the progress bar
    for step in range(1, PROGRESS_STEPS + 1):
        sim.run(until=end * step // PROGRESS_STEPS)
        service.watch()
        if progress is not None:
            progress(share * step / PROGRESS_STEPS)
    net.finish()
    wall = time.perf_counter() - t1
    t2 = time.perf_counter()
    delivered = {r.request.name: r.delivered_weights for r in built.records}
    qkd, qkd_seconds = [], {}
    for i, spec in enumerate(scenario.qkd):
        summary = run_qkd(scenario, spec, delivered)
        qkd_seconds[spec.name] = summary.pop("seconds", {})  # wall times: not part of the reproducible report
        qkd.append(summary)
        if progress is not None:
            progress(share + (1 - share) * (i + 1) / len(scenario.qkd))
    schemes = {spec.name: spec.scheme for spec in scenario.all_requests()}
    sections = network_report(records=built.records, links=built.link_records, network=net,
                              duration_s=scenario.duration_s, schemes=schemes)
    positions = {node.name: node.position_km for node in scenario.nodes}
    for row in sections["nodes"]:
        row["position_km"] = list(positions[row["name"]]) if positions.get(row["name"]) else None
    warnings = [f"request {row['name']!r} stalled at {row['stalled_since_s']:.6g} s: every memory on its path "
                "holds a pair waiting for a partner that cannot be made (a deadlock); add a cut-off (cutoff_s)"
                for row in sections["requests"] if row["stalled_since_s"] is not None]
    warnings += [f"request {row['name']!r} had no memory share on {', '.join(row['no_memory_share_on'])} at the end: "
                 "buffer-space multiplexing splits each link end's qubits among the requests using it, and there "
                 "are more requests than qubits" for row in sections["requests"] if row["no_memory_share_on"]]
    report = {
        "qfabric_version": __version__,
        "scenario": {"name": scenario.name, "file": str(source_file) if source_file else None,
                     "seed": scenario.seed, "duration_s": scenario.duration_s,
                     "description": scenario.description,
                     "routing": scenario.routing.model_dump(), "multiplexing": scenario.multiplexing.model_dump()},
        **sections,
        "warnings": warnings,
        "qkd": qkd,
        "performance": {
            "engine": ENGINE_BUILD,
            "events": sim.events_processed,
            "setup_s": t1 - t0,
            "wall_time_s": wall,
            "wall_s_per_simulated_s": wall / scenario.duration_s,
            "events_per_wall_s": sim.events_processed / wall if wall > 0 else None,
            "qkd_wall_time_s": time.perf_counter() - t2,
            "qkd_step_seconds": qkd_seconds,
        },
    }
    return report
