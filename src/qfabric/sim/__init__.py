"""The discrete-event kernel: clock, event queue, cancellable timers, seeded random streams."""

from qfabric.sim.kernel import Event, PausedGC, Simulator, stream_seed

__all__ = ["Event", "PausedGC", "Simulator", "stream_seed"]
