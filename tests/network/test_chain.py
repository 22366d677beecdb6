"""The network engine running a single circuit on a line (a repeater chain): timing, purification, swaps, cut-offs,
memory accounting."""

import math

import pytest

from qfabric.errors import ParameterError
from qfabric.hardware import Memory
from qfabric.network import LinkModel, NodeModel, repeater_chain
from qfabric.sim import Simulator
from qfabric.states import BellDiagonal, dejmps, swap


def test_delivery_waits_for_the_swap_messages():
    sim = Simulator()
    seg = LinkModel(success_probability=1.0, attempt_period=10, herald_delay=10, state=(1, 0, 0, 0),
                       classical_delay=7)
    delivered = []
    chain = repeater_chain(sim, [seg, seg], on_delivery=lambda pair, now: delivered.append(now))
    chain.network.activate(chain)
    sim.run(until=17)
    assert delivered == [17]  # both herald at 10, swap at 10, the frame reaches both ends at 17


def test_purified_pairs_have_the_dejmps_state():
    sim = Simulator(seed=4)
    state = BellDiagonal((0.8, 0.1, 0.06, 0.04))
    seg = LinkModel(success_probability=0.5, attempt_period=1, herald_delay=1, state=state.weights, capacity=2)
    chain = repeater_chain(sim, [seg], purification_rounds=1, purification_protocol="dejmps", seconds_per_tick=1.0)
    chain.network.activate(chain)
    sim.run(until=20_000)
    chain.network.finish()
    p_ok, out = dejmps(state, state)
    stats = chain.stats
    assert stats.delivered_weights[0] == pytest.approx(out.weights)
    seg_stats = chain.network.links[0].stats
    ok = 1 - seg_stats.purifications_failed / seg_stats.purifications
    assert abs(ok - p_ok) < 4 * math.sqrt(p_ok * (1 - p_ok) / seg_stats.purifications)


def test_swap_asap_cutoff_bounds_storage_decay():
    sim = Simulator(seed=9)
    w0, t_coh, cutoff = 0.95, 20.0, 3
    mem = Memory(depolarising_time_s=2 * t_coh)
    seg_fast = LinkModel(success_probability=0.5, attempt_period=1, herald_delay=1,
                            state=BellDiagonal.werner(w0).weights)
    seg_slow = LinkModel(success_probability=0.05, attempt_period=1, herald_delay=1,
                            state=BellDiagonal.werner(w0).weights)
    chain = repeater_chain(sim, [seg_fast, seg_slow], memories=mem, cutoffs=cutoff, seconds_per_tick=1.0,
                          regenerate_covered=False)
    chain.network.activate(chain)
    sim.run(until=50_000)
    werner = [(4 * w[0] - 1) / 3 for w in chain.stats.delivered_weights]
    assert chain.stats.cutoff_discards > 100
    assert min(werner) >= w0**2 * math.exp(-cutoff / t_coh) - 1e-12


@pytest.mark.parametrize("defer_swaps", [False, True])
def test_inline_and_deferred_swaps_agree_on_long_chains(defer_swaps):
    # physical mode swaps inline; the result must match deferred swapping statistically and never
    # swap a pair twice (every delivered pair's fidelity is a product of five link states here)
    sim = Simulator(seed=21)
    seg = LinkModel(success_probability=0.2, attempt_period=1, herald_delay=1,
                       state=BellDiagonal.werner(0.9).weights, capacity=2)
    chain = repeater_chain(sim, [seg] * 5, defer_swaps=defer_swaps, seconds_per_tick=1.0)
    chain.network.activate(chain)
    sim.run(until=20_000)
    werner = {round((4 * w[0] - 1) / 3, 9) for w in chain.stats.delivered_weights}
    assert werner == {round(0.9**5, 9)}
    assert len(chain.stats.delivered_weights) > 500
    # no swap fails: four swaps per delivered pair, plus a few in pairs still being built at the end
    assert 0 <= chain.stats.swaps - 4 * len(chain.stats.delivered_weights) <= 4 * seg.capacity


def test_purification_at_chosen_spans_gives_the_recurrence_states():
    # no memory noise and certain generation: every delivered pair has exactly the composed state
    s = BellDiagonal((0.85, 0.07, 0.05, 0.03))
    seg = LinkModel(success_probability=1.0, attempt_period=1, herald_delay=1, state=s.weights, capacity=3)
    sim = Simulator(seed=2)
    chain = repeater_chain(sim, [seg] * 4, scheme="nested", purification_rounds=1, purification_spans=[1, 2],
                          seconds_per_tick=1.0)
    chain.network.activate(chain)
    sim.run(until=3_000)
    p1 = dejmps(s, s)[1]
    p2 = dejmps(swap(p1, p1), swap(p1, p1))[1]
    expected = swap(p2, p2).weights
    assert len(chain.stats.delivered_weights) > 50
    for w in chain.stats.delivered_weights:
        assert w == pytest.approx(expected)
    assert chain.stats.purifications_failed > 0  # the purification dice were rolled

    sim = Simulator(seed=2)
    end_to_end = repeater_chain(sim, [seg] * 2, purification_rounds=1, purification_spans=[2], seconds_per_tick=1.0)
    end_to_end.network.activate(end_to_end)
    sim.run(until=1_000)
    pair = swap(s, s)
    assert end_to_end.stats.delivered_weights[0] == pytest.approx(dejmps(pair, pair)[1].weights)


def test_purification_spans_must_exist_in_the_scheme_and_fit_in_memory():
    seg = LinkModel(success_probability=0.5, attempt_period=1, herald_delay=1, state=(1, 0, 0, 0), capacity=2)
    with pytest.raises(ParameterError, match="purification_spans"):
        repeater_chain(Simulator(), [seg] * 4, purification_rounds=1, purification_spans=[2])
    with pytest.raises(ParameterError, match="purification_spans"):
        repeater_chain(Simulator(), [seg] * 4, scheme="nested", purification_rounds=1, purification_spans=[3])
    with pytest.raises(ParameterError, match="at least 3 memories"):
        repeater_chain(Simulator(), [seg] * 4, scheme="nested", purification_rounds=1, purification_spans=[1, 2])


def test_simultaneous_identical_pairs_are_kept_apart():
    # two identical pairs herald on one tick at node 1's left; only one partner arrives. While the first
    # swap's handshake runs, the second must stay held (a value-equal pair must not be unheld for it).
    sim = Simulator(seed=1)
    left = LinkModel(success_probability=1.0, attempt_period=10, herald_delay=10, state=(1, 0, 0, 0),
                        capacity=2, classical_delay=3)
    right = LinkModel(success_probability=1.0, attempt_period=10, herald_delay=10, state=(1, 0, 0, 0),
                         capacity=1, classical_delay=3)
    chain = repeater_chain(sim, [left, right], scheme="nested", swap_handshake=True)
    chain.network.activate(chain)
    for until in range(5, 500, 5):
        sim.run(until=until)
        assert chain.network.audit() == [], f"at tick {until}"
    assert len(chain.stats.delivery_ticks) > 20


BUSY_RUNS = [
    ("swap-asap", {"cutoffs": 4}),
    ("nested", {"cutoffs": [3, 6]}),
    ("swap-asap", {"purification_rounds": 1, "purification_spans": [1, 4], "cutoffs": 40}),
    ("nested", {"purification_rounds": 1, "purification_spans": [2], "cutoffs": [30, 60]}),
]


@pytest.mark.parametrize("scheme,extra", BUSY_RUNS)
def test_memory_accounting_holds_throughout_a_busy_run(scheme, extra):
    sim = Simulator(seed=3)
    capacity = 3 if "purification_rounds" in extra else 1 + (scheme == "nested")  # nested: two lanes
    seg = LinkModel(success_probability=0.3, attempt_period=2, herald_delay=2, state=(0.9, 0.05, 0.03, 0.02),
                       capacity=capacity, classical_delay=1)
    node = NodeModel(swap_success_probability=0.7)
    chain = repeater_chain(sim, [seg] * 4, [node] * 5, scheme=scheme, **extra)
    chain.network.activate(chain)
    for until in range(50, 20_000, 50):
        sim.run(until=until)
        assert chain.network.audit() == [], f"at tick {until}"
    assert len(chain.stats.delivery_ticks) > 10
