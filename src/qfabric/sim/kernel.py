"""A discrete-event kernel: integer clock, heap event queue, cancellable timers, seeded random streams.

The clock counts integer ticks; the network layers use one tick = one picosecond
(:data:`qfabric.units.TICKS_PER_S`), the discrete chain model one tick = one attempt.
Events at the same tick run in order of ``priority`` (lower first), then in the order they
were scheduled, so a run is deterministic.

>>> sim = Simulator(seed=7)
>>> seen = []
>>> _ = sim.schedule(5, seen.append, "b")
>>> _ = sim.schedule(5, seen.append, "a", priority=-1)
>>> timer = sim.schedule(3, seen.append, "never")
>>> sim.cancel(timer)
>>> sim.run()
'empty'
>>> seen, sim.now
(['a', 'b'], 5)
"""

from __future__ import annotations

import gc
import hashlib
import heapq
from collections.abc import Callable
from typing import Any

import numpy as np

from qfabric.errors import ParameterError


class Event:
    """A scheduled callback; keep it to cancel it (``Simulator.cancel``). ``active`` is False once cancelled or run.

    The queue holds ``(time, priority, seq, event)`` tuples: ``seq`` is unique, so events are never compared.
    """

    __slots__ = ("time", "priority", "callback", "args")

    def __init__(self, time: int, priority: int, callback: Callable[..., Any] | None, args: tuple):
        self.time, self.priority, self.callback, self.args = time, priority, callback, args

    @property
    def active(self) -> bool:
        return self.callback is not None

    def __repr__(self) -> str:
        name = getattr(self.callback, "__qualname__", repr(self.callback))
        return f"Event(time={self.time}, priority={self.priority}, callback={name})"


class PausedGC:
    """``with PausedGC(): ...`` runs without Python's cyclic garbage collector and restores it afterwards.

    Events and pairs are many short-lived objects without reference cycles: the collector would spend a fifth of
    a large run scanning them, so :meth:`Simulator.run` pauses it.
    """

    def __init__(self) -> None:
        self.was_enabled = False

    def __enter__(self) -> PausedGC:
        self.was_enabled = gc.isenabled()
        gc.disable()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.was_enabled:
            gc.enable()


def stream_seed(seed: int, name: str) -> np.random.SeedSequence:
    """The seed sequence of the random stream ``name`` under scenario ``seed``.

    Derived from the name, not from creation order, so adding a component never shifts
    another component's numbers.
    """
    key = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")
    return np.random.SeedSequence(entropy=seed, spawn_key=(key,))


class Simulator:
    """The event loop. ``schedule`` / ``schedule_at`` return an :class:`Event` that ``cancel`` revokes."""

    def __init__(self, seed: int = 0):
        if not isinstance(seed, int) or seed < 0:
            raise ParameterError("seed", seed, "a non-negative integer")
        self.seed = seed
        self.now = 0
        self.events_processed = 0
        self.events_cancelled = 0
        self._queue: list[tuple[int, int, int, Event]] = []
        self._seq = 0
        self._stop_requested = False
        self._streams: dict[str, np.random.Generator] = {}

    def schedule_at(self, time: int, callback: Callable[..., Any], *args: Any, priority: int = 0) -> Event:
        """Run ``callback(*args)`` at absolute tick ``time`` (not before ``now``)."""
        if time < self.now:
            raise ParameterError("time", time, f"a tick not before now ({self.now})")
        self._seq += 1
        event = Event(time, priority, callback, args)
        heapq.heappush(self._queue, (time, priority, self._seq, event))
        return event

    def schedule(self, delay: int, callback: Callable[..., Any], *args: Any, priority: int = 0) -> Event:
        """Run ``callback(*args)`` ``delay`` ticks from now."""
        if delay < 0:
            raise ParameterError("delay", delay, "a non-negative number of ticks")
        self._seq += 1
        time = self.now + delay
        event = Event(time, priority, callback, args)
        heapq.heappush(self._queue, (time, priority, self._seq, event))
        return event

    def cancel(self, event: Event | None) -> None:
        """Revoke a pending event in O(1) (it is skipped when it reaches the head of the queue)."""
        if event is not None and event.callback is not None:
            event.callback = None
            self.events_cancelled += 1

    def reschedule(self, event: Event, time: int, priority: int = 0) -> Event:
        """Move a pending event to tick ``time``; returns the new handle."""
        callback, args = event.callback, event.args
        if callback is None:
            raise ParameterError("event", event, "a pending event")
        self.cancel(event)
        return self.schedule_at(time, callback, *args, priority=priority)

    def stop(self) -> None:
        """Ask :meth:`run` to return after the current event."""
        self._stop_requested = True

    @property
    def pending(self) -> int:
        """Entries in the queue, including cancelled ones not yet skipped."""
        return len(self._queue)

    def run(self, until: int | None = None, max_events: int | None = None) -> str:
        """Process events in time order. Returns why it stopped: ``'until'``, ``'empty'``, ``'stopped'``,
        ``'max_events'``. With ``until``, events at exactly ``until`` run and the clock ends at ``until``.
        """
        queue = self._queue
        pop = heapq.heappop
        self._stop_requested = False
        budget = max_events if max_events is not None else -1
        processed = 0
        paused = PausedGC()
        paused.__enter__()
        try:
            while queue:
                head = queue[0]
                if until is not None and head[0] > until:
                    self.now = until
                    return "until"
                pop(queue)
                event = head[3]
                callback = event.callback
                if callback is None:
                    continue
                event.callback = None
                self.now = head[0]
                callback(*event.args)
                processed += 1
                if self._stop_requested:
                    return "stopped"
                if processed == budget:
                    return "max_events"
        finally:
            self.events_processed += processed
            paused.__exit__(None, None, None)
        if until is not None:
            self.now = max(self.now, until)
        return "empty"

    def rng(self, name: str) -> np.random.Generator:
        """The named random stream (same object on every call), spawned from the scenario seed."""
        stream = self._streams.get(name)
        if stream is None:
            stream = np.random.Generator(np.random.PCG64(stream_seed(self.seed, name)))
            self._streams[name] = stream
        return stream
