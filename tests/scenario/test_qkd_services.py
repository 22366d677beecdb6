"""QKD services in a scenario: validation and their keys in the run report."""

import pytest

from qfabric.errors import ScenarioError
from qfabric.scenario import parse_scenario, run_scenario


def with_qkd(data, *services):
    data["qkd"] = list(services)
    return data


def test_decoy_link_keys_appear_in_the_report(small_data):
    data = with_qkd(small_data, {"name": "keys-a-r", "link": "a-r", "max_simulated_pulses": 1e8})
    report = run_scenario(parse_scenario(data))
    (row,) = report["qkd"]
    assert row["name"] == "keys-a-r" and row["between"] == ["a", "r"]
    assert row["key_bits"] > 0 and row["aborted_blocks"] == 0
    assert 0 < row["qber"] < 0.03
    assert 1.0 < row["reconciliation_efficiency"] < 1.1
    assert row["secret_key_rate_bps"] == pytest.approx(row["secret_bits_per_pulse"] * 1e9)
    assert row["secret_bits_per_pulse"] < row["plob_bits_per_pulse"]
    assert row["simulated_seconds"] == pytest.approx(0.1)  # capped at 1e8 of the 2 s x 1e9 pulses


def test_qkd_keeps_the_report_reproducible(small_data):
    data = with_qkd(small_data, {"name": "k", "link": "r-b", "max_simulated_pulses": 1e8})
    a = run_scenario(parse_scenario(data))
    b = run_scenario(parse_scenario(data))
    assert {k: v for k, v in a.items() if k != "performance"} == {k: v for k, v in b.items() if k != "performance"}


def test_bbm92_on_the_chain_reports_why_no_key(small_data):
    data = with_qkd(small_data, {"name": "e2e", "protocol": "bbm92"})
    report = run_scenario(parse_scenario(data))
    (row,) = report["qkd"]
    e2e = report["requests"][0]
    assert row["pulses"] == e2e["pairs_delivered"]  # one measurement per delivered pair
    assert row["key_bits"] == 0 and row["aborted_blocks"] == 1
    assert "finite-key length" in row["abort_reasons"][0] or "threshold" in row["abort_reasons"][0]


def test_qkd_validation_errors(small_data):
    # field values are checked first (schema), then references between fields
    bad_value = with_qkd(dict(small_data), {"name": "z", "link": "a-r", "misalignment": 0.7})
    with pytest.raises(ScenarioError) as info:
        parse_scenario(bad_value, "q.yaml")
    assert "less than 0.5" in dict(info.value.problems)["qkd[0].misalignment"]
    data = with_qkd(small_data, {"name": "x", "link": "a-rr"}, {"name": "x", "protocol": "bbm92", "link": "a-r"},
                    {"name": "y"})
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data, "q.yaml")
    problems = dict(info.value.problems)
    assert "unknown link 'a-rr'; did you mean 'a-r'?" in problems["qkd[0].link"]
    assert "used twice" in problems["qkd[1].name"]
    assert "takes no link" in problems["qkd[1].link"]
    assert "decoy-bb84 needs the fibre link" in problems["qkd[2].link"]
