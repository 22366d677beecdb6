"""Planning at scale: parameter sweeps over scenarios (local processes or Dask), the batch engine's view of a
scenario, cut-off optimisation with the exact chain analysis, and repeater placement with its cost of ownership.
See docs/planning.md.

Modules: :mod:`~qfabric.plan.space` (``--set`` paths and sampling), :mod:`~qfabric.plan.sweep` (tasks, backends,
the table), :mod:`~qfabric.plan.engines` (one point: event or batch engine, flattened SLIs),
:mod:`~qfabric.plan.html` (the plots page), :mod:`~qfabric.plan.cutoff` (cut-off optimisation),
:mod:`~qfabric.plan.placement` (repeater sites and memories by integer programming, verified in simulation),
:mod:`~qfabric.plan.costs` (the price table, cost of ownership per pair and per key bit).
"""
