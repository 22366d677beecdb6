"""The event kernel: ordering, cancellation, rescheduling, stop conditions, seeded streams."""

import numpy as np
import pytest

from qfabric.errors import ParameterError
from qfabric.sim import Simulator, stream_seed


def test_events_run_in_time_then_priority_then_insertion_order():
    sim = Simulator()
    log = []
    sim.schedule(10, log.append, "t10")
    sim.schedule(5, log.append, "t5-second")
    sim.schedule(5, log.append, "t5-first", priority=-1)
    sim.schedule(5, log.append, "t5-third")
    assert sim.run() == "empty"
    assert log == ["t5-first", "t5-second", "t5-third", "t10"]
    assert sim.now == 10 and sim.events_processed == 4


def test_cancel_and_reschedule():
    sim = Simulator()
    log = []
    a = sim.schedule(3, log.append, "a")
    b = sim.schedule(4, log.append, "b")
    sim.cancel(a)
    sim.cancel(a)  # idempotent
    b2 = sim.reschedule(b, 1)
    sim.run()
    assert log == ["b"]
    assert not b.active and not b2.active
    assert sim.events_cancelled == 2


def test_run_until_includes_the_boundary_and_resumes():
    sim = Simulator()
    log = []
    for t in (1, 5, 9):
        sim.schedule(t, log.append, t)
    assert sim.run(until=5) == "until"
    assert log == [1, 5] and sim.now == 5
    assert sim.run(until=100) == "empty"
    assert log == [1, 5, 9] and sim.now == 100


def test_stop_from_callback_and_max_events():
    sim = Simulator()

    def tick(n):
        if n == 3:
            sim.stop()
        sim.schedule(1, tick, n + 1)

    sim.schedule(0, tick, 0)
    assert sim.run() == "stopped" and sim.now == 3
    assert sim.run(max_events=2) == "max_events" and sim.now == 5


def test_scheduling_in_the_past_is_an_error():
    sim = Simulator()
    sim.schedule(5, lambda: None)
    sim.run()
    with pytest.raises(ParameterError):
        sim.schedule_at(2, lambda: None)
    with pytest.raises(ParameterError):
        Simulator(seed=-1)


def test_streams_are_reproducible_and_independent_of_creation_order():
    first = Simulator(seed=42)
    a1 = first.rng("link-a").random(5)
    b1 = first.rng("link-b").random(5)
    second = Simulator(seed=42)
    b2 = second.rng("link-b").random(5)  # created first this time, plus an extra stream
    second.rng("extra").random(3)
    a2 = second.rng("link-a").random(5)
    assert np.array_equal(a1, a2) and np.array_equal(b1, b2)
    assert not np.array_equal(a1, b1)
    assert not np.array_equal(Simulator(seed=43).rng("link-a").random(5), a1)
    assert stream_seed(1, "x").spawn_key != stream_seed(1, "y").spawn_key
