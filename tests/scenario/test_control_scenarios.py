"""Scenarios with tenants, arrivals, SLOs and faults: the control plane from a file, and the fabric reacting."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from qfabric.cli.main import app
from qfabric.control import Heartbeats
from qfabric.errors import ScenarioError
from qfabric.kms.store import KeyStore
from qfabric.scenario import load_scenario, parse_scenario, run_scenario
from qfabric.scenario.arrivals import arrival_requests
from qfabric.scenario.build import qkd_channel, scenario_faults
from qfabric.scenario.keysupply import KeySupply

SCENARIOS = Path(__file__).parents[2] / "scenarios"
runner = CliRunner()


def chaos_network_only(**changes):
    """The chaos scenario's network and request (no QKD, KMS or federation: fast)."""
    data = yaml.safe_load((SCENARIOS / "three-hospitals-chaos.yaml").read_text())
    for key in ("qkd", "kms", "federated"):
        data.pop(key)
    data.update(changes)
    return parse_scenario(data, "chaos")


def without_wall_times(report: dict) -> dict:
    return {k: v for k, v in report.items() if k != "performance"}


@pytest.fixture(scope="module")
def chaos_report():
    return run_scenario(chaos_network_only())


def test_chaos_cut_is_detected_within_the_heartbeat_bound_and_the_request_moves(chaos_report):
    sc = chaos_network_only()
    [fault] = chaos_report["faults"]
    hb = sc.control
    one_way = 22 / (299_792.458 / 1.47)  # the c-hub fibre's classical delay
    # the hub (the controller, most central) is an end of the cut link: no report hop
    assert chaos_report["control"]["controller"] == "health-hub"
    expected = Heartbeats(hb.heartbeat_s, hb.heartbeat_misses).detection_s(600.0, one_way)
    assert fault["detected_s"] == pytest.approx(expected, abs=1e-6)
    assert (hb.heartbeat_misses - 1) * hb.heartbeat_s < fault["time_to_detect_s"] \
        <= hb.heartbeat_misses * hb.heartbeat_s + one_way
    [moved] = fault["requests_moved"]
    assert moved["request"] == "a-c" and moved["routes"] == [["hospital-a", "hospital-b", "hospital-c"]]
    request = chaos_report["requests"][0]
    assert request["paths"] == [["hospital-a", "health-hub", "hospital-c"], ["hospital-a", "hospital-b", "hospital-c"],
                                ["hospital-a", "health-hub", "hospital-c"]]
    assert all(n > 0 for n in request["pairs_per_path"])
    events = [e["event"] for e in chaos_report["events"]]
    assert events.index("fault") < events.index("detected") < events.index("repair")


def test_chaos_slo_violation_spans_the_outage(chaos_report):
    slo = chaos_report["requests"][0]["slo"]
    [violation] = slo["violations"]
    window = slo["objectives"]["window_s"]
    # the rate over a 60 s window falls under 17/s some time after the cut (600 s) and recovers within a window
    # of the repair (780 s): the violation lies inside [cut, repair + window + one check step]
    assert 600 < violation["start_s"] < 600 + window
    assert 780 < violation["end_s"] <= 780 + window + 5
    assert slo["met"] is False and slo["error_budget"]["left_s"] < 0
    timeline = chaos_report["requests"][0]["timeline"]
    t, rate = np.array(timeline["t_s"]), np.array(timeline["rate_hz"])
    assert rate[(t > 610) & (t < 770)].mean() < 0.85 * rate[(t < 590) | (t > 800)].mean()


def test_same_seed_same_report_faults_included(chaos_report):
    sc = chaos_network_only(random_faults={"links": ["a-b", "b-hub"], "mtbf_s": 200, "mttr_s": 20})
    first, second = run_scenario(sc), run_scenario(sc)
    assert json.dumps(without_wall_times(first), sort_keys=True) == json.dumps(without_wall_times(second),
                                                                               sort_keys=True)
    assert len(first["faults"]) > 3


def test_qkd_link_makes_no_key_while_cut_and_less_with_extra_loss():
    data = yaml.safe_load((SCENARIOS / "three-hospitals.yaml").read_text())
    for key in ("kms", "federated"):
        data.pop(key)
    data["qkd"] = [q | {"max_simulated_pulses": 1e8} for q in data["qkd"] if q["name"] in ("qkd-c-hub", "qkd-a-b")]
    data["faults"] = [{"kind": "cut", "link": "c-hub", "at_s": 2, "until_s": 5},
                      {"kind": "loss", "link": "a-b", "at_s": 4, "until_s": 8, "extra_loss_db": 6}]
    report = run_scenario(parse_scenario(data, "qkd-faults"))
    c_hub, a_b = report["qkd"]
    assert [(c["start_s"], c["up"]) for c in c_hub["conditions"]] == [(0.0, True), (2.0, False), (5.0, True)]
    assert c_hub["conditions"][1]["secret_key_rate_bps"] == 0.0
    assert c_hub["key_bits_over_run"] == pytest.approx(c_hub["secret_key_rate_bps"] * 7, rel=1e-12)
    nominal, lossy = a_b["conditions"][0], a_b["conditions"][1]
    assert lossy["extra_loss_db"] == 6
    assert lossy["secret_key_rate_bps"] < 0.4 * nominal["secret_key_rate_bps"]  # 6 dB: a quarter of the light
    # dark counts weigh more against less light: the degraded channel's error rate is higher (here by
    # 5e-5, below the simulated QBER's statistical spread, so checked on the model the simulation ran)
    sc = parse_scenario(data, "qkd-faults")
    spec = next(q for q in sc.qkd if q.name == "qkd-a-b")
    assert qkd_channel(sc, spec, 6.0).error(0.5) > qkd_channel(sc, spec).error(0.5)
    assert qkd_channel(sc, spec, 6.0).eta == pytest.approx(qkd_channel(sc, spec).eta * 10 ** -0.6, rel=1e-12)


def test_kms_pools_do_not_grow_over_a_cut_link_and_keys_take_the_other_chain(tmp_path):
    sc = load_scenario(SCENARIOS / "three-hospitals-chaos.yaml")
    data = sc.model_dump(by_alias=True, exclude_none=True)
    data["kms"]["max_key_count"] = 100_000
    data["qkd"] = [q | {"max_simulated_pulses": 1e8} for q in data["qkd"]]
    sc = parse_scenario(data, "chaos-kms")
    store = KeyStore(f"sqlite:///{tmp_path / 'k.db'}", b"k" * 32)
    pools = {}
    supply = KeySupply(sc, store, "kme-metro", lambda a, b: pools.setdefault((a, b), f"pair:{a}|{b}"),
                       rate_scale=1e-3, faults=scenario_faults(sc))
    supply.prime()
    c_hub = supply.feeds[("health-hub", "hospital-c")]
    pair = pools[("hospital-c", "aggregator")] if ("hospital-c", "aggregator") in pools \
        else pools[("aggregator", "hospital-c")]
    levels = []
    for _ in range(14):  # 0 .. 840 s in minutes
        supply.tick(60)
        levels.append((supply.now_s, c_hub.released_units, store.available(pair),
                       supply.path_now("hospital-c", "aggregator")))
        # the KME's max_link_qber check: the status extension's QBER, over whichever chain carries the keys now
        assert supply.worst_link_qber("hospital-c", "aggregator") == supply.link_qber("hospital-c", "aggregator")[
            "link_qber"] > 0
    during = [lv for lv in levels if 600 <= lv[0] <= 780]
    assert len({released for _, released, _, _ in during}) == 1  # the cut link puts nothing in its pools
    assert levels[8][1] > levels[0][1] > 0 and levels[-1][1] > during[-1][1]  # before and after, it does
    assert [path for t, _, _, path in levels if 600 <= t < 780] == [["hospital-c", "hospital-b", "health-hub"]] * 3
    assert during[-1][2] > during[0][2]  # C's keys with the aggregator still arrive, over the other chain
    assert levels[-1][3] == ["hospital-c", "health-hub"]  # back after the repair


def test_metro_tenants_quotas_credentials_and_ledger(tmp_path):
    ledger = tmp_path / "usage.csv"
    report = run_scenario(load_scenario(SCENARIOS / "metro-tenants.yaml"), ledger_csv=ledger)
    rows = {r["name"]: r for r in report["requests"]}
    assert rows["intruder"]["refused"].startswith("credential refused: bad signature")
    assert rows["intruder"]["pairs_delivered"] == 0
    refused = [r for r in rows.values() if r["refused"] and r["refused"].startswith("quota:")]
    assert refused and all("finance" in r["refused"] for r in refused)
    # no tenant exceeds its quotas: concurrent requests and pairs per window, replayed from the events
    starts = {e["request"]: e["t_s"] for e in report["events"] if e["event"] == "admitted"}
    ends = {e["request"]: e["t_s"] for e in report["events"] if e["event"] in ("ended", "completed")}
    for tenant, limit in (("finance", 4), ("health", 3)):
        mine = [name for name in starts if rows[name]["tenant"] == tenant]
        for t in sorted(starts[name] for name in mine):
            assert sum(starts[n] <= t < ends.get(n, 1e9) for n in mine) <= limit
    research_ticks = []
    with ledger.open() as f:
        for row in csv.DictReader(f):
            if row["tenant"] == "research" and row["event"] == "delivered":
                research_ticks.append((float(row["t_s"]), int(row["pairs"])))
    per_window = {}
    for t, n in research_ticks:  # rows aggregate pairs within 1 s metering windows, inside a 2 s quota window
        per_window[int(t // 2)] = per_window.get(int(t // 2), 0) + n
    assert max(per_window.values()) == 1500 and all(v <= 1500 for v in per_window.values())
    tenants = {t["name"]: t for t in report["tenants"]}
    assert tenants["research"]["usage"]["pairs_delivered"] == sum(n for _, n in research_ticks)
    assert any(e["event"] == "paused" for e in report["events"])


def test_arrivals_are_poisson_and_reproducible():
    data = yaml.safe_load((SCENARIOS / "metro-tenants.yaml").read_text())
    data["duration_s"] = 2000
    data["arrivals"] = [{"tenant": "finance", "rate_per_s": 0.5, "hold_s": 1,
                         "ends": [["bank-hq", "trading-floor"], ["bank-dc", "trading-floor"]]}]
    sc = parse_scenario(data, "arrivals")
    requests = arrival_requests(sc)
    assert requests == arrival_requests(sc)
    gaps = np.diff([r.start_s for r in requests])
    # 1000 expected arrivals: count within 4 sigma, exponential gaps (mean 2 s, coefficient of variation 1)
    assert abs(len(requests) - 1000) < 4 * 1000 ** 0.5
    assert gaps.mean() == pytest.approx(2.0, rel=0.1) and gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.1)
    holds = np.array([r.end_s - r.start_s for r in requests])
    assert holds.mean() == pytest.approx(1.0, rel=0.1)
    assert {(r.source, r.target) for r in requests} == {("bank-hq", "trading-floor"), ("bank-dc", "trading-floor")}


def bad(write_scenario, small_data, **changes):
    small_data.update(changes)
    with pytest.raises(ScenarioError) as info:
        load_scenario(write_scenario(small_data))
    return dict(info.value.problems)


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"tenants": [{"name": "t", "quota": {"max_rate_hz": "5 kHz"}}]}, "tenants[0].quota.max_rate_hz",
     "expected a number (in hz, without a unit suffix), got '5 kHz'"),
    ({"tenants": [{"name": "t", "slo": {"rate_hz_min": -1}}]}, "tenants[0].slo.rate_hz_min",
     "expected a number greater than 0, got -1"),
    ({"tenants": [{"name": "t", "slo": {"window_s": 5}}]}, "tenants[0].slo", "name at least one objective"),
    ({"faults": [{"kind": "cut", "link": "a-x", "at_s": 1}]}, "faults[0].link", "unknown link 'a-x'"),
    ({"faults": [{"kind": "cut", "link": "a-r", "at_s": 3, "until_s": 2}]}, "faults[0]",
     "until_s (2) must be after at_s (3)"),
    ({"faults": [{"kind": "memory", "link": "a-r", "at_s": 1, "factor": 0.5}]}, "faults[0]",
     "a memory fault names a node"),
    ({"faults": [{"kind": "cut", "link": "a-r", "at_s": 99}]}, "faults[0].at_s", "not before the end of the run"),
    ({"arrivals": [{"rate_per_s": -2, "hold_s": 1, "ends": [["a", "b"]]}]}, "arrivals[0].rate_per_s",
     "expected a number greater than 0, got -2"),
    ({"arrivals": [{"rate_per_s": 2, "hold_s": 1, "ends": [["a", "q"]]}]}, "arrivals[0].ends[0]",
     "unknown node 'q'"),
    ({"random_faults": {"links": ["a-rr"], "mtbf_s": 1, "mttr_s": 1}}, "random_faults.links[0]",
     "did you mean 'a-r'?"),
    ({"control": {"controller": "zz"}}, "control.controller", "unknown node 'zz'"),
])
def test_bad_control_input_names_field_and_expectation(write_scenario, small_data, changes, field, message):
    problems = bad(write_scenario, small_data, **changes)
    assert message in problems[field], problems


def test_unknown_tenant_and_credential_without_secret(write_scenario, small_data):
    chain = small_data.pop("chain")
    request = {"name": "x", "from": chain["from"], "to": chain["to"], "tenant": "bnak"}
    problems = bad(write_scenario, small_data, tenants=[{"name": "bank"}], requests=[request])
    assert problems["requests[0].tenant"] == "unknown tenant 'bnak'; did you mean 'bank'?"
    request |= {"tenant": "bank", "credential": "forged"}
    problems = bad(write_scenario, small_data, tenants=[{"name": "bank"}], requests=[request])
    assert "has no secret" in problems["requests[0].credential"]


def test_cli_exits_2_on_a_bad_fault_without_traceback(write_scenario, small_data):
    small_data["faults"] = [{"kind": "cut", "link": "a-r", "at_s": 3, "until_s": 1}]
    result = runner.invoke(app, ["run", str(write_scenario(small_data)), "--quiet"])
    assert result.exit_code == 2 and "faults[0]" in result.output and "Traceback" not in result.output


def entangled_supply(tmp_path, trusted_nodes, pairs=60_000, fidelity=0.98):
    """The entangled scenario's KMS fed with synthetic delivered pairs: Werner pairs spread over 600 s."""
    data = yaml.safe_load((SCENARIOS / "three-hospitals-entangled.yaml").read_text())
    data["kms"]["max_key_count"] = 100_000
    data["kms"]["trusted_nodes"] = trusted_nodes
    for q in data["qkd"]:
        if q.get("protocol") == "bbm92":
            q["block_pairs"] = 20_000
    sc = parse_scenario(data, "entangled")
    w = (1 - fidelity) / 3
    weights = np.tile([fidelity, w, w, w], (pairs, 1))
    times = np.linspace(0, 600, pairs, endpoint=False) + 600 / pairs
    store = KeyStore(f"sqlite:///{tmp_path / 'k.db'}", b"k" * 32)
    pools = {}
    supply = KeySupply(sc, store, "kme-metro", lambda a, b: pools.setdefault((a, b), f"pair:{a}|{b}"),
                       rate_scale=1e-3, entanglement={"a-c": (times, weights), "b-c": (times, weights)})
    supply.prime()
    return supply, store, pools


def test_end_to_end_keys_reach_the_pools_when_their_block_is_complete_and_untrusted_hubs_relay_nothing(tmp_path):
    supply, store, pools = entangled_supply(tmp_path, trusted_nodes=[])
    a_c = pools[("hospital-a", "hospital-c")]
    feed = supply.e2e[("hospital-a", "hospital-c")]
    assert [round(b[0]) for b in feed.blocks] == [200, 400, 600]  # each block ready at its last pair
    assert feed.qber == pytest.approx(2 / 3 * 0.02, abs=0.003)  # Werner 0.98: QBER 2(1 - F)/3
    levels = []
    for _ in range(11):
        supply.tick(60)
        levels.append((supply.now_s, store.available(a_c)))
    assert all(level == 0 for t, level in levels if t <= 180)  # no complete block yet, and no trusted relay
    assert levels[3][1] > 0 and levels[-1][1] > levels[3][1]
    assert supply.sources[("hospital-a", "hospital-c")]["trusted_relay"] == 0
    assert supply.sources[("hospital-a", "hospital-c")]["bbm92_end_to_end"] == levels[-1][1]
    assert supply.path_now("hospital-a", "hospital-c") is None  # the hub may not relay
    assert supply.sources[("hospital-a", "aggregator")]["trusted_relay"] > 0  # one hop: nobody in between


def test_with_a_trusted_hub_the_same_pair_also_gets_relayed_keys(tmp_path):
    supply, store, pools = entangled_supply(tmp_path, trusted_nodes=None, pairs=20_000)
    supply.tick(60)
    assert supply.path_now("hospital-a", "hospital-c") == ["hospital-a", "health-hub", "hospital-c"]
    assert supply.sources[("hospital-a", "hospital-c")]["trusted_relay"] > 0
    assert supply.sources[("hospital-a", "hospital-c")]["bbm92_end_to_end"] == 0  # its only block is not ready


def test_html_report_shows_the_timeline_faults_and_event_log(chaos_report):
    from qfabric.observe.html import run_report_html

    page = run_report_html(chaos_report)
    for heading in ("<h2>Timeline</h2>", "<h2>Faults</h2>", "<h2>Event log</h2>"):
        assert heading in page
    assert "cut c-hub" in page and "health-hub" in page  # the fault and the controller's node
    assert page.count("data:image/png;base64,") >= 3  # network map, request plots, timeline
