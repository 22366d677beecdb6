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

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import numpy as np

from qfabric import __version__
from qfabric.control import (
    SLO,
    EntanglementService,
    Fault,
    FaultInjector,
    Heartbeats,
    Quota,
    Request,
    RequestRecord,
    Tenant,
    UsageLedger,
    central_node,
    issue_token,
    link_conditions,
    random_faults,
)
from qfabric.errors import ParameterError
from qfabric.hardware import HardwareProfile, Memory
from qfabric.link import ClassicalChannel, HeraldedLink
from qfabric.network import ENGINE_BUILD, LinkModel, Network, NodeModel, Protocol
from qfabric.observe import LinkRecord, network_report
from qfabric.qkd.link import LinkRun, run_bbm92, run_decoy_bb84
from qfabric.qkd.theory import Channel
from qfabric.scenario.arrivals import arrival_requests
from qfabric.scenario.graph import heralded_link, link_profile, resolve_profiles, routing_graph, side_capacities
from qfabric.scenario.satellite import as_fibre, heralding_equivalent, satellite_section
from qfabric.scenario.schema import LinkSpec, QkdSpec, RequestSpec, Scenario, SloSpec
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
    injector: FaultInjector | None = None

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


def link_model(spec: LinkSpec, link: HeraldedLink, capacity: int) -> LinkModel:
    """The engine's model of one scenario link (times in kernel ticks)."""
    herald = seconds_to_ticks(link.herald_delay_s)
    return LinkModel(
        success_probability=link.success_probability,
        attempt_period=link.attempt_period_ticks,
        herald_delay=herald,
        stored_before_herald=herald,
        state=link.heralded_state.weights,
        capacity=capacity,
        classical_delay=ClassicalChannel(spec.length_km, spec.classical_latency_s,
                                         refractive_index=spec.refractive_index).delay_ticks(None),
        classical_jitter=seconds_to_ticks(spec.classical_jitter_s),
        classical_loss_probability=spec.classical_loss_probability,
        retransmit_timeout=seconds_to_ticks(spec.retransmit_timeout_s),
    )


def degraded_link(spec: LinkSpec, profile: HardwareProfile, extra_loss_db: float,
                  detector_factor: float) -> HeraldedLink:
    """The link with ``extra_loss_db`` more fibre loss (spread over its length) and its station's detector
    efficiency multiplied by ``detector_factor``."""
    spec = spec.model_copy(update={"attenuation_db_per_km": spec.attenuation_db_per_km
                                   + extra_loss_db / spec.length_km})
    detector = profile.station.detector
    station = dataclasses.replace(profile.station, detector=dataclasses.replace(
        detector, efficiency=detector.efficiency * detector_factor))
    return heralded_link(spec, dataclasses.replace(profile, station=station))


def scaled_memory(memory: Memory, factor: float) -> Memory:
    """``memory`` with every coherence time multiplied by ``factor``."""
    return dataclasses.replace(memory, t1_s=memory.t1_s * factor, t2_s=memory.t2_s * factor,
                               depolarising_time_s=memory.depolarising_time_s * factor)


def tenants_of(scenario: Scenario) -> dict[str, Tenant] | None:
    """The scenario's tenants (None when it declares none: every request is served)."""
    if not scenario.tenants:
        return None
    return {t.name: Tenant(t.name, weight=t.weight, priority=t.priority, quota=Quota(**t.quota.model_dump()),
                           secret=(t.secret or "").encode()) for t in scenario.tenants}


def slo_of(name: str, spec: SloSpec | None) -> SLO | None:
    return None if spec is None else SLO(name, **spec.model_dump())


def token_for(tenant: Tenant | None, spec: RequestSpec, duration_s: float) -> str | None:
    """The token the simulated client of ``spec`` sends: valid for its window, expired before its start,
    forged (signed with a wrong key) or none."""
    if tenant is None or not tenant.needs_token or spec.credential == "none":
        return None
    until = spec.end_s if spec.end_s is not None else duration_s
    if spec.credential == "expired":
        return issue_token(tenant, request=spec.name, not_after_s=spec.start_s / 2)
    if spec.credential == "forged":
        tenant = dataclasses.replace(tenant, secret=b"guessed-" + tenant.secret[::-1])
    return issue_token(tenant, request=spec.name, not_after_s=until)


def scenario_faults(scenario: Scenario) -> list[Fault]:
    """The explicit faults, the random fibre cuts (stream ``faults``) and the federation's supply cuts (a cut of
    the QKD service's fibre from the start of the round's key supply until the end)."""
    faults = [Fault(f.kind, f.target, f.at_s, f.until_s, f.extra_loss_db, f.factor) for f in scenario.faults]
    spec = scenario.random_faults
    if spec is not None:
        links = [link.name for link in scenario.links] if spec.links == "all" else list(spec.links)
        rng = np.random.default_rng(stream_seed(scenario.seed, "faults"))
        faults += random_faults(links, mtbf_s=spec.mtbf_s, mttr_s=spec.mttr_s, duration_s=scenario.duration_s,
                                rng=rng)
    fed = scenario.federated
    if fed is not None:
        link_of = {q.name: q.link for q in scenario.qkd}
        for cut in fed.supply_cuts:
            faults.append(Fault("cut", link_of[cut.qkd], supply_round_start_s(fed, cut.from_round)))
    return sorted(faults, key=lambda f: (f.start_s, f.target))


def supply_round_start_s(fed, server_round: int) -> float:
    """When the key supply feeding a federation's round starts: 0 for the first round (the warm-up), then
    each round's keys accrue over the round period before it."""
    return 0.0 if server_round <= 1 else fed.warmup_s + (server_round - 2) * fed.round_period_s


def build_network(scenario: Scenario) -> BuiltNetwork:
    """Nodes and links with their hardware, the entanglement service with its tenants, every request submitted
    (explicit and arriving), and the faults scheduled with the controller that learns of them."""
    scenario = heralding_equivalent(scenario)  # free-space links as fibres of the same loss per arm
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
    node_profile = {}
    for node in scenario.nodes:
        own = profiles[node.profile] if node.profile else link_profiles.get(first_link.get(node.name))
        node_profile[node.name] = own
        net.add_node(node.name, NodeModel(own.swap_success_probability, own.swap_depolarising) if own else None)
    heralded: dict[str, HeraldedLink] = {}
    records = []
    specs = {spec.name: spec for spec in scenario.links}
    for spec in scenario.links:
        profile = link_profiles[spec.name]
        link = heralded_link(spec, profile)
        heralded[spec.name] = link
        a, b = spec.between
        net.add_link(spec.name, a, b, link_model(spec, link, profile.memory.capacity), memory_a=profile.memory,
                     memory_b=profile.memory, capacity_a=capacity[(a, spec.name)], capacity_b=capacity[(b, spec.name)])
        records.append(LinkRecord(
            name=spec.name, between=(a, b), length_km=spec.length_km, scheme=str(link.scheme), profile=profile.name,
            capacity=(capacity[(a, spec.name)], capacity[(b, spec.name)]),
            success_probability=link.success_probability, attempt_period_s=link.attempt_period_s,
            heralded_fidelity=link.heralded_state.fidelity(), hashing_yield=link.heralded_state.hashing_yield,
            plob_bound_per_use=link.plob_bound_per_use, relay_bound_per_use=link.relay_bound_per_use,
        ))
    graph = routing_graph(scenario, heralded)
    tenants = tenants_of(scenario)
    check_s = scenario.control.check_s or scenario.duration_s / 200
    service = EntanglementService(net, graph, metric=scenario.routing.metric, paths=scenario.routing.paths,
                                  tenants=tenants, ledger=UsageLedger(), check_s=check_s)
    tenant_slo = {t.name: t.slo for t in scenario.tenants}
    for spec in scenario.all_requests() + arrival_requests(scenario):
        tenant = tenants.get(spec.tenant) if tenants else None
        service.submit(Request(spec.name, spec.source, spec.target, spec.tenant, spec.start_s, spec.end_s,
                               spec.pairs, spec.rate_hz, protocol_of(spec), spec.path, spec.paths,
                               negotiate=spec.negotiate, if_refused=spec.if_refused),
                       token=token_for(tenant, spec, scenario.duration_s),
                       slo=slo_of(spec.name, spec.slo or tenant_slo.get(spec.tenant)))
    built = BuiltNetwork(scenario, sim, net, service, graph, heralded, records)
    faults = scenario_faults(scenario)
    if faults:
        def degrade(name: str, extra_loss_db: float, detector_factor: float) -> LinkModel:
            spec, profile = specs[name], link_profiles[name]
            return link_model(spec, degraded_link(spec, profile, extra_loss_db, detector_factor),
                              profile.memory.capacity)

        def memory_of(node: str, factor: float) -> Memory:
            return scaled_memory(node_profile[node].memory, factor)

        controller = scenario.control.controller or central_node(classical_graph(net))
        built.injector = FaultInjector(net, faults, heartbeats=Heartbeats(scenario.control.heartbeat_s,
                                                                          scenario.control.heartbeat_misses),
                                       controller=controller, degrade=degrade, memory_of=memory_of,
                                       on_down=service.link_down, on_up=service.link_up)
        built.injector.start()
    return built


def delivered_pairs(scenario: Scenario) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Simulate the scenario's network for its duration; per request, when each pair was delivered (s) and its
    Bell-diagonal weights (what BBM92 measures). The same run as :func:`run_scenario`'s, seed for seed."""
    built = build_network(scenario)
    built.sim.run(until=seconds_to_ticks(scenario.duration_s))
    spt = built.network.seconds_per_tick
    return {r.request.name: (np.asarray(r.delivery_ticks, dtype=float) * spt,
                             np.asarray(r.delivered_weights, dtype=float).reshape(-1, 4)) for r in built.records}


def classical_graph(net: Network) -> nx.Graph:
    """The classical channels along the fibres, weighted by their one-way delay in seconds."""
    graph = nx.Graph()
    graph.add_nodes_from(net.nodes)
    for link in net.links:
        graph.add_edge(link.a, link.b, delay_s=link.hop.delay * net.seconds_per_tick)
    return graph


def qkd_channel(scenario: Scenario, spec: QkdSpec, extra_loss_db: float = 0.0,
                detector_factor: float = 1.0) -> Channel:
    """The decoy-BB84 channel of ``spec``'s fibre, with a fault's extra loss and weaker detector."""
    fibre = next(link for link in scenario.links if link.name == spec.link)
    fibre = as_fibre(fibre, fibre.length_km)  # a free-space link: the fibre of the same loss
    return Channel(fibre.length_km, fibre.attenuation_db_per_km + extra_loss_db / fibre.length_km,
                   spec.detector_efficiency * detector_factor, spec.dark_count_yield, spec.misalignment,
                   afterpulse_probability=spec.afterpulse_probability)


_DISTILLED: dict[tuple, LinkRun] = {}  # (seed, stream, channel, settings) -> the run: each link once per process
_DISTILLED_MAX = 64
distillations = 0  # decoy-BB84 links simulated and distilled in this process (tests count them)


def distil_decoy(scenario: Scenario, spec: QkdSpec, extra_loss_db: float = 0.0,
                 detector_factor: float = 1.0) -> LinkRun:
    """``spec``'s decoy-BB84 link in one state (nominal, or a fault's extra loss and weaker detector), simulated
    and post-processed once per process: the report (:func:`run_qkd`) and the KMS's key supply
    (:class:`~qfabric.scenario.keysupply.KeySupply`) share the run, as they share its seeded stream
    ``qkd/<name>[/<dB>dB/x<factor>]``. Raises ``ParameterError`` when no block size gives a key.

    >>> # distil_decoy(sc, sc.qkd[0]).secret_key_rate_bps  ->  e.g. 1.2e4; a second call returns the same run
    """
    global distillations
    state = (extra_loss_db, detector_factor)
    stream = f"qkd/{spec.name}" if state == (0.0, 1.0) else f"qkd/{spec.name}/{extra_loss_db:g}dB/x{detector_factor:g}"
    channel = qkd_channel(scenario, spec, extra_loss_db, detector_factor)
    pulses = int(min(spec.source_rate_hz * scenario.duration_s, spec.max_simulated_pulses))
    key = (scenario.seed, stream, channel, pulses, spec.cascade, spec.eps_sec, spec.eps_cor, spec.source_rate_hz)
    run = _DISTILLED.get(key)
    if run is None:
        seed = int(stream_seed(scenario.seed, stream).generate_state(1)[0])
        run = run_decoy_bb84(channel, pulses, seed=seed, variant=spec.cascade, eps_sec=spec.eps_sec,
                             eps_cor=spec.eps_cor, source_rate_hz=spec.source_rate_hz)
        distillations += 1
        if len(_DISTILLED) >= _DISTILLED_MAX:
            _DISTILLED.pop(next(iter(_DISTILLED)))
        _DISTILLED[key] = run
    return run


def run_qkd(scenario: Scenario, spec: QkdSpec, delivered: dict[str, list], faults: list[Fault] | None = None) -> dict:
    """One QKD service of the scenario, simulated and post-processed; its summary with the service's names.

    A decoy-BB84 link under ``faults`` makes no key while cut, and is simulated again for every degraded state
    it goes through (extra loss, weaker detector): ``conditions`` lists them over the run with their rates,
    and ``key_bits_over_run`` adds them up."""
    if spec.protocol == "decoy-bb84":
        fibre = next(link for link in scenario.links if link.name == spec.link)
        try:
            run = distil_decoy(scenario, spec)
        except ParameterError as err:  # e.g. blocks too small for a key: report it, do not fail the run
            return {"name": spec.name, "protocol": spec.protocol, "link": spec.link, "key_bits": 0,
                    "secret_key_rate_bps": 0.0, "aborted_blocks": None, "abort_reasons": [str(err)],
                    "key_bits_over_run": 0.0, "conditions": []}
        summary = run.summary() | {"between": list(fibre.between), "link": spec.link}
        conditions = link_conditions(faults or [], fibre.name, tuple(fibre.between), scenario.duration_s)
        rates: dict[tuple[float, float], tuple[float, float | None]] = {
            (0.0, 1.0): (summary["secret_key_rate_bps"], summary["qber"])}
        rows = []
        for c in conditions:
            state = (c.extra_loss_db, c.detector_factor)
            if c.up and state not in rates:
                try:
                    degraded = distil_decoy(scenario, spec, *state).summary()
                    rates[state] = (degraded["secret_key_rate_bps"], degraded["qber"])
                except ParameterError:
                    rates[state] = (0.0, None)
            rate, qber = rates[state] if c.up else (0.0, None)
            rows.append({"start_s": c.start_s, "end_s": c.end_s, "up": c.up, "extra_loss_db": c.extra_loss_db,
                         "detector_factor": c.detector_factor, "secret_key_rate_bps": rate, "qber": qber})
        summary["conditions"] = rows
        summary["key_bits_over_run"] = sum(r["secret_key_rate_bps"] * (r["end_s"] - r["start_s"]) for r in rows)
    else:
        request = next(r for r in scenario.all_requests() if r.name == (spec.request or next(iter(delivered))))
        weights = delivered[request.name]
        if len(weights) < 2:
            return {"name": spec.name, "protocol": spec.protocol, "request": request.name, "key_bits": 0,
                    "secret_key_rate_bps": 0.0, "aborted_blocks": None,
                    "abort_reasons": [f"request {request.name!r} delivered fewer than 2 pairs"]}
        seed = int(stream_seed(scenario.seed, f"qkd/{spec.name}").generate_state(1)[0])
        run = run_bbm92(np.asarray(weights), seed=seed, variant=spec.cascade, eps_sec=spec.eps_sec,
                        eps_cor=spec.eps_cor, pair_rate_hz=len(weights) / scenario.duration_s,
                        **({"block_bits": spec.block_pairs} if spec.block_pairs else {}))
        summary = run.summary() | {"between": [request.source, request.target], "request": request.name}
        summary["key_bits_over_run"] = summary["secret_key_rate_bps"] * scenario.duration_s
    summary["simulated_seconds"] = summary["pulses"] / summary["source_rate_hz"]
    return {"name": spec.name} | summary


def fault_rows(injector: FaultInjector | None, records: list[RequestRecord]) -> list[dict]:
    """Each fault: what and when, when the controller learned of it and of its repair, pairs lost, and the
    requests moved off it (with the time from the fault to their reroute)."""
    if injector is None:
        return []
    rows = []
    for rec in injector.records:
        f = rec.fault
        moved = []
        for r in records:
            for change in r.reroutes:
                if change["t_s"] >= f.start_s and (rec.detected_s is not None and abs(change["t_s"] - rec.detected_s)
                                                   < 1e-9 or f.target in change["cause"]):
                    moved.append({"request": r.request.name, "t_s": change["t_s"],
                                  "time_to_reroute_s": change["t_s"] - f.start_s, "routes": change["routes"],
                                  "pairs_lost": change["pairs_lost"]})
                    break
        rows.append({
            "kind": f.kind.value, "target": f.target, "start_s": f.start_s, "end_s": f.end_s,
            "extra_loss_db": f.extra_loss_db, "factor": f.factor,
            "detected_s": rec.detected_s,
            "time_to_detect_s": rec.detected_s - f.start_s if rec.detected_s is not None else None,
            "repair_detected_s": rec.repair_detected_s,
            "pairs_lost": rec.pairs_lost + sum(m["pairs_lost"] for m in moved),
            "requests_moved": moved,
        })
    return rows


def tenant_rows(scenario: Scenario, service: EntanglementService) -> list[dict]:
    """Each tenant: weight, priority, quota, and what it used (from the usage ledger)."""
    totals = service.ledger.totals(until_s=scenario.duration_s)
    rows = []
    for t in scenario.tenants:
        mine = [r for r in service.records.values() if r.request.tenant == t.name]
        rows.append({"name": t.name, "weight": t.weight, "priority": t.priority,
                     "quota": t.quota.model_dump(), "requests": len(mine),
                     "refused": sum(r.refused is not None for r in mine),
                     "usage": totals.get(t.name, {})})
    return rows


MAX_EVENTS = 5000


def run_scenario(
    scenario: Scenario, *, progress: Callable[[float], None] | None = None, source_file: str | Path | None = None,
    ledger_csv: str | Path | None = None, pairs_out: dict | None = None,
    on_step: Callable[[BuiltNetwork, float], None] | None = None,
) -> dict:
    """Simulate ``scenario.duration_s`` and return the JSON-ready report (``performance`` holds wall times);
    ``ledger_csv`` also writes the tenants' usage ledger there, and ``pairs_out`` gets what
    :func:`delivered_pairs` would return (for the KMS's end-to-end keys, without simulating again).
    ``on_step(built, t_s)`` is called after each of the ``PROGRESS_STEPS`` steps, with the simulation run up to
    ``t_s`` seconds (the live dashboard reads its state there; it must not change it)."""
    t0 = time.perf_counter()
    built = build_network(scenario)
    sim, net, service = built.sim, built.network, built.service
    end = seconds_to_ticks(scenario.duration_s)
    t1 = time.perf_counter()
    share = 0.5 if scenario.qkd else 1.0  # of the progress bar
    for step in range(1, PROGRESS_STEPS + 1):
        sim.run(until=end * step // PROGRESS_STEPS)
        service.watch()
        if on_step is not None:
            on_step(built, sim.now * net.seconds_per_tick)
        if progress is not None:
            progress(share * step / PROGRESS_STEPS)
    net.finish()
    wall = time.perf_counter() - t1
    t2 = time.perf_counter()
    delivered = {r.request.name: r.delivered_weights for r in built.records}
    if pairs_out is not None:
        spt = net.seconds_per_tick
        pairs_out.update({r.request.name: (np.asarray(r.delivery_ticks, dtype=float) * spt,
                                           np.asarray(r.delivered_weights, dtype=float).reshape(-1, 4))
                          for r in built.records})
    faults = built.injector.records if built.injector is not None else []
    qkd, qkd_seconds = [], {}
    for i, spec in enumerate(scenario.qkd):
        summary = run_qkd(scenario, spec, delivered, [r.fault for r in faults])
        qkd_seconds[spec.name] = summary.pop("seconds", {})  # wall times: not part of the reproducible report
        qkd.append(summary)
        if progress is not None:
            progress(share + (1 - share) * (i + 1) / len(scenario.qkd))
    schemes = {r.request.name: r.request.protocol.scheme for r in built.records}
    step_s = scenario.control.check_s or scenario.duration_s / 100
    sections = network_report(records=built.records, links=built.link_records, network=net,
                              duration_s=scenario.duration_s, schemes=schemes, step_s=step_s)
    for row in sections["links"]:
        row["conditions"] = [dataclasses.asdict(c) for c in link_conditions(
            [r.fault for r in faults], row["name"], tuple(row["between"]), scenario.duration_s)]
    events = sorted((built.injector.log if built.injector else []) + service.events,
                    key=lambda e: e["t_s"])  # stable: at one time, what happened before what the controller did
    if ledger_csv is not None:
        service.ledger.to_csv(ledger_csv)
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
        "control": {
            "controller": built.injector.controller if built.injector else scenario.control.controller,
            "heartbeat_s": scenario.control.heartbeat_s, "heartbeat_misses": scenario.control.heartbeat_misses,
            "slo_check_s": service.check_s, "timeline_step_s": step_s,
        },
        "faults": fault_rows(built.injector, built.records),
        "tenants": tenant_rows(scenario, service),
        "events": events[:MAX_EVENTS],
        "events_total": len(events),
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
    if scenario.satellites:
        report["satellite"] = satellite_section(scenario, net.nodes)
    if scenario.distributed is not None:
        from qfabric.scenario.distributed import distributed_section

        report["distributed"] = distributed_section(scenario, built)
    return report
