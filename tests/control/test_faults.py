"""Faults on a running network: detection through heartbeats, reroutes, pairs lost, repairs, degradations."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest

from qfabric.control import EntanglementService, Request
from qfabric.control.faults import Fault, FaultInjector, Heartbeats, central_node, random_faults
from qfabric.errors import ParameterError
from qfabric.hardware import Memory
from qfabric.network import LinkModel, Network
from qfabric.sim import Simulator

SPT = 1e-6  # one tick a microsecond
STATE = (0.95, 0.02, 0.02, 0.01)


def diamond(seed: int = 3, delay: int = 50) -> Network:
    """a-r1-b (two hops, the route) and a-r2-r3-b (three hops, the detour), every hop ``delay`` us one way."""
    net = Network(Simulator(seed=seed), seconds_per_tick=SPT)
    model = LinkModel(success_probability=0.1, attempt_period=10, herald_delay=delay, state=STATE,
                      classical_delay=delay, capacity=2)
    for a, b in [("a", "r1"), ("r1", "b"), ("a", "r2"), ("r2", "r3"), ("r3", "b")]:
        net.add_link(f"{a}-{b}", a, b, model)
    return net


def run_cut(cut_s=0.02, repair_s=0.05, period_s=1e-3, misses=3, until_s=0.08, controller="a"):
    net = diamond()
    service = EntanglementService(net)
    record = service.submit(Request("ab", "a", "b"))
    injector = FaultInjector(net, [Fault("cut", "r1-b", cut_s, repair_s)],
                             heartbeats=Heartbeats(period_s, misses), controller=controller,
                             on_down=service.link_down, on_up=service.link_up)
    injector.start()
    net.sim.run(until=round(until_s / SPT))
    return net, service, record, injector


def test_heartbeat_detection_closed_form():
    hb = Heartbeats(period_s=0.01, misses=3)
    # the last heartbeat through left at 0.99 (in phase), arrives 0.9901; three periods without one after it
    assert hb.detection_s(cut_s=1.0, one_way_s=1e-4) == pytest.approx(0.99 + 1e-4 + 0.03)
    for cut in np.linspace(1.0, 1.05, 37):
        detected = hb.detection_s(cut, 1e-4)
        assert cut + (hb.misses - 1) * hb.period_s - 1e-12 < detected <= cut + hb.misses * hb.period_s + 1e-12
    assert hb.repair_detection_s(1.003, 1e-4) == pytest.approx(1.01 + 1e-4)


def test_cut_is_detected_within_the_bound_and_the_request_moves_to_the_detour():
    cut, period, misses = 0.02, 1e-3, 3
    net, service, record, injector = run_cut(cut, period_s=period, misses=misses)
    told = injector.records[0].detected_s
    # r1 notices (one hop from b), reports to the controller at a over a-r1: one more hop of 50 us
    bound = cut + misses * period + 50 * SPT + 50 * SPT
    assert cut + (misses - 1) * period < told <= bound + 1e-12
    assert record.all_routes[:2] == [["a", "r1", "b"], ["a", "r2", "r3", "b"]]
    first_reroute = record.reroutes[0]
    assert first_reroute["t_s"] == pytest.approx(told, abs=SPT) and first_reroute["cause"] == "r1-b down"
    ticks = np.array(record.delivery_ticks) * SPT
    on = np.array(record.delivered_on)
    # nothing crosses the cut fibre: no pair over the first route after the cut (plus a message flight)
    assert not np.any((on == 0) & (ticks > cut + 2 * 50 * SPT) & (ticks < 0.05))
    # the detour delivers between the detection and the repair
    assert np.any((on == 1) & (ticks > told) & (ticks < 0.05))


def test_repair_brings_the_request_back_to_its_best_route():
    net, service, record, injector = run_cut(0.02, 0.05, until_s=0.1)
    back = injector.records[0].repair_detected_s
    assert back == pytest.approx(Heartbeats(1e-3, 3).repair_detection_s(0.05, 50 * SPT) + 50 * SPT)
    assert record.routes == [["a", "r1", "b"]] and record.all_routes[-1] == ["a", "r1", "b"]
    assert [e["event"] for e in service.events if e["request"] == "ab"][-2:] == ["rerouted", "rerouted"]
    ticks = np.array(record.delivery_ticks) * SPT
    assert np.any((np.array(record.delivered_on) == 2) & (ticks > back))
    assert not net.links_down


def test_no_route_left_suspends_then_resumes():
    net = diamond()
    service = EntanglementService(net)
    record = service.submit(Request("ab", "a", "b"))
    faults = [Fault("cut", "r1-b", 0.01, 0.03), Fault("cut", "r3-b", 0.01, 0.04)]
    injector = FaultInjector(net, faults, heartbeats=Heartbeats(1e-3, 2), controller="a",
                             on_down=service.link_down, on_up=service.link_up)
    injector.start()
    net.sim.run(until=round(0.025 / SPT))
    assert record.suspended_since_tick is not None and record.routes == []
    suspended_at = record.suspended_since_tick * SPT
    delivered = len(record.delivery_ticks)
    net.sim.run(until=round(0.06 / SPT))
    assert record.suspended_since_tick is None and record.routes == [["a", "r1", "b"]]
    ticks = np.array(record.delivery_ticks) * SPT
    assert len(ticks) > delivered and not np.any((ticks > suspended_at) & (ticks < 0.03))
    events = [e["event"] for e in service.events]
    assert "suspended" in events and "resumed" in events


def test_pairs_in_memories_are_counted_lost_when_a_route_is_retired():
    net = diamond()
    slow = LinkModel(success_probability=0.3, attempt_period=10, herald_delay=50, state=STATE,
                     classical_delay=50, capacity=4)
    for link in net.links:
        net.set_link_model(link, slow)
    service = EntanglementService(net)
    record = service.submit(Request("ab", "a", "b"))
    injector = FaultInjector(net, [Fault("node", "r1", 0.01, None)], heartbeats=Heartbeats(1e-3, 3),
                             controller="a", on_down=service.link_down, on_up=service.link_up)
    injector.start()
    net.sim.run(until=round(0.03 / SPT))
    lost = injector.records[0].pairs_lost + sum(r["pairs_lost"] for r in record.reroutes)
    assert lost >= 1
    assert record.routes == [["a", "r2", "r3", "b"]]


def test_unreachable_controller_leaves_the_cut_unreported():
    net = diamond()
    service = EntanglementService(net)
    service.submit(Request("ab", "a", "b"))
    injector = FaultInjector(net, [Fault("node", "a", 0.01)], heartbeats=Heartbeats(1e-3, 3), controller="a",
                             on_down=service.link_down)
    injector.start()
    net.sim.run(until=round(0.02 / SPT))
    assert any(e["event"] == "unreported" for e in injector.log)


def test_loss_fault_lowers_the_rate_while_it_lasts():
    def degrade(link, extra_db, detector):
        p = 0.1 * 10 ** (-extra_db / 10) * detector
        return LinkModel(success_probability=p, attempt_period=10, herald_delay=50, state=STATE,
                         classical_delay=50, capacity=2)

    counts = {}
    for faults in ([], [Fault("loss", "a-r1", 0.0, 0.5, extra_loss_db=10)]):
        net = diamond()
        service = EntanglementService(net)
        record = service.submit(Request("ab", "a", "b"))
        FaultInjector(net, faults, heartbeats=Heartbeats(), controller="a", degrade=degrade).start()
        net.sim.run(until=round(0.5 / SPT))
        counts[len(faults)] = len(record.delivery_ticks)
    # a-r1 is ten times slower: the pair rate falls by several times (no reroute: loss is not a cut)
    assert counts[1] < counts[0] / 3


def test_memory_fault_lowers_delivered_fidelity():
    fidelities = {}
    for factor in (None, 1e-3):
        net = diamond()
        for node in net.nodes:
            net.set_memory(node, Memory(depolarising_time_s=0.05))
        service = EntanglementService(net)
        record = service.submit(Request("ab", "a", "b"))
        faults = [] if factor is None else [Fault("memory", "r1", 0.0, None, factor=factor)]
        FaultInjector(net, faults, heartbeats=Heartbeats(), controller="a",
                      memory_of=lambda node, f: Memory(depolarising_time_s=0.05 * f)).start()
        net.sim.run(until=round(0.2 / SPT))
        fidelities[factor] = np.mean([w[0] for w in record.delivered_weights])
    assert fidelities[1e-3] < fidelities[None] - 0.02


def test_random_faults_follow_mtbf_and_mttr_and_are_reproducible():
    links = [f"l{i}" for i in range(50)]
    first = random_faults(links, mtbf_s=10, mttr_s=2, duration_s=1000, rng=np.random.default_rng(5))
    again = random_faults(links, mtbf_s=10, mttr_s=2, duration_s=1000, rng=np.random.default_rng(5))
    assert first == again
    down = sum((f.end_s or 1000) - f.start_s for f in first)
    # alternating renewal: long-run unavailability mttr / (mtbf + mttr) = 1/6; 50 links x 1000 s, 5 % tolerance
    assert down / (50 * 1000) == pytest.approx(2 / 12, rel=0.05)
    assert all(f.end_s is None or f.end_s > f.start_s for f in first)


@pytest.mark.parametrize(("kwargs", "field"), [
    (dict(kind="cut", target="x", start_s=2.0, end_s=1.0), "end_s"),
    (dict(kind="cut", target="x", start_s=-1.0), "start_s"),
    (dict(kind="loss", target="x", start_s=1.0), "extra_loss_db"),
    (dict(kind="memory", target="x", start_s=1.0, factor=1.5), "factor"),
])
def test_bad_faults_name_their_field(kwargs, field):
    with pytest.raises(ParameterError) as error:
        Fault(**kwargs)
    assert error.value.name == field


def test_fault_on_an_unknown_link_is_refused():
    net = diamond()
    with pytest.raises(ParameterError, match="a link of the network"):
        FaultInjector(net, [Fault("cut", "a-b", 1.0)], heartbeats=Heartbeats(), controller="a")


def test_same_seed_same_history():
    runs = [run_cut(0.02, 0.05, until_s=0.07) for _ in range(2)]
    assert runs[0][2].delivery_ticks == runs[1][2].delivery_ticks
    assert runs[0][1].events == runs[1][1].events


def test_central_node_minimises_total_delay():
    graph = nx.Graph()
    graph.add_edge("x", "y", delay_s=1.0)
    graph.add_edge("y", "z", delay_s=1.0)
    graph.add_edge("z", "w", delay_s=5.0)
    graph.add_edge("z", "v", delay_s=1.0)
    assert central_node(graph) == "z"  # total 1 + 2 + 5 + 1 = 9 against y's 1 + 1 + 6 + 2 = 10
    assert math.isclose(sum(nx.single_source_dijkstra_path_length(graph, "z", weight="delay_s").values()), 9)


def test_slo_violation_interval_matches_the_outage():
    from qfabric.control import SLO

    net = diamond()
    service = EntanglementService(net, check_s=2e-4)
    baseline = EntanglementService(diamond())  # the same request without faults sets the rate objective
    probe = baseline.submit(Request("ab", "a", "b"))
    baseline.sim.run(until=round(0.02 / SPT))
    rate = len(probe.delivery_ticks) / 0.02
    window = 0.004
    slo = SLO("ab", window_s=window, rate_hz_min=rate / 3, availability_min=0.9)
    record = service.submit(Request("ab", "a", "b", end_s=0.08), slo=slo)
    cut, repair = 0.03, 0.05
    faults = [Fault("cut", "r1-b", cut, repair), Fault("cut", "r3-b", cut, repair)]
    injector = FaultInjector(net, faults, heartbeats=Heartbeats(1e-3, 3), controller="a",
                             on_down=service.link_down, on_up=service.link_up)
    injector.start()
    net.sim.run(until=round(0.09 / SPT))
    monitor = record.monitor
    assert len(monitor.violations) == 1
    violation = monitor.violations[0]
    back = max(r.repair_detected_s for r in injector.records)
    # the windowed rate falls below a third within one window of the cut, and recovers within one window
    # (plus a check step and the time to the first pairs) of the controller learning of the repair
    assert cut < violation.start_s <= cut + window + 2e-4
    assert back < violation.end_s <= back + window + 0.002
    assert any("rate" in cause for cause in violation.causes)
    budget = monitor.error_budget(0.08)
    assert budget["used_s"] == pytest.approx(violation.end_s - violation.start_s)
    assert budget["left_s"] < 0  # a 20 ms outage in 80 ms overspends a 10 % budget
