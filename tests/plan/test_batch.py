"""The batch engine against the exact analysis and against the event engine on the same chain model.

Tolerance: sample means within Z_MAX = 4 standard errors of the exact value (a false alarm about once in 16,000
comparisons; seeds are fixed, so the test is repeatable). Against the event engine, which is itself a sample,
the difference of the two means within 4 standard errors of the difference.
"""

import math

import numba
import numpy as np
import pytest

from qfabric.errors import ParameterError
from qfabric.network.analysis import nested_exact, swap_asap_exact
from qfabric.network.batch import CHUNK, batch_chain, chain_trials
from qfabric.network.discrete import simulate_chain

Z_MAX = 4.0
TRIALS = 200_000

EXACT_CASES = [
    # scheme, segments, p_gen, p_swap, t_coh, cut-off(s), swap timing, link age
    ("swap-asap", 1, 0.1, 1.0, 40.0, None, "sequential", "reset"),
    ("swap-asap", 4, 0.3, 0.5, 40.0, None, "sequential", "reset"),
    ("swap-asap", 4, 0.9, 0.5, 40.0, 2, "sequential", "reset"),
    ("swap-asap", 4, 0.9, 0.5, 40.0, 2, "simultaneous", "oldest"),
    ("swap-asap", 3, 0.3, 0.5, 40.0, 4, "sequential", "oldest"),
    ("swap-asap", 5, 0.5, 0.8, 40.0, 2, "simultaneous", "reset"),
    ("nested", 4, 0.3, 0.5, 40.0, [4, 8], "sequential", "reset"),
    ("nested", 8, 0.3, 1.0, 40.0, [3, 6, 12], "sequential", "reset"),
]


@pytest.mark.parametrize("scheme,segments,p_gen,p_swap,t_coh,cutoffs,timing,age", EXACT_CASES)
def test_batch_engine_agrees_with_the_exact_analysis(scheme, segments, p_gen, p_swap, t_coh, cutoffs, timing, age):
    w0 = 0.95
    if scheme == "nested":
        exact = nested_exact(segments, p_gen, p_swap, w0, t_coh, cutoffs)
    else:
        exact = swap_asap_exact(segments, p_gen, p_swap, w0, t_coh, cutoffs, timing, age)
    batch = batch_chain(segments, p_gen, p_swap, w0, t_coh, cutoffs, scheme, trials=TRIALS, seed=21,
                        swap_timing=timing, link_age=age)
    assert batch.trials == TRIALS
    assert abs(batch.mean_waiting_time - exact.mean_waiting_time) < Z_MAX * batch.waiting_time_stderr
    assert abs(batch.mean_werner - exact.mean_werner) < Z_MAX * max(batch.werner_stderr, 1e-12)


def test_closed_forms_two_links_and_no_decoherence():
    # E[max of two geometrics] = (3 - 2p) / (p (2 - p)); without memory decay every pair has w0^n exactly
    p = 0.2
    batch = batch_chain(2, p, w0=0.9, trials=TRIALS, seed=4)
    assert abs(batch.mean_waiting_time - (3 - 2 * p) / (p * (2 - p))) < Z_MAX * batch.waiting_time_stderr
    assert batch.mean_werner == pytest.approx(0.81, abs=1e-12)


@pytest.mark.parametrize("scheme,cutoffs,timing,age", [
    ("swap-asap", 3, "simultaneous", "oldest"),
    ("nested", [4, 8], "sequential", "reset"),
])
def test_batch_engine_agrees_with_the_event_engine(scheme, cutoffs, timing, age):
    args = (4, 0.3, 0.7, 0.95, 40.0, cutoffs, scheme)
    event = simulate_chain(*args, samples=3000, seed=2, swap_timing=timing, link_age=age)
    batch = batch_chain(*args, trials=TRIALS, seed=2, swap_timing=timing, link_age=age)
    wait_se = math.hypot(event.waiting_time_stderr, batch.waiting_time_stderr)
    werner_se = math.hypot(event.werner_stderr, batch.werner_stderr)
    assert abs(event.mean_waiting_time - batch.mean_waiting_time) < Z_MAX * wait_se
    assert abs(event.mean_werner - batch.mean_werner) < Z_MAX * werner_se


def test_same_seed_same_trials_and_a_new_seed_new_ones():
    a = chain_trials(4, 0.3, 0.5, 3, trials=1000, seed=9)
    b = chain_trials(4, 0.3, 0.5, 3, trials=1000, seed=9)
    c = chain_trials(4, 0.3, 0.5, 3, trials=1000, seed=10)
    assert np.array_equal(a.waits, b.waits) and np.array_equal(a.stored, b.stored)
    assert not np.array_equal(a.waits, c.waits)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="numba was started with one thread")
@pytest.mark.parametrize("scheme,cutoffs,timing", [("swap-asap", 3, "simultaneous"), ("nested", [4, 8], "sequential")])
def test_a_seed_gives_the_same_trials_on_one_thread_and_on_two(scheme, cutoffs, timing):
    # more than two chunks, so that two threads really share the work; numba's thread count is the default
    trials = 2 * CHUNK + 1000
    before = numba.get_num_threads()
    runs = []
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            runs.append(chain_trials(4, 0.3, 0.5, cutoffs, scheme, trials, seed=17, swap_timing=timing))
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(runs[0].waits, runs[1].waits) and np.array_equal(runs[0].stored, runs[1].stored)
    three = chain_trials(4, 0.3, 0.5, cutoffs, scheme, trials, seed=17, swap_timing=timing, threads=3)
    assert np.array_equal(runs[0].waits, three.waits)
    # the chunks are not copies of each other: each has its own generator
    assert not np.array_equal(runs[0].waits[:1000], runs[0].waits[CHUNK:CHUNK + 1000])


def test_a_seed_sequence_is_not_advanced_and_progress_counts_up_to_the_trials():
    seed = np.random.SeedSequence(5, spawn_key=(3,))
    done = []
    a = chain_trials(2, 0.5, trials=CHUNK + 10, seed=seed, threads=2, progress=done.append)
    b = chain_trials(2, 0.5, trials=CHUNK + 10, seed=seed, threads=1)
    assert np.array_equal(a.waits, b.waits)
    assert done == [CHUNK, CHUNK + 10]


@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.9])
def test_a_single_link_waits_a_geometric_number_of_attempts(p):
    # P(wait = k) = (1 - p)^(k - 1) p for the first few k, each within 4 standard errors of its binomial count;
    # p = 1 succeeds at the first attempt, always
    waits = chain_trials(1, p, trials=TRIALS, seed=8).waits
    assert waits.min() >= 1
    for k in range(1, 6):
        expected = (1 - p) ** (k - 1) * p
        observed = np.mean(waits == k)
        assert abs(observed - expected) < Z_MAX * math.sqrt(expected * (1 - expected) / TRIALS) + 1e-12
    assert set(chain_trials(1, 1.0, trials=100, seed=8).waits) == {1}


def test_storage_time_gives_the_werner_parameter():
    # one trial's Werner parameter is w0^n exp(-stored / t_coh): the two-link case by hand
    run = chain_trials(2, 0.4, trials=50_000, seed=3)
    w = run.werner(0.9, 10.0)
    assert np.allclose(w, 0.81 * np.exp(-run.stored / 10.0))
    # on two links the stored time is |a - b|, the gap between two geometric successes: E = 2(1-p)/(p(2-p))
    p = 0.4
    expected = 2 * (1 - p) / (p * (2 - p))
    assert abs(run.stored.mean() - expected) < Z_MAX * run.stored.std(ddof=1) / math.sqrt(len(run.stored))


def test_bad_parameters_are_refused():
    with pytest.raises(ParameterError, match="power of two"):
        batch_chain(3, 0.5, scheme="nested", trials=10)
    with pytest.raises(ParameterError, match="p_gen"):
        batch_chain(2, 0.0, trials=10)
    with pytest.raises(ParameterError, match="trials"):
        batch_chain(2, 0.5, trials=1)
    with pytest.raises(ParameterError, match="one cut-off per nesting level"):
        batch_chain(4, 0.5, cutoffs=[3], scheme="nested", trials=10)
    with pytest.raises(ParameterError, match="cutoffs"):
        batch_chain(4, 0.5, cutoffs=-2, trials=10)
    with pytest.raises(ParameterError, match="swap_timing"):
        batch_chain(4, 0.5, trials=10, swap_timing="parallel")
    with pytest.raises(ParameterError, match="threads"):
        batch_chain(4, 0.5, trials=10, threads=0)
    with pytest.raises(ParameterError, match="seed"):
        batch_chain(4, 0.5, trials=10, seed=-1)
