"""Scenario files: schema, loading with clear errors, building and running the stack."""

from qfabric.scenario.build import BuiltChain, build_chain, run_scenario
from qfabric.scenario.load import load_scenario, parse_scenario, resolve_profiles
from qfabric.scenario.schema import Scenario

__all__ = [
    "BuiltChain",
    "Scenario",
    "build_chain",
    "load_scenario",
    "parse_scenario",
    "resolve_profiles",
    "run_scenario",
]
