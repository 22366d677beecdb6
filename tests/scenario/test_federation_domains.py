"""A federation across KME domains (scenarios/federated-domains.yaml): each hospital under its own operator's
KME, the aggregator at the hub's, keys forwarded between the KMEs over the QKD links that join their domains.

Every run starts one real KME per domain (HTTPS, mutual TLS, its own SQLite store) on 127.0.0.1 in a thread and
stops it; runs use the shipped scenario with fewer rounds and a smaller model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from qfabric.cli.main import app as cli
from qfabric.errors import ScenarioError
from qfabric.kms.client import KmeError
from qfabric.scenario import load_scenario, parse_scenario
from qfabric.scenario.federation import KeyBudgetError, run_federation
from qfabric.scenario.keydomains import KeyDomains

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "federated-domains.yaml"
ORGS = ["hospital-a", "hospital-b", "hospital-c"]


def data(**federated) -> dict:
    d = yaml.safe_load(SCENARIO.read_text())
    d["federated"] |= {"hidden_layers": [32], "rounds": 3, "compare_plain": False} | federated
    return d


def one_kme(d: dict) -> dict:
    """The same network, seed and federation under one KME (every node in its domain, trusted)."""
    d["kms"]["kmes"] = [{"id": "kme-metro", "nodes": [n["name"] for n in d["nodes"]]}]
    return d


def test_a_federation_across_four_kmes_trains_on_qkd_keys_forwarded_between_them():
    fl = run_federation(parse_scenario(data(), "domains"))
    assert fl["rounds_completed"] == 3
    # every session keyed by QKD (hybrid), never a fallback, every round's keys fetched in round 1 (6 pairs x 3
    # rounds x 2 ends)
    assert fl["fallbacks"] == [] and all(set(r["sessions_by_mode"]) == {"hybrid"} for r in fl["per_round"])
    assert sum(r["qkd_keys_fetched"] for r in fl["per_round"]) == 6 * 3 * 2
    ks = fl["key_supply"]
    kmes = {p["pair"]: p["kmes"] for p in ks["pairs"]}
    assert kmes["hospital-a|hospital-c"] == ["kme-a", "kme-hub", "kme-c"] and kmes["hospital-a|aggregator"] == [
        "kme-a", "kme-hub"]
    # a pair's share of an interconnect: half its key (one direction's pads) among the pairs crossing it, whichever
    # way (here hospital A's three); inside C's domain, the relay to the hub's link among C's three pairs
    rate, supply = ks["link_rates_bps"], {p["pair"]: p["supply_keys_per_round"] for p in ks["pairs"]}
    assert supply["hospital-a|aggregator"] == pytest.approx(rate["qkd-a-hub"] * 60 / 2 / 3 / 256)
    assert supply["hospital-c|aggregator"] == pytest.approx(min(rate["qkd-exchange-hub"] / 2 / 3, rate[
        "qkd-c-exchange"] / 3) * 60 / 256)
    assert fl["per_round"][0]["relay_paths"]["hospital-a|hospital-c"] == ["hospital-a", "health-hub", "exchange-c",
                                                                         "hospital-c"]
    # what the KMEs' own audit logs say: 6 pairs x 3 keys forwarded by the masters' KMEs (the aggregator's 3
    # pairs from the hub, A's 2 and B's 1), the organisations' pairs passing through the hub, all stored at the
    # slaves' KMEs; each key claimed once by its slave
    forwards = {d["kme"]: d for d in ks["domains"]}
    assert ks["forwarded_keys"] == 18 == sum(d["forward_in"] for d in forwards.values())
    assert [forwards[k]["forward_out"] for k in ("kme-hub", "kme-a", "kme-b", "kme-c")] == [9, 6, 3, 0]
    assert forwards["kme-hub"]["forward_transit"] == 9 and forwards["kme-c"]["forward_in"] == 9
    assert all(d["forward_failed"] == 0 for d in forwards.values())
    assert all(a == {"keys_delivered": 3, "claims_done": 3} for a in ks["accounting"].values()), ks["accounting"]
    assert set(fl["per_round"][0]["domains"]) == {"kme-hub", "kme-a", "kme-b", "kme-c"}
    assert fl["per_round"][0]["links"]["qkd-a-hub"]["joins"] == ["kme-a", "kme-hub"]
    curve = fl["curves"]["secure"]
    assert curve[-1]["accuracy"] > 0.5  # ten digits: chance is 0.1

    # the masks cancel exactly (fixed point, modulo 2^32) whatever keys drew them, and training and DP noise are
    # seeded from the scenario: one KME for the same network gives exactly the same model, round by round
    single = run_federation(parse_scenario(one_kme(data()), "one KME"))
    assert [(c["loss"], c["accuracy"]) for c in single["curves"]["secure"]] == [(c["loss"], c["accuracy"])
                                                                               for c in curve]
    assert single["key_supply"]["forwarded_keys"] == 0 and "domains" not in single["per_round"][0]


def test_a_key_between_two_domains_is_the_same_at_both_ends_and_handed_out_once(tmp_path):
    scenario = load_scenario(SCENARIO)
    # hospitals A and C only: the hub's KME has no SAE of theirs, but their keys cross its domain
    domains = KeyDomains(scenario, ["hospital-a", "hospital-c"], tmp_path)
    assert list(domains.domains) == ["kme-hub", "kme-a", "kme-c"]
    rates = domains.prime()
    domains.tick(5.0)
    with domains.serving(), domains.client("hospital-a") as a, domains.client("hospital-c") as c:
        status = a.status("hospital-c")
        assert status["source_KME_ID"] == "kme-a" and status["target_KME_ID"] == "kme-c"
        extension = status["status_extension"]  # the whole way: three links, two interconnects
        assert extension["kmes"] == ["kme-a", "kme-hub", "kme-c"] and extension["hops"] == 3
        assert extension["simulated_key_rate_bps"] == pytest.approx(min(rates["qkd-a-hub"], rates[
            "qkd-exchange-hub"]) / 2)  # each direction pads with half an interconnect's key
        worst = extension["link_qber"]  # the noisiest of the three links: max_link_qber checks the whole way
        assert 0.005 < worst < 0.02
        with pytest.raises(KmeError) as noisy:
            a.enc_keys("hospital-c", extension_mandatory=[{"max_link_qber": worst * 0.9}])
        assert noisy.value.status == 503 and noisy.value.body["details"][0]["link_qber"] == worst
        keys = a.enc_keys("hospital-c", number=2, extension_mandatory=[{"max_link_qber": 0.11}])
        assert c.dec_keys("hospital-a", [k for k, _ in keys]) == keys and keys[0][1] != keys[1][1]
        with pytest.raises(KmeError) as again:
            c.dec_keys("hospital-a", [keys[0][0]])
        assert again.value.status == 400
    ids = {k for k, _ in keys}
    logs = {kme: d.store.audit_log(1000) for kme, d in domains.domains.items()}
    for kme, event in (("kme-a", "forward_out"), ("kme-hub", "forward_transit"), ("kme-c", "forward_in")):
        assert any(r["event"] == event and set(json.loads(r["key_ids"])) == ids for r in logs[kme]), (kme, event)


def test_an_organisation_whose_domain_no_interconnect_reaches_is_refused(tmp_path):
    d = data()
    d["qkd"] = [q for q in d["qkd"] if q["name"] != "qkd-exchange-hub"]  # C's domain joined to nothing
    with pytest.raises(ScenarioError) as info:
        parse_scenario(d, "apart")
    problems = dict(info.value.problems)
    assert "'hospital-c' is under KME 'kme-c', the aggregator under 'kme-hub', and no chain of decoy-bb84 QKD " \
           "links joins their domains" in problems["federated.organisations[2].sae"]
    path = tmp_path / "apart.yaml"
    path.write_text(yaml.safe_dump(d))
    result = CliRunner().invoke(cli, ["fl", str(path), "--quiet"])
    assert result.exit_code == 2 and "federated.organisations[2].sae" in result.output
    assert "Traceback" not in result.output


def test_a_qkd_only_federation_is_refused_when_an_interconnect_cannot_carry_its_keys():
    d = data(rounds=50, policy="qkd-only", fallback="none", warmup_s=1.0, privacy={"noise_multiplier": 0.0},
             supply_cuts=[{"qkd": "qkd-exchange-hub", "from_round": 2}])
    d["kms"]["max_key_count"] = 5
    with pytest.raises(KeyBudgetError) as info:
        run_federation(parse_scenario(d, "budget"))
    message = str(info.value)
    # the three pairs with hospital C cross the cut interconnect; the others are covered
    for pair in ("hospital-a-hospital-c", "hospital-b-hospital-c", "hospital-c-aggregator"):
        assert f"{pair} needs 50 keys" in message
    assert "hospital-a-hospital-b needs" not in message and "in stock on qkd-exchange-hub" in message
