"""A scenario's kernel over two processors: the report section, its schema, and the pairs' quality showing in it."""

import copy
from pathlib import Path

import pytest
import yaml

from qfabric.errors import ScenarioError
from qfabric.observe.report_schema import validate_report
from qfabric.scenario import parse_scenario, run_scenario

SCENARIO = yaml.safe_load((Path(__file__).resolve().parents[2] / "scenarios" / "two-qpu-kernel.yaml").read_text())


def small(profile: str, **distributed) -> dict:
    data = copy.deepcopy(SCENARIO)
    data["duration_s"] = 1.0
    for link in data["links"]:
        link["profile"] = profile
    data["distributed"] |= {"qubits": 2, "samples": 16, **distributed}
    return data


@pytest.fixture(scope="module")
def noisy():
    return run_scenario(parse_scenario(small("trapped-ion"), "noisy"))


def test_the_report_section_matches_its_schema_and_counts(noisy):
    validate_report(noisy)
    d = noisy["distributed"]
    assert d["processors"] == ["qpu-a", "qpu-b"] and d["assignment"] == [0, 1]
    assert d["remote_cnots_per_sample"] == 4  # 2 qubits: one ZZ pair, 2 CNOTs, 2 layers
    assert d["pairs_used"] == 4 * 16 and d["pairs_delivered"] == noisy["requests"][0]["pairs_delivered"]
    assert d["mean_pair_fidelity"] == pytest.approx(noisy["requests"][0]["fidelity"]["mean"], abs=0.02)
    assert d["remote_cnot_gate_fidelity"] == pytest.approx((4 * d["mean_pair_fidelity"] + 1) / 5)
    assert d["time_to_solution_s"] >= d["pairs_needed"] / d["pair_rate_hz"]


def test_ideal_pairs_reproduce_the_single_processor_kernel(noisy):
    ideal = run_scenario(parse_scenario(small("ideal"), "ideal"))["distributed"]
    assert ideal["kernel_error_max"] < 1e-9
    assert ideal["accuracy"]["distributed"] == ideal["accuracy"]["single_processor"]
    assert noisy["distributed"]["kernel_error_mean"] > 0.01  # trapped-ion pairs (F ~ 0.83) cost kernel accuracy


def test_the_section_names_a_request_that_exists():
    data = small("ideal")
    data["distributed"]["request"] = "nope"
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data, "bad")
    assert dict(info.value.problems)["distributed.request"] == "unknown request 'nope'; requests are ['qpu-link']"
    data["distributed"] |= {"request": "qpu-link", "samples": 10}
    with pytest.raises(ScenarioError, match="a multiple of 4"):
        parse_scenario(data, "bad")


def test_a_sweep_row_carries_the_kernel_against_the_pairs(noisy):
    from qfabric.plan.engines import flatten_report

    row = flatten_report(noisy)
    d = noisy["distributed"]
    assert row["distributed.mean_pair_fidelity"] == d["mean_pair_fidelity"]
    assert row["distributed.accuracy_single_processor"] == d["accuracy"]["single_processor"]
    assert row["distributed.kernel_error_mean"] == d["kernel_error_mean"] and "distributed.pair_rate_hz" in row
