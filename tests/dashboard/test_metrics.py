"""/metrics of the dashboard server, parsed as Prometheus does, and the Grafana dashboard that queries it."""

import json
import re
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from qfabric.dashboard import Hub, create_app
from qfabric.dashboard.metrics import METRICS, NAMES
from qfabric.kms.etsi import KmeConfig
from qfabric.kms.etsi import create_app as kme_app
from qfabric.kms.store import KeyStore
from qfabric.observe.live import report_frame, topology

GRAFANA = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "qfabric.json"


def _scrape(hub: Hub) -> dict[str, list]:
    text = TestClient(create_app(hub)).get("/metrics").text
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, []).append(s)
    return samples


def test_metrics_are_the_frames_numbers_with_prometheus_names(small_report):
    hub = Hub(topology(small_report), mode="replay", speed=1.0)
    times = [0.5, 1.0, small_report["scenario"]["duration_s"]]
    for since, t in zip([None, *times], times, strict=False):
        hub.push(report_frame(small_report, t, since))  # each frame holds the events since the one before
    samples = _scrape(hub)
    assert set(samples) <= set(NAMES), set(samples) - set(NAMES)
    assert all(re.fullmatch(r"qfabric_[a-z0-9_]+", name) for name in NAMES)
    assert all(name.endswith("_total") for name, kind, *_ in METRICS if kind == "counter")
    assert samples["qfabric_simulated_time_seconds"][0].value == small_report["scenario"]["duration_s"]
    delivered = {s.labels["request"]: s.value for s in samples["qfabric_request_pairs_delivered_total"]}
    assert delivered == {r["name"]: r["pairs_delivered"] for r in small_report["requests"]}
    tenants = {s.labels["request"]: s.labels["tenant"] for s in samples["qfabric_request_fidelity"]}
    assert tenants == {"clinic-link": "clinic", "bank-link": "bank"}
    [qber] = samples["qfabric_qkd_qber_ratio"]
    assert qber.labels == {"qkd": "qkd-alpha-beta", "link": "alpha-beta"}
    assert qber.value == small_report["qkd"][0]["qber"]
    [rate] = samples["qfabric_qkd_secret_key_rate_bits_per_second"]
    assert rate.value == small_report["qkd"][0]["secret_key_rate_bps"] > 0
    violations = {s.labels["request"]: s.value for s in samples["qfabric_slo_violations_total"]}
    assert violations == {r["name"]: len(r["slo"]["violations"]) for r in small_report["requests"]}
    events = {s.labels["event"]: s.value for s in samples["qfabric_events_total"]}
    assert sum(events.values()) == len(small_report["events"]) and events["fault"] == 2
    up = {s.labels["link"]: s.value for s in samples["qfabric_link_up"]}
    assert set(up) == {row["name"] for row in small_report["links"]} and set(up.values()) == {1.0}


def test_metrics_follow_the_latest_frame(small_report):
    hub = Hub(topology(small_report), mode="replay", speed=1.0)
    hub.push(report_frame(small_report, 1.0))  # alpha-gamma is cut at 1.0 s
    up = {s.labels["link"]: s.value for s in _scrape(hub)["qfabric_link_up"]}
    assert up["alpha-gamma"] == 0.0 and up["alpha-beta"] == 1.0
    hub.control(paused=True, speed=3.0)
    samples = _scrape(hub)
    assert samples["qfabric_simulation_paused"][0].value == 1.0
    assert samples["qfabric_simulation_speed_ratio"][0].value == 3.0


def _kms_names() -> set[str]:
    """The names a KME's /metrics exposes (counters with _total, histograms with their series)."""
    app = kme_app(KmeConfig("kme-a", {"alice": "kme-a"}), KeyStore("sqlite://", b"s" * 32))
    names = set()
    for family in app.state.registry.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(family.type, [""])
        names |= {family.name + s for s in suffixes}
    return names


def test_grafana_dashboard_queries_only_exported_metrics():
    dashboard = json.loads(GRAFANA.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    queried = {name for e in exprs for name in re.findall(r"\bqfabric_[a-z0-9_]+", e)}
    exported = set(NAMES) | _kms_names()
    assert queried <= exported, f"the dashboard queries metrics nobody exports: {sorted(queried - exported)}"
    # every simulation metric and the KMS's have a panel
    assert set(NAMES) - {"qfabric_simulation_paused"} <= queried | {"qfabric_simulation_paused"}
    assert {"qfabric_kms_keys_served_total", "qfabric_kms_pool_keys", "qfabric_kms_request_seconds_bucket"} <= queried
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_docs_list_every_metric():
    docs = (GRAFANA.parents[1] / "dashboard.md").read_text()
    listed = set(re.findall(r"^\| `(qfabric_[a-z0-9_]+)` \|", docs, flags=re.M))
    assert listed == set(NAMES)
