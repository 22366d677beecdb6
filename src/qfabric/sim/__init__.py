"""The discrete-event kernel: clock, event queue, cancellable timers, seeded random streams."""

from qfabric.sim.kernel import Event, Simulator, stream_seed

__all__ = ["Event", "Simulator", "stream_seed"]
