"""docs/report.md documents every field of the run report, and nothing that is not in it."""

import re
from pathlib import Path

import pytest

from qfabric.scenario import parse_scenario, run_scenario

DOC = Path(__file__).parents[2] / "docs" / "report.md"


def documented(section: str) -> set[str]:
    text = DOC.read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    fields = set()
    for line in body.splitlines():
        if line.startswith("| `"):
            fields |= set(re.findall(r"`([a-z_0-9]+)`", line.split("|")[1]))
    return fields


@pytest.fixture(scope="module")
def report():
    data = {"name": "schema", "seed": 1, "duration_s": 0.3,
            "nodes": [{"name": "a", "position_km": [0, 0]}, {"name": "r"}, {"name": "b"}],
            "links": [{"between": ["a", "r"], "length_km": 5, "profile": "near-term"},
                      {"between": ["r", "b"], "length_km": 5, "profile": "near-term"}],
            "requests": [{"name": "x", "from": "a", "to": "b", "pairs": 20},
                         {"name": "y", "from": "a", "to": "r", "rate_hz": 100, "fidelity_min": 0.5}],
            "qkd": [{"name": "k", "link": "a-r", "max_simulated_pulses": 1e6}],
            "tenants": [{"name": "default", "quota": {"max_concurrent_requests": 5}}],
            "faults": [{"kind": "cut", "link": "r-b", "at_s": 0.1, "until_s": 0.2}]}
    return run_scenario(parse_scenario(data))


def test_every_report_field_is_documented_and_every_documented_field_exists(report):
    top = documented("Top level")
    assert top - {"federated", "satellite", "distributed"} == set(report), "top level"  # optional sections
    assert documented("`requests[]`") == set(report["requests"][0])
    assert documented("`links[]`") == set(report["links"][0])
    assert documented("`nodes[]`") == set(report["nodes"][0])
    assert documented("`faults[]`") == set(report["faults"][0])
    assert documented("`tenants[]`") == set(report["tenants"][0])
