"""Running scenarios: reproducibility, physical sanity of the report, engine timing rules."""

import math

import pytest

from qfabric.scenario import parse_scenario, run_scenario


def strip_performance(report):
    return {k: v for k, v in report.items() if k != "performance"}


def test_same_scenario_and_seed_give_identical_reports(small_data):
    a = run_scenario(parse_scenario(small_data))
    b = run_scenario(parse_scenario(small_data))
    assert strip_performance(a) == strip_performance(b)
    small_data["seed"] += 1
    c = run_scenario(parse_scenario(small_data))
    assert strip_performance(c) != strip_performance(a)


def test_report_numbers_are_consistent(small_data):
    report = run_scenario(parse_scenario(small_data))
    e2e = report["requests"][0]
    assert e2e["pairs_delivered"] > 100
    assert e2e["rate_hz"] == pytest.approx(e2e["pairs_delivered"] / small_data["duration_s"])
    lo, hi = e2e["rate_ci95_hz"]
    assert lo < e2e["rate_hz"] < hi
    assert 0.25 <= e2e["fidelity"]["p5"] <= e2e["fidelity"]["mean"] <= 1
    assert sum(e2e["fidelity"]["histogram"]["counts"]) == e2e["pairs_delivered"]
    for link in report["links"]:
        # observed success rate agrees with the model within 4 standard errors of a binomial
        p, n = link["success_probability"], link["attempts"]
        assert abs(link["success_rate"] - p) < 4 * math.sqrt(p * (1 - p) / n)
        # distillable rate of a double-click link stays below PLOB
        assert link["hashing_ebits_per_s"] < link["plob_bound_ebits_per_s"]


def test_single_link_chains_run_under_both_schemes(small_data):
    small_data["nodes"] = small_data["nodes"][:2]
    small_data["links"] = small_data["links"][:1]
    small_data["links"][0]["between"] = ["a", "r"]
    small_data["chain"]["to"] = "r"
    for scheme in ("swap-asap", "nested"):
        small_data["chain"]["scheme"] = scheme
        report = run_scenario(parse_scenario(small_data))
        link = report["links"][0]
        assert report["requests"][0]["pairs_delivered"] == link["successes"]
