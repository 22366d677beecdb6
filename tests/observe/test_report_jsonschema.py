"""docs/report.schema.json is what qfabric.observe.report_schema generates, and real run reports match it."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
from pathlib import Path

import pytest

from qfabric.observe.report_schema import (
    FaultRow,
    LinkRow,
    NodeRow,
    ReportSchemaError,
    RequestRow,
    RunReport,
    TenantRow,
    report_json_schema,
    report_schema_text,
    validate_report,
)
from qfabric.scenario import parse_scenario, run_scenario

DOCS = Path(__file__).parents[2] / "docs"
SCHEMA_FILE = DOCS / "report.schema.json"
REGENERATE = "python -m qfabric.observe.report_schema > docs/report.schema.json"
HAVE_JSONSCHEMA = importlib.util.find_spec("jsonschema") is not None

NEAR_TERM = {"profile": "near-term", "scheme": "double-click"}

# a chain with two decoy-BB84 services: one makes keys (its fibre loses 3 dB for a while: a degraded state
# simulated again) and is cut, one has too few pulses for a key (the short row of a service that could not run)
CHAIN_DECOY = {
    "name": "chain-decoy", "seed": 2, "duration_s": 0.5,
    "nodes": [{"name": "a", "position_km": [0, 0]}, {"name": "r"}, {"name": "b"}],
    "links": [{"name": "a-r", "between": ["a", "r"], "length_km": 10, **NEAR_TERM},
              {"name": "r-b", "between": ["r", "b"], "length_km": 12, **NEAR_TERM}],
    "chain": {"from": "a", "to": "b", "scheme": "swap-asap"},
    "qkd": [{"name": "keys-a-r", "link": "a-r", "max_simulated_pulses": 1e8},
            {"name": "too-few-pulses", "link": "r-b", "max_simulated_pulses": 1e6}],
    "faults": [{"kind": "loss", "link": "a-r", "at_s": 0.2, "until_s": 0.3, "extra_loss_db": 3},
               {"kind": "cut", "link": "a-r", "at_s": 0.35, "until_s": 0.4}],
}

# tenants (weights, priorities, quotas, a secret, an SLO that is violated, one that holds, one without requests),
# a negotiated request, a forged credential, a pairs-per-window quota that pauses, Poisson arrivals, a cut that
# reroutes, a loss, a memory fault never repaired, and BBM92 on a request's pairs (and on a refused one's: none)
TENANTS_FAULTS_BBM92 = {
    "name": "tenants-faults-bbm92", "seed": 3, "duration_s": 1.0,
    "nodes": [{"name": "a", "position_km": [0, 0]}, {"name": "r", "position_km": [5, 0]},
              {"name": "b", "position_km": [10, 0]}, {"name": "c"}],
    "links": [{"between": ["a", "r"], "length_km": 5, "profile": "near-term"},
              {"between": ["r", "b"], "length_km": 5, "profile": "near-term"},
              {"between": ["a", "c"], "length_km": 6, "profile": "near-term"},
              {"between": ["c", "b"], "length_km": 6, "profile": "near-term"}],
    "tenants": [{"name": "health", "weight": 2, "priority": 1, "quota": {"max_concurrent_requests": 2},
                 "slo": {"window_s": 0.1, "rate_hz_min": 2000, "fidelity_min": 0.8, "availability_min": 0.9}},
                {"name": "finance", "secret": "finance-hmac-key", "quota": {"max_concurrent_requests": 2}},
                {"name": "research", "weight": 0.5, "quota": {"max_pairs_per_window": 200, "window_s": 0.4}},
                {"name": "idle"}],
    "requests": [{"name": "e2e", "from": "a", "to": "b", "tenant": "health", "cutoff_s": 0.02},
                 {"name": "lab", "from": "a", "to": "b", "tenant": "health", "start_s": 0.1, "negotiate": True,
                  "fidelity_min": 0.8, "rate_hz": 50,
                  "slo": {"window_s": 0.1, "wait_p99_s_max": 0.05, "first_pair_s_max": 0.01}},
                 {"name": "intruder", "from": "a", "to": "b", "tenant": "finance", "start_s": 0.2,
                  "credential": "forged"},
                 {"name": "study", "from": "c", "to": "b", "tenant": "research", "pairs": 1000}],
    "arrivals": [{"tenant": "finance", "rate_per_s": 5, "hold_s": 0.2, "ends": [["a", "c"], ["r", "b"]],
                  "cutoff_s": 0.02}],
    "faults": [{"kind": "cut", "link": "r-b", "at_s": 0.4, "until_s": 0.6},
               {"kind": "loss", "link": "a-c", "at_s": 0.3, "until_s": 0.5, "extra_loss_db": 3},
               {"kind": "memory", "node": "c", "at_s": 0.7, "factor": 0.5}],
    "qkd": [{"name": "e2e-key", "protocol": "bbm92", "request": "e2e"},
            {"name": "no-pairs", "protocol": "bbm92", "request": "intruder"}],
    "control": {"heartbeat_s": 0.005, "check_s": 0.05},
}

SCENARIOS = {"chain-decoy": CHAIN_DECOY, "tenants-faults-bbm92": TENANTS_FAULTS_BBM92}


@pytest.fixture(scope="module")
def reports() -> dict[str, dict]:
    return {name: run_scenario(parse_scenario(copy.deepcopy(data))) for name, data in SCENARIOS.items()}


def jsonschema_errors(report: dict) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(report_json_schema())
    return [f"{e.json_path}: {e.message[:200]}" for e in validator.iter_errors(json.loads(json.dumps(report)))]


def test_the_committed_schema_is_what_the_models_generate():
    assert SCHEMA_FILE.read_text() == report_schema_text(), (
        f"docs/report.schema.json is stale (the report models changed): {REGENERATE}")


def test_the_schema_is_a_draft_2020_12_schema_of_the_report():
    schema = json.loads(SCHEMA_FILE.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "qfabric run report" and schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(RunReport.model_fields)
    if HAVE_JSONSCHEMA:
        import jsonschema

        jsonschema.Draft202012Validator.check_schema(schema)


def test_the_scenarios_reach_the_shapes_they_are_here_for(reports):
    chain, tenants = reports["chain-decoy"], reports["tenants-faults-bbm92"]
    keys, short = chain["qkd"]
    assert keys["protocol"] == "decoy-bb84" and keys["key_bits"] > 0
    assert [(c["up"], c["extra_loss_db"]) for c in keys["conditions"]] == [
        (True, 0.0), (True, 3.0), (True, 0.0), (False, 0.0), (True, 0.0)]  # degraded, then cut
    assert keys["conditions"][3]["qber"] is None
    assert short["aborted_blocks"] is None and "pulses" not in short  # could not run: the short row
    e2e_key, no_pairs = tenants["qkd"]
    assert e2e_key["protocol"] == "bbm92" and e2e_key["pulses"] == tenants["requests"][0]["pairs_delivered"]
    assert "fewer than 2 pairs" in no_pairs["abort_reasons"][0] and "key_bits_over_run" not in no_pairs
    rows = {r["name"]: r for r in tenants["requests"]}
    assert rows["e2e"]["slo"]["violations"] and rows["e2e"]["reroutes"]
    assert rows["lab"]["negotiated"]["admitted"] and rows["lab"]["slo"]["error_budget"]["allowed_s"] is None
    assert rows["intruder"]["refused"] and rows["intruder"]["timeline"] is None
    assert rows["intruder"]["waiting_time_s"] == {"count": 0}
    assert any(name.startswith("finance-") for name in rows)  # the arrivals
    assert {t["name"]: t["usage"] for t in tenants["tenants"]}["idle"] == {}
    assert {e["event"] for e in tenants["events"]} >= {"arrived", "refused", "negotiated", "rerouted", "paused",
                                                       "resumed", "fault", "detected", "repair"}
    assert [f["kind"] for f in tenants["faults"]] == ["loss", "cut", "memory"]
    assert tenants["faults"][2]["end_s"] is None and tenants["nodes"][3]["position_km"] is None


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_real_reports_match_the_models(reports, name):
    validate_report(reports[name])
    validate_report(json.loads(json.dumps(reports[name])))  # and as read back from the JSON file


@pytest.mark.skipif(not HAVE_JSONSCHEMA, reason="jsonschema is not installed (the pydantic check still runs)")
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_real_reports_match_the_json_schema(reports, name):
    assert jsonschema_errors(reports[name]) == []


def broken(report: dict, change) -> dict:
    report = copy.deepcopy(report)
    change(report)
    return report


def test_an_unknown_top_level_key_is_rejected_by_name(reports):
    bad = broken(reports["chain-decoy"], lambda r: r.update(surprise=1))
    with pytest.raises(ReportSchemaError) as info:
        validate_report(bad)
    assert info.value.problems == [("surprise", "Extra inputs are not permitted (got 1)")]
    assert "surprise: Extra inputs are not permitted" in str(info.value)
    if HAVE_JSONSCHEMA:
        assert any("'surprise' was unexpected" in e for e in jsonschema_errors(bad))


def test_a_wrong_type_in_a_request_row_is_rejected_with_its_path(reports):
    bad = broken(reports["tenants-faults-bbm92"], lambda r: r["requests"][1].update(pairs_delivered="many"))
    with pytest.raises(ReportSchemaError) as info:
        validate_report(bad)
    assert info.value.problems == [("requests[1].pairs_delivered", 'Input should be a valid integer (got "many")')]
    if HAVE_JSONSCHEMA:
        assert jsonschema_errors(bad) == ["$.requests[1].pairs_delivered: 'many' is not of type 'integer'"]


@pytest.mark.parametrize(("change", "path"), [
    (lambda r: r["requests"][0].update(target={"pairs": 20, "rate_hz": 1.0}), "requests[0].target.rate_hz"),
    (lambda r: r["requests"][0]["fidelity"].pop("p99"), "requests[0].fidelity.p99"),
    (lambda r: r["links"][0].update(idle="no"), "links[0].idle"),
    (lambda r: r["nodes"][0].update(position_km=[1.0]), "nodes[0].position_km"),
    (lambda r: r["qkd"][0].pop("link"), "qkd[0].link"),
    (lambda r: r["qkd"][1].update(pulses=None), "qkd[1].pulses"),  # may be left out, never null
    (lambda r: r["events"][0].update(event="exploded"), "events[0].event"),
    (lambda r: r["faults"][0].update(kind="flood"), "faults[0].kind"),
    (lambda r: r["performance"]["qkd_step_seconds"]["keys-a-r"].update(sleep=1.0),
     'performance.qkd_step_seconds["keys-a-r"].sleep'),
])
def test_other_mistakes_are_named_by_path(reports, change, path):
    with pytest.raises(ReportSchemaError) as info:
        validate_report(broken(reports["chain-decoy"], change))
    assert [p for p, _ in info.value.problems] == [path]


def test_events_keep_free_details_and_federated_is_checked_at_its_top(reports):
    report = broken(reports["chain-decoy"], lambda r: r["events"][0].update(note="anything", extra=[1, {"x": 2}]))
    validate_report(report)
    report["federated"] = {"rounds_requested": 2}
    with pytest.raises(ReportSchemaError) as info:
        validate_report(report)
    assert ("federated.rounds_completed", "Field required") in info.value.problems


def documented(section: str) -> set[str]:
    body = (DOCS / "report.md").read_text().split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    fields: set[str] = set()
    for line in body.splitlines():
        if line.startswith("| `"):
            fields |= set(re.findall(r"`([a-z_0-9]+)`", line.split("|")[1]))
    return fields


@pytest.mark.parametrize(("section", "model"), [
    ("Top level", RunReport), ("`requests[]`", RequestRow), ("`links[]`", LinkRow), ("`nodes[]`", NodeRow),
    ("`faults[]`", FaultRow), ("`tenants[]`", TenantRow),
])
def test_the_models_have_the_documented_fields(section, model):
    assert documented(section) == set(model.model_fields)
