"""The dashboard tests' scenario (small.yaml: four nodes, two tenants with SLOs, a cut, a lossy fibre, one QKD
link), run once per session."""

from pathlib import Path

import pytest

from qfabric.scenario import load_scenario, run_scenario

SMALL_YAML = Path(__file__).parent / "small.yaml"


@pytest.fixture(scope="session")
def small_scenario():
    return load_scenario(SMALL_YAML)


@pytest.fixture(scope="session")
def small_report(small_scenario) -> dict:
    """Its report, with the QKD link (about 3 s, mostly the QKD post-processing)."""
    return run_scenario(small_scenario, source_file=SMALL_YAML)


@pytest.fixture(scope="session")
def network_only(small_scenario):
    """The scenario without its QKD link: the network simulation alone (about 0.4 s a run)."""
    return small_scenario.model_copy(update={"qkd": []})
