"""Scenario files: schema, loading with clear errors, building and running the stack."""

from qfabric.lazy import lazy_exports

_EXPORTS = {
    "build": ["BuiltNetwork", "build_network", "run_scenario"],
    "graph": ["resolve_profiles"],
    "load": ["load_scenario", "parse_scenario"],
    "schema": ["Scenario"],
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
