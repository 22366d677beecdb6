"""Build the simulated stack from a :class:`Scenario` and run it to a report.

>>> from qfabric.scenario import parse_scenario
>>> sc = parse_scenario({"name": "doc", "seed": 1, "duration_s": 0.5,
...     "nodes": [{"name": "a"}, {"name": "r"}, {"name": "b"}],
...     "links": [{"between": ["a", "r"], "length_km": 10, "profile": "near-term"},
...               {"between": ["r", "b"], "length_km": 10, "profile": "near-term"}],
...     "chain": {"from": "a", "to": "b"}})
>>> report = run_scenario(sc)
>>> report["end_to_end"][0]["pairs_delivered"] > 0
True
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qfabric import __version__
from qfabric.errors import ParameterError
from qfabric.link import ClassicalChannel, HeraldedLink
from qfabric.network import NodeModel, RepeaterChain, SegmentModel, Topology
from qfabric.observe import LinkRecord, chain_report
from qfabric.qkd.link import run_bbm92, run_decoy_bb84
from qfabric.qkd.theory import Channel
from qfabric.scenario.load import resolve_profiles
from qfabric.scenario.schema import QkdSpec, Scenario
from qfabric.sim import Simulator
from qfabric.sim.kernel import stream_seed
from qfabric.units import TICKS_PER_S, seconds_to_ticks

PROGRESS_STEPS = 100


@dataclass
class BuiltChain:
    """The simulator and the chain protocol built from a scenario, ready to run."""

    scenario: Scenario
    sim: Simulator
    chain: RepeaterChain
    path: list[str]
    links: list[HeraldedLink]
    records: list[LinkRecord]


def build_chain(scenario: Scenario) -> BuiltChain:
    profiles = resolve_profiles(scenario)
    topo = Topology()
    node_specs = {n.name: n for n in scenario.nodes}
    for node in scenario.nodes:
        topo.add_node(node.name)
    for i, spec in enumerate(scenario.links):
        topo.add_link(spec.name or f"{spec.between[0]}-{spec.between[1]}", *spec.between,
                      length_km=spec.length_km, spec=spec, index=i)
    path = topo.path(scenario.chain.source, scenario.chain.target)
    links, records, segments, link_profiles = [], [], [], []
    for a, b in zip(path, path[1:], strict=False):
        edge = topo.link_between(a, b)
        spec = edge["spec"]
        profile = profiles[spec.profile]
        if spec.hardware is not None:
            profile = profile.with_overrides(spec.hardware.overrides())
        link = HeraldedLink(spec.length_km, profile, spec.scheme, spec.attenuation_db_per_km, spec.herald_latency_s)
        links.append(link)
        link_profiles.append(profile)
        herald = seconds_to_ticks(link.herald_delay_s)
        segments.append(SegmentModel(
            success_probability=link.success_probability,
            attempt_period=link.attempt_period_ticks,
            herald_delay=herald,
            stored_before_herald=herald,
            state=link.heralded_state.weights,
            capacity=profile.memory.capacity,
            classical_delay=ClassicalChannel(spec.length_km, spec.classical_latency_s).delay_ticks(None),
        ))
        records.append(LinkRecord(
            name=edge["name"], between=(a, b), length_km=spec.length_km, scheme=str(link.scheme),
            profile=profile.name, capacity=profile.memory.capacity,
            success_probability=link.success_probability, attempt_period_s=link.attempt_period_s,
            heralded_fidelity=link.heralded_state.fidelity(), hashing_yield=link.heralded_state.hashing_yield,
            plob_bound_per_use=link.plob_bound_per_use, relay_bound_per_use=link.relay_bound_per_use,
        ))
    nodes = []
    for i, name in enumerate(path):
        left = link_profiles[i - 1] if i > 0 else link_profiles[0]
        right = link_profiles[i] if i < len(link_profiles) else link_profiles[-1]
        own = node_specs[name].profile
        swap_hw = profiles[own] if own else (left if i > 0 else right)
        nodes.append(NodeModel(
            memory_left=left.memory, memory_right=right.memory,
            swap_success_probability=swap_hw.swap_success_probability,
            swap_depolarising=swap_hw.swap_depolarising,
        ))
    chain_spec = scenario.chain
    cutoff = chain_spec.cutoff_s
    if isinstance(cutoff, list):
        cutoffs = [seconds_to_ticks(c) for c in cutoff]
    elif cutoff is None:
        cutoffs = None
    else:
        levels = max(1, (len(segments)).bit_length() - 1) if chain_spec.scheme == "nested" else 1
        cutoffs = [seconds_to_ticks(cutoff)] * levels
    purification = chain_spec.purification
    sim = Simulator(seed=scenario.seed)
    chain = RepeaterChain(
        sim, segments, nodes, scheme=chain_spec.scheme, cutoffs=cutoffs,
        purification_rounds=purification.rounds if purification else 0,
        purification_protocol=purification.protocol if purification else "dejmps",
        purification_spans=purification.spans if purification else (1,),
        seconds_per_tick=1.0 / TICKS_PER_S, regenerate_covered=chain_spec.regenerate_covered,
        swap_handshake=chain_spec.swap_handshake,
        mesh_delay=None if chain_spec.classical_mesh_latency_s is None
        else seconds_to_ticks(chain_spec.classical_mesh_latency_s),
        name=f"chain/{chain_spec.source}-{chain_spec.target}",
    )
    return BuiltChain(scenario, sim, chain, path, links, records)


def run_qkd(scenario: Scenario, spec: QkdSpec, delivered_weights: list) -> dict:
    """One QKD service of the scenario, simulated and post-processed; its summary with the service's names."""
    seed = int(stream_seed(scenario.seed, f"qkd/{spec.name}").generate_state(1)[0])
    if spec.protocol == "decoy-bb84":
        fibre = next(link for link in scenario.links if link.name == spec.link)
        channel = Channel(fibre.length_km, fibre.attenuation_db_per_km, spec.detector_efficiency,
                          spec.dark_count_yield, spec.misalignment)
        pulses = int(min(spec.source_rate_hz * scenario.duration_s, spec.max_simulated_pulses))
        try:
            run = run_decoy_bb84(channel, pulses, seed=seed, variant=spec.cascade, eps_sec=spec.eps_sec,
                                 eps_cor=spec.eps_cor, source_rate_hz=spec.source_rate_hz)
        except ParameterError as err:  # e.g. blocks too small for a key: report it, do not fail the run
            return {"name": spec.name, "protocol": spec.protocol, "link": spec.link, "key_bits": 0,
                    "secret_key_rate_bps": 0.0, "aborted_blocks": None, "abort_reasons": [str(err)]}
        summary = run.summary() | {"between": list(fibre.between), "link": spec.link}
    else:
        if len(delivered_weights) < 2:
            return {"name": spec.name, "protocol": spec.protocol, "key_bits": 0, "secret_key_rate_bps": 0.0,
                    "aborted_blocks": None, "abort_reasons": ["the chain delivered fewer than 2 pairs"]}
        run = run_bbm92(np.asarray(delivered_weights), seed=seed, variant=spec.cascade, eps_sec=spec.eps_sec,
                        eps_cor=spec.eps_cor, pair_rate_hz=len(delivered_weights) / scenario.duration_s)
        summary = run.summary() | {"between": [scenario.chain.source, scenario.chain.target]}
    summary["simulated_seconds"] = summary["pulses"] / summary["source_rate_hz"]
    summary["key_bits_over_run"] = summary["secret_key_rate_bps"] * scenario.duration_s
    return {"name": spec.name} | summary


def run_scenario(
    scenario: Scenario, *, progress: Callable[[float], None] | None = None, source_file: str | Path | None = None
) -> dict:
    """Simulate ``scenario.duration_s`` and return the JSON-ready report (``performance`` holds wall times)."""
    t0 = time.perf_counter()
    built = build_chain(scenario)
    sim, chain = built.sim, built.chain
    chain.start()
    end = seconds_to_ticks(scenario.duration_s)
    t1 = time.perf_counter()
    share = 0.5 if scenario.qkd else 1.0  # of the progress bar
    for step in range(1, PROGRESS_STEPS + 1):
        sim.run(until=end * step // PROGRESS_STEPS)
        if progress is not None:
            progress(share * step / PROGRESS_STEPS)
    chain.finish()
    wall = time.perf_counter() - t1
    t2 = time.perf_counter()
    qkd, qkd_seconds = [], {}
    for i, spec in enumerate(scenario.qkd):
        summary = run_qkd(scenario, spec, chain.stats.delivered_weights)
        qkd_seconds[spec.name] = summary.pop("seconds", {})  # wall times: not part of the reproducible report
        qkd.append(summary)
        if progress is not None:
            progress(share + (1 - share) * (i + 1) / len(scenario.qkd))
    report = {
        "qfabric_version": __version__,
        "scenario": {"name": scenario.name, "file": str(source_file) if source_file else None,
                     "seed": scenario.seed, "duration_s": scenario.duration_s,
                     "description": scenario.description},
        **chain_report(
            source=scenario.chain.source, target=scenario.chain.target, path=built.path, stats=chain.stats,
            links=built.records, duration_s=scenario.duration_s, seconds_per_tick=1.0 / TICKS_PER_S,
            scheme=scenario.chain.scheme,
        ),
        "qkd": qkd,
        "performance": {
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
