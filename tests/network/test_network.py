"""The network engine with many circuits: the quantum switch, multiplexing, crossing paths, classical messages,
forwarding state, failures learned by message, and agreement with the previous chain engine."""

import math

import numpy as np
import pytest

from qfabric.errors import ParameterError
from qfabric.hardware import Memory
from qfabric.network import LinkModel, Network, NodeModel, Protocol, repeater_chain
from qfabric.network.analysis import switch_capacity, two_link_waiting_time
from qfabric.network.discrete import simulate_chain
from qfabric.network.engine import weighted_split
from qfabric.sim import Simulator

PERFECT = (1.0, 0.0, 0.0, 0.0)


def link(p=0.1, capacity=1, delay=0, herald=1, period=1):
    return LinkModel(success_probability=p, attempt_period=period, herald_delay=herald, state=PERFECT,
                     capacity=capacity, classical_delay=delay)


def network(edges, *, multiplexing="statistical", seed=1, p=0.1, capacity=1, swap=1.0, delay=0):
    sim = Simulator(seed=seed)
    net = Network(sim, multiplexing=multiplexing, seconds_per_tick=1.0)
    for a, b in edges:
        for node in (a, b):
            if node not in net.nodes:
                net.add_node(node, NodeModel(swap_success_probability=swap))
        net.add_link(f"{a}-{b}", a, b, link(p, capacity, delay))
    return sim, net


def serve(net, name, path, protocol=None):
    net.install_route(name, path)
    circuit = net.open_circuit(name, path[0], protocol or Protocol())
    net.activate(circuit)
    return circuit


def batch_rate(ticks, horizon, batches=20):
    """Deliveries per tick and its standard error from batch means (the deliveries are correlated in time)."""
    counts = np.histogram(ticks, bins=batches, range=(0, horizon))[0] / (horizon / batches)
    return counts.mean(), counts.std(ddof=1) / math.sqrt(batches)


@pytest.mark.parametrize("users,p_swap", [(3, 1.0), (4, 1.0), (3, 0.5)])
def test_a_star_serving_every_pair_of_users_is_the_quantum_switch(users, p_swap):
    # Vardoyan, Guha, Nain, Towsley (SIGMETRICS PER 2019; capacity region 2021), one qubit per link, derived for the
    # discrete-step model in qfabric.network.analysis.switch_capacity; tolerance: 4 batch-means standard errors
    p, horizon = 0.05, 400_000
    leaves = [f"u{i}" for i in range(users)]
    sim, net = network([(u, "hub") for u in leaves], p=p, swap=p_swap)
    circuits = [serve(net, f"{a}{b}", [a, "hub", b]) for i, a in enumerate(leaves) for b in leaves[i + 1:]]
    sim.run(until=horizon)
    ticks = sorted(t for c in circuits for t in c.stats.delivery_ticks)
    rate, stderr = batch_rate(ticks, horizon)
    expected = switch_capacity(users, p, p_swap)
    assert abs(rate - expected) < 4 * stderr, (rate, expected, stderr)
    assert stderr < 0.02 * expected  # the test can tell a 10 % error apart
    assert net.audit() == []
    # every pair of users is served, none is starved (the hub pairs whoever waited longest)
    per_pair = [len(c.stats.delivery_ticks) for c in circuits]
    assert min(per_pair) > 0.7 * max(per_pair)


def test_switch_capacity_of_two_users_is_the_two_link_closed_form():
    # REFERENCES.md s1: two links both ready after E[max] = (3 - 2p) / (p (2 - p)) steps
    for p in (0.05, 0.3, 0.9):
        assert switch_capacity(2, p) == pytest.approx(1 / two_link_waiting_time(p), rel=1e-12)
    # and the continuous-time limit of the switch papers: q k (k - 1) mu / (2k - 1)
    assert switch_capacity(5, 1e-6, 0.5) / 1e-6 == pytest.approx(0.5 * 5 * 4 / 9, rel=1e-4)


Y = [("u1", "h"), ("u2", "h"), ("h", "v")]


def y_rates(multiplexing, horizon=200_000):
    sim, net = network(Y, multiplexing=multiplexing, capacity=2, p=0.1)
    one = serve(net, "one", ["u1", "h", "v"])
    two = serve(net, "two", ["u2", "h", "v"])
    sim.run(until=horizon)
    assert net.audit() == []
    return [batch_rate(c.stats.delivery_ticks, horizon) for c in (one, two)]


def test_buffer_space_gives_each_circuit_its_share_and_statistical_gives_at_least_as_much():
    (r1, e1), (r2, e2) = y_rates("buffer-space")
    # buffer-space: the shared link's two qubits per end are split one each; the rest is symmetric
    assert abs(r1 - r2) < 4 * math.hypot(e1, e2)
    # each share behaves like a circuit that owns one qubit on the shared link
    sim, net = network([("u1", "h"), ("h", "v")], capacity=2, p=0.1)
    net.links[1].pool_a.resize(1)
    net.links[1].pool_b.resize(1)
    alone = serve(net, "alone", ["u1", "h", "v"])
    sim.run(until=200_000)
    ra, ea = batch_rate(alone.stats.delivery_ticks, 200_000)
    assert abs(r1 - ra) < 4 * math.hypot(e1, ea)
    (s1, f1), (s2, f2) = y_rates("statistical")
    assert abs(s1 - s2) < 4 * math.hypot(f1, f2)
    assert s1 + s2 > r1 + r2 - 4 * math.hypot(e1, e2, f1, f2)  # at least as high (here clearly higher)
    assert s1 + s2 > 1.05 * (r1 + r2)


def test_weighted_split_is_proportional_and_exact():
    rng = np.random.default_rng(4)
    for _ in range(500):
        weights = list(rng.uniform(0.01, 10, size=rng.integers(1, 8)))
        total = int(rng.integers(0, 100))
        shares = weighted_split(total, weights)
        assert sum(shares) == total
        assert all(abs(s - total * w / sum(weights)) < 1 for s, w in zip(shares, weights, strict=True))
    assert weighted_split(2, [1.0, 1.0, 1.0]) == [1, 1, 0]  # ties to the first
    assert weighted_split(4, [3.0, 1.0]) == [3, 1]


def weighted_y(multiplexing, weights, horizon=200_000):
    sim, net = network(Y, multiplexing=multiplexing, capacity=4, p=0.1)
    circuits = []
    for name, leaf, weight in (("one", "u1", weights[0]), ("two", "u2", weights[1])):
        net.install_route(name, [leaf, "h", "v"])
        circuits.append(net.open_circuit(name, leaf, Protocol(), weight=weight))
        net.activate(circuits[-1])
    sim.run(until=horizon)
    assert net.audit() == []
    return [len(c.stats.delivery_ticks) for c in circuits], circuits


def test_buffer_space_splits_a_shared_link_by_circuit_weight():
    _, (one, two) = weighted_y("buffer-space", (3.0, 1.0), horizon=10)
    shared = one.links[1]
    assert (one.pool_right[1].capacity, two.pool_right[1].capacity) == (3, 1)
    assert shared.pool_a.capacity == 4
    (heavy, light), _ = weighted_y("buffer-space", (3.0, 1.0))
    (even_1, even_2), _ = weighted_y("buffer-space", (1.0, 1.0))
    assert heavy > 1.3 * light  # three qubits against one on the shared link
    assert abs(even_1 - even_2) < 0.1 * (even_1 + even_2)


def test_statistical_sharing_favours_the_heavier_circuit():
    (heavy, light), _ = weighted_y("statistical", (4.0, 1.0))
    (even_1, even_2), _ = weighted_y("statistical", (1.0, 1.0))
    assert heavy > 1.15 * light
    assert abs(even_1 - even_2) < 0.1 * (even_1 + even_2)
    with pytest.raises(ParameterError, match="weight"):
        network(Y)[1].open_circuit("x", "u1", Protocol(), weight=0)


@pytest.mark.parametrize("multiplexing", ["statistical", "buffer-space"])
def test_paths_crossing_links_in_opposite_directions_both_deliver(multiplexing):
    line = [("a", "b"), ("b", "c"), ("c", "d")]
    sim, net = network(line, multiplexing=multiplexing, capacity=3, p=0.2)
    east = serve(net, "east", ["a", "b", "c", "d"], Protocol(cutoffs=50))
    west = serve(net, "west", ["d", "c", "b", "a"], Protocol(cutoffs=50))
    inner = serve(net, "inner", ["c", "b"], Protocol(cutoffs=50))
    for until in range(1000, 50_001, 1000):
        sim.run(until=until)
        assert net.audit() == [], until
    assert all(len(c.stats.delivery_ticks) > 200 for c in (east, west, inner))
    assert not net.frozen_circuits()


def test_a_swap_outcome_reaches_the_far_ends_after_the_sum_of_the_hop_latencies():
    sim = Simulator()
    net = Network(sim, seconds_per_tick=1.0)
    delays = [7, 3, 11]
    for i, d in enumerate(delays):
        net.add_link(f"l{i}", f"n{i}", f"n{i + 1}", link(p=1.0, delay=d, herald=10, period=10))
    circuit = serve(net, "c", ["n0", "n1", "n2", "n3"])
    assert [circuit._delay(1, 3), circuit._delay(3, 0), circuit._delay(2, 2)] == [14, 21, 0]
    sim.run(until=10)  # all three links herald at tick 10 and both repeaters swap at once
    assert circuit.stats.swaps == 2 and not circuit.stats.delivery_ticks
    # node 1's record travels 3 + 11 to n3, node 2's 7 + 3 to n0: the pair is known at both ends at 10 + 14
    sim.run(until=23)
    assert not circuit.stats.delivery_ticks
    sim.run(until=24)
    assert circuit.stats.delivery_ticks == [24]


def test_classical_jitter_and_loss_add_delay_hop_by_hop():
    sim = Simulator(seed=4)
    net = Network(sim, seconds_per_tick=1.0)
    hops = [LinkModel(1.0, 10, 10, PERFECT, classical_delay=100, classical_jitter=20, classical_loss_probability=0.2,
                      retransmit_timeout=1000) for _ in range(3)]
    for i, model in enumerate(hops):
        net.add_link(f"l{i}", f"n{i}", f"n{i + 1}", model)
    circuit = serve(net, "c", ["n0", "n1", "n2", "n3"])
    samples = np.array([circuit._delay(0, 3) for _ in range(20_000)])
    assert samples.min() >= 300
    # each hop: 100 + U{0..20} + 1000 x (geometric retransmissions, mean 0.2 / 0.8)
    expected = 3 * (100 + 10 + 1000 * 0.2 / 0.8)
    assert abs(samples.mean() - expected) < 4 * samples.std() / math.sqrt(samples.size)


def test_a_failed_swap_frees_the_far_memories_only_when_the_news_arrives():
    sim = Simulator(seed=1)
    net = Network(sim, seconds_per_tick=1.0)
    net.add_node("r", NodeModel(swap_success_probability=1e-12))  # every swap fails
    net.add_link("a-r", "a", "r", link(p=1.0, delay=40, herald=10, period=10))
    net.add_link("r-b", "r", "b", link(p=1.0, delay=5, herald=10, period=10))
    circuit = serve(net, "c", ["a", "r", "b"])
    sim.run(until=10)
    a_side, b_side = net.links[0].pool_a, net.links[1].pool_b
    assert circuit.stats.swaps_failed == 1 and a_side.free == 0 and b_side.free == 0
    sim.run(until=14)
    assert b_side.free == 0
    sim.run(until=15)  # r's failure message reaches b after 5 ticks; b frees its qubit and starts again
    assert b_side.free == 0 and len(net.links[1].generator.processes) == 1
    assert a_side.free == 0 and not net.links[0].generator.processes
    sim.run(until=50)  # ... and reaches a after 40
    assert len(net.links[0].generator.processes) == 1
    assert circuit.stats.doomed_discards == 1 and net.audit() == []


def test_circuits_follow_the_installed_forwarding_state():
    sim, net = network([("a", "b"), ("b", "c"), ("a", "c")])
    net.install_route("x", ["a", "b", "c"])
    assert net.forwarding["b"]["x"] == ("a", "c")
    assert net.open_circuit("x", "a", Protocol()).nodes == ["a", "b", "c"]
    with pytest.raises(ParameterError, match="forwarding state installed at 'a'"):
        net.open_circuit("y", "a", Protocol())
    with pytest.raises(ParameterError, match="joined by a link"):
        net.install_route("z", ["a", "d"])


def test_deactivation_returns_every_memory():
    sim, net = network(Y, capacity=2, p=0.3)
    one = serve(net, "one", ["u1", "h", "v"], Protocol(cutoffs=20))
    two = serve(net, "two", ["u2", "h", "v"], Protocol(cutoffs=20))
    sim.run(until=5_000)
    for circuit in (one, two):
        net.deactivate(circuit)
        sim.run(until=sim.now + 100)
        assert net.audit() == []
    assert all(pool.free == pool.capacity for link in net.links for pool in (link.pool_a, link.pool_b))
    assert sim.run() == "empty"


def test_a_single_circuit_reproduces_the_previous_chain_engine():
    # Values from the chain engine that preceded the network engine (qfabric commit e5eb6e6, RepeaterChain),
    # same seeds and random stream names: the model of a chain without classical delays is unchanged (the memory
    # noise is computed in another basis since, hence 1e-12 on the means of real numbers; counts are exact).
    r = simulate_chain(4, 0.3, 0.5, 0.95, 40.0, [4, 8], "nested", samples=500, seed=11)
    assert (r.mean_waiting_time, r.mean_werner, r.events) == (36.63, pytest.approx(0.6900701813744029, abs=1e-12),
                                                              33661)
    r = simulate_chain(3, 0.2, 0.7, 0.9, 30.0, 5, "swap-asap", samples=400, seed=2)
    assert (r.mean_waiting_time, r.mean_werner, r.events) == (19.525, pytest.approx(0.6370724891043601, abs=1e-12),
                                                              8291)
    sim = Simulator(seed=3)
    seg = LinkModel(0.3, 2, 2, (0.9, 0.05, 0.03, 0.02), capacity=3)
    chain = repeater_chain(sim, [seg] * 4, [NodeModel(swap_success_probability=0.7)] * 5,
                           memories=Memory(depolarising_time_s=300.0), seconds_per_tick=1.0, cutoffs=40,
                           purification_rounds=1, purification_spans=[1, 4])
    chain.network.activate(chain)
    sim.run(until=20_000)
    chain.network.finish()
    s = chain.stats
    assert (len(s.delivery_ticks), sum(s.delivery_ticks), s.swaps, s.swaps_failed, s.cutoff_discards,
            s.purifications) == (211, 2086042, 5199, 1599, 151, 9395)
    assert [lk.stats.attempts for lk in chain.network.links] == [13856, 17768, 16416, 12476]


def test_buffer_space_with_more_circuits_than_qubits_names_the_circuit_left_out():
    sim, net = network([("a", "b")], multiplexing="buffer-space", capacity=2, p=0.3)
    circuits = [serve(net, name, ["a", "b"]) for name in ("x", "y", "z")]
    sim.run(until=2_000)
    assert [c.no_memory_share for c in circuits] == [set(), set(), {"a-b"}]
    assert [len(c.stats.delivery_ticks) > 100 for c in circuits] == [True, True, False]
    net.deactivate(circuits[0])  # its qubit goes to the circuit that had none
    sim.run(until=4_000)
    assert circuits[2].no_memory_share == set() and circuits[2].stats.delivery_ticks


def test_memory_decay_equals_composing_both_memories_pauli_channels():
    from qfabric.network.circuit import Pair
    from qfabric.states import compose

    cases = [(Memory(t1_s=3.0, t2_s=1.0), Memory(depolarising_time_s=2.0)), (Memory(t2_s=0.005), Memory(t2_s=0.005)),
             (Memory(t1_s=0.5, depolarising_time_s=4.0), Memory())]
    for left, right in cases:
        sim = Simulator()
        net = Network(sim, seconds_per_tick=1e-3)
        lk = net.add_link("l", "a", "b", link(), memory_a=left, memory_b=right)
        pair = Pair(0, 1, (0.8, 0.1, 0.06, 0.04), 0, 0, 0, lk.pool_a, lk.pool_b, 0)
        pair.decay_to(700, net.seconds_per_tick)
        expected = compose(compose((0.8, 0.1, 0.06, 0.04), left.pauli_probabilities(0.7)),
                           right.pauli_probabilities(0.7))
        assert pair.weights == pytest.approx(expected, abs=1e-14)
        assert pair.t_state == 700


def test_each_scheme_swaps_the_pairs_it_should():
    # four certain links; the head link's herald arrives at tick 10, the others' at tick 1. Swap-asap joins the
    # three right links at once; nested only the pair its level-0 node 3 owns; sequential waits for the head.
    # Every scheme then delivers the product of the four link states (no memory noise) at tick 10.
    from qfabric.states import compose

    state = (0.9, 0.05, 0.03, 0.02)
    expected = compose(compose(state, state), compose(state, state))
    for scheme, early_swaps in (("swap-asap", 2), ("nested", 1), ("sequential", 0)):
        sim = Simulator(seed=5)
        net = Network(sim, seconds_per_tick=1.0)
        for i in range(4):
            net.add_link(f"l{i}", f"n{i}", f"n{i + 1}", LinkModel(1.0, 20, 10 if i == 0 else 1, state))
        circuit = serve(net, "c", [f"n{i}" for i in range(5)], Protocol(scheme=scheme))
        sim.run(until=5)
        assert circuit.stats.swaps == early_swaps, scheme
        sim.run(until=10)
        assert circuit.stats.swaps == 3 and circuit.stats.delivery_ticks == [10], scheme
        assert circuit.stats.delivered_weights[0] == pytest.approx(expected)
        assert net.audit() == []


def test_youngest_first_delivers_fresher_pairs_than_oldest_first():
    fidelity = {}
    for selection in ("oldest", "youngest", "random"):
        sim = Simulator(seed=8)
        net = Network(sim, qubit_selection=selection, seconds_per_tick=1e-3)
        memory = Memory(depolarising_time_s=0.5)
        fast = LinkModel(0.5, 1, 1, PERFECT, capacity=4)
        slow = LinkModel(0.05, 1, 1, PERFECT, capacity=4)
        net.add_link("fast", "a", "r", fast, memory_a=memory, memory_b=memory)
        net.add_link("slow", "r", "b", slow, memory_a=memory, memory_b=memory)
        circuit = serve(net, "c", ["a", "r", "b"], Protocol(cutoffs=200))
        sim.run(until=50_000)
        fidelity[selection] = np.mean([w[0] for w in circuit.stats.delivered_weights])
    # the fast link's pairs pile up at the repeater; using the newest one wastes less storage time
    assert fidelity["youngest"] > fidelity["random"] > fidelity["oldest"]
