"""Scenario files: schema, loading with clear errors, building and running the stack."""

from qfabric.scenario.build import BuiltNetwork, build_network, run_scenario
from qfabric.scenario.graph import resolve_profiles
from qfabric.scenario.load import load_scenario, parse_scenario
from qfabric.scenario.schema import Scenario

__all__ = [
    "BuiltNetwork",
    "Scenario",
    "build_network",
    "load_scenario",
    "parse_scenario",
    "resolve_profiles",
    "run_scenario",
]
