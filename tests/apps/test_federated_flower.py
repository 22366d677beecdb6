"""Federated training on Flower keyed by the simulated network: the default scenario end to end (reduced),
equivalence with unprotected FedAvg, tampering, dropouts, key supply cuts, and bad input.

Every run starts a real KME (HTTPS, mutual TLS) on 127.0.0.1 in a thread and stops it; QKD keys come from
the scenario's simulated links. Runs use the shipped scenario with fewer rounds and a smaller model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from typer.testing import CliRunner

from qfabric.apps.federated.hospital import train
from qfabric.apps.federated.mod import protected_client_app
from qfabric.apps.federated.wire import PAIRS, RECORD, hello_from_bytes, hello_to_bytes, public_to_bytes
from qfabric.cli.main import app as cli
from qfabric.errors import ScenarioError
from qfabric.kms.certs import make_dev_pki
from qfabric.kms.hybrid import Hello, ResponderKeys, initiate
from qfabric.scenario import load_scenario, parse_scenario
from qfabric.scenario.federation import KeyBudgetError, run_federation

DEFAULT = Path(__file__).resolve().parents[2] / "scenarios" / "three-hospitals.yaml"


def scenario(**federated):
    """The shipped scenario, reduced: a small MLP, 3 rounds, no baselines unless asked."""
    data = yaml.safe_load(DEFAULT.read_text())
    data["federated"] |= {"hidden_layers": [32], "rounds": 3, "compare_plain": False} | federated
    return parse_scenario(data, "three-hospitals (test)")


def test_default_scenario_runs_end_to_end_from_the_cli(tmp_path):
    data = yaml.safe_load(DEFAULT.read_text())
    data["federated"]["rounds"] = 4
    path = tmp_path / "three-hospitals.yaml"
    path.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(cli, ["run", str(path), "--json", str(tmp_path / "r.json"),
                                      "--html", str(tmp_path / "r.html"), "--quiet"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    fl = report["federated"]
    assert fl["rounds_completed"] == 4 and fl["model"]["parameters"] == 110_721
    # hospital C is not a neighbour of A or B: their keys are relayed through the hub
    hops = {p["pair"]: p["hops"] for p in fl["key_supply"]["pairs"]}
    assert hops["hospital-a|hospital-c"] == 2 and hops["hospital-a|hospital-b"] == 1
    # per round: 3 session keys and 3 pairwise keys, each fetched at both ends
    assert [r["qkd_keys_fetched"] for r in fl["per_round"]] == [12] * 4
    assert all(r["sessions_by_mode"] == {"hybrid": 12} for r in fl["per_round"])
    for pair, acc in fl["key_supply"]["accounting"].items():
        assert acc["keys_delivered"] == 4 and acc["claims_done"] == 4, pair  # one key per pair per round, claimed
    assert fl["privacy"]["epsilon_by_round"][-1]["epsilon"] == pytest.approx(fl["epsilon"]) and fl["epsilon"] > 0
    # each of the 3 organisations adds its share of the noise: z * C / sqrt(3), so the sum carries z * C
    assert all(r["noise_std"] == pytest.approx(1.0 * 1.0 / np.sqrt(3)) for r in fl["per_round"])
    page = (tmp_path / "r.html").read_text()
    for heading in ("Federated training", "Key supply vs consumption", "Differential privacy", "Where the time went",
                    "QKD services"):
        assert heading in page


def test_secure_federation_matches_unprotected_fedavg_and_centralised():
    fl = run_federation(scenario(rounds=8, compare_plain=True, privacy={"noise_multiplier": 0.0, "clip_norm": 10.0}))
    secure = [c["accuracy"] for c in fl["curves"]["secure"]]
    plain = [c["accuracy"] for c in fl["curves"]["plain"]]
    # same seed, same data, same training: only fixed-point rounding (2^-fb) separates the two runs
    assert np.max(np.abs(np.subtract(secure, plain))) <= 1 / fl["test_examples"] + 1e-9
    assert [c["loss"] for c in fl["curves"]["secure"]] == pytest.approx([c["loss"] for c in fl["curves"]["plain"]],
                                                                         rel=1e-3)
    assert abs(fl["final"]["secure_accuracy"] - fl["final"]["centralised_accuracy"]) <= 0.04


def _flip_update_byte(msg, context, call_next):
    reply = call_next(msg, context)
    if (msg.metadata.message_type == "train" and context.node_config["qfabric-sae-id"] == "hospital-b"
            and not reply.has_error()):
        record = reply.content[RECORD]
        blob = bytearray(record["update"])
        blob[40] ^= 1
        record["update"] = bytes(blob)
    return reply


def test_tampered_update_fails_authentication_and_the_round_completes_without_it():
    tampering = protected_client_app(outer_mods=[_flip_update_byte])
    tampering.train()(train)
    fl = run_federation(scenario(rounds=2), client_app=tampering)
    for r in fl["per_round"]:
        assert r["failed"] is None and r["participants"] == ["hospital-a", "hospital-b", "hospital-c"]
        assert "failed authentication" in r["dropped"]["hospital-b"]
    assert fl["rounds_completed"] == 2  # the survivors revealed their masks with B; the sum is of A and C


def _unknown_key_id(msg, context, call_next):
    if msg.metadata.message_type == "train" and context.node_config["qfabric-sae-id"] == "hospital-c":
        record = msg.content[RECORD]
        hello = hello_from_bytes(record["hello"])
        record["hello"] = hello_to_bytes(Hello(hello.mode, "00000000-0000-0000-0000-000000000000",
                                               hello.kem_ciphertext, hello.x25519_share))
    return call_next(msg, context)


def test_a_key_id_the_kme_does_not_know_fails_loudly_and_the_round_handles_it():
    app = protected_client_app(outer_mods=[_unknown_key_id])
    app.train()(train)
    fl = run_federation(scenario(rounds=2), client_app=app)
    for r in fl["per_round"]:
        assert "KME answered" in r["dropped"]["hospital-c"] and r["failed"] is None


def _wrong_shape(msg: Message, context) -> Message:
    arrays = msg.content["arrays"].to_numpy_ndarrays()
    return Message(RecordDict({"arrays": ArrayRecord(arrays[:-1]),
                               "metrics": MetricRecord({"num-examples": 10})}), reply_to=msg)


def test_a_model_update_of_the_wrong_shape_is_rejected():
    app = protected_client_app()
    app.train()(_wrong_shape)
    fl = run_federation(scenario(rounds=1, min_clients=2), client_app=app)
    r = fl["per_round"][0]
    assert r["failed"] is not None and fl["rounds_completed"] == 0
    assert all("ClientApp returned shapes" in reason for reason in r["dropped"].values())


def test_a_client_whose_certificate_is_not_trusted_is_refused(tmp_path):
    rogue = make_dev_pki(tmp_path / "rogue", kmes=["kme-rogue"], saes=["hospital-c"], ca_name="rogue-ca")
    fl = run_federation(scenario(rounds=2), node_overrides={
        "hospital-c": {"qfabric-cert": str(rogue["hospital-c"]), "qfabric-key": str(rogue["hospital-c.key"])}})
    # A and B refuse C's signed public keys (its certificate is not from the federation's CA), so C has no
    # pairwise keys and sits out; the KME's TLS handshake would refuse it too (tests/kms). A and B carry on.
    for r in fl["per_round"]:
        assert list(r["dropped"]) == ["hospital-c"] and r["failed"] is None, r
        assert "a peer certificate not issued by this federation's CA" in r["dropped"]["hospital-c"], r
    assert fl["rounds_completed"] == 2


def test_a_node_whose_certificate_names_another_organisation_is_refused(tmp_path):
    fl = run_federation(scenario(rounds=1, compare_plain=False), workdir=tmp_path, node_overrides={
        "hospital-c": {"qfabric-cert": str(tmp_path / "pki" / "hospital-a.pem"),
                       "qfabric-key": str(tmp_path / "pki" / "hospital-a.key")}})
    [r] = fl["per_round"]
    assert r["participants"] == ["hospital-a", "hospital-b"] and r["failed"] is None
    [(node, why)] = r["dropped"].items()
    assert "its certificate names 'hospital-a', its node config qfabric-sae-id 'hospital-c'" in why, why


def _aggregator_swaps_c_public_key(msg: Message, context, call_next) -> Message:
    """A malicious aggregator relays its own public keys as C's, to read A's and B's encapsulations to C."""
    if msg.metadata.message_type == PAIRS:
        record = msg.content[RECORD]
        i = list(record["participants"]).index("hospital-c")
        publics = list(record["publics"])
        publics[i] = public_to_bytes(ResponderKeys.generate().public())
        record["publics"] = publics
    return call_next(msg, context)


def _aggregator_swaps_hellos_to_c(msg: Message, context, call_next) -> Message:
    """A malicious aggregator hands C its own encapsulations instead of A's and B's: C would share its
    pairwise keys with the aggregator, which could then unmask C's update."""
    if msg.metadata.message_type == "train" and context.node_config["qfabric-sae-id"] == "hospital-c":
        record = msg.content[RECORD]
        attacker = ResponderKeys.generate().public()  # any hello the aggregator made itself
        record["peer-hellos"] = [hello_to_bytes(initiate(attacker, peer, "hospital-c", "pq-only")[0])
                                 for peer in record["peer-from"]]
    return call_next(msg, context)


@pytest.mark.parametrize(("tamper", "reason"), [
    (_aggregator_swaps_c_public_key, "hospital-c's signature on public does not verify"),
    (_aggregator_swaps_hellos_to_c, "'s signature on pair-hello does not verify"),
])
def test_public_keys_and_hellos_relayed_by_the_aggregator_are_checked_against_certificates(tamper, reason):
    """Under post-quantum-only keys (no QKD key the aggregator cannot know), a relay that swaps keys would
    learn pairwise masks; the organisations' signatures (by their KME client certificates) stop it."""
    app = protected_client_app(outer_mods=[tamper])
    app.train()(train)
    fl = run_federation(scenario(rounds=2, policy="pq-only"), client_app=app)
    for r in fl["per_round"]:
        assert list(r["dropped"]) == ["hospital-c"] and r["failed"] is None, r
        assert reason in r["dropped"]["hospital-c"], r
        assert r["participants"] in (["hospital-a", "hospital-b"], ["hospital-a", "hospital-b", "hospital-c"])
    assert fl["rounds_completed"] == 2


def test_an_organisation_that_drops_out_is_recovered_without_revealing_its_update():
    fl = run_federation(scenario(rounds=3, dropouts=[{"sae": "hospital-a", "round": 2}]))
    r2 = fl["per_round"][1]
    assert r2["dropped"] == {"hospital-a": "no reply to train"} and r2["failed"] is None
    assert fl["rounds_completed"] == 3
    assert fl["wire"]["by_type"]["query.qfabric_recover"] == 2  # the two survivors, once
    acc = [c["accuracy"] for c in fl["curves"]["secure"]]
    assert acc[-1] > acc[0]


def test_cut_supply_falls_back_to_post_quantum_with_an_audit_record():
    data = yaml.safe_load(DEFAULT.read_text())
    data["kms"]["max_key_count"] = 2  # small pools: a dead link's pairs run dry within two rounds
    data["federated"] |= {"hidden_layers": [16], "rounds": 4, "compare_plain": False, "warmup_s": 1.0,
                          "supply_cuts": [{"qkd": "qkd-c-hub", "from_round": 1}]}
    fl = run_federation(parse_scenario(data, "cut"))
    assert fl["rounds_completed"] == 4
    reasons = {(f["sae"], f["peer"], f["reason"]) for f in fl["fallbacks"]}
    assert fl["fallbacks"] and all(f["mode"] == "pq-only" for f in fl["fallbacks"])
    assert all("hospital-c" in (sae, peer) for sae, peer, _ in reasons)  # only pairs that need the dead link
    assert {reason for *_, reason in reasons} == {"no QKD key available"}
    last = fl["per_round"][-1]
    assert last["sessions_by_mode"].get("pq-only", 0) >= 1 and last["sessions_by_mode"].get("hybrid", 0) >= 1


def test_a_scenario_fault_on_the_fibre_is_the_same_cut_for_the_federation():
    data = yaml.safe_load(DEFAULT.read_text())
    data["kms"]["max_key_count"] = 2
    data["federated"] |= {"hidden_layers": [16], "rounds": 3, "compare_plain": False, "warmup_s": 1.0}
    data["faults"] = [{"kind": "cut", "link": "c-hub", "at_s": 0.0}]
    fl = run_federation(parse_scenario(data, "fault"))
    assert fl["fallbacks"] and {f["reason"] for f in fl["fallbacks"]} == {"no QKD key available"}
    assert all("hospital-c" in (f["sae"], f["peer"]) for f in fl["fallbacks"])
    for r in fl["per_round"]:
        assert r["links"]["qkd-c-hub"] == {"up": False, "key_rate_bps": 0.0, "qber": None}
        assert r["relay_paths"]["hospital-c|aggregator"] is None  # no chain of links reaches C


def test_cut_supply_with_no_fallback_leaves_out_the_cut_off_organisation_with_the_reason():
    data = yaml.safe_load(DEFAULT.read_text())
    data["kms"]["max_key_count"] = 2
    data["federated"] |= {"hidden_layers": [16], "rounds": 4, "compare_plain": False, "warmup_s": 1.0,
                          "fallback": "none", "supply_cuts": [{"qkd": "qkd-c-hub", "from_round": 1}]}
    fl = run_federation(parse_scenario(data, "cut-none"))
    # every key of C crosses the dead link and nobody may fall back: C sits out, A and B train on
    assert fl["rounds_completed"] == 4 and not fl["fallbacks"]
    for r in fl["per_round"]:
        assert r["failed"] is None and r["participants"] == ["hospital-a", "hospital-b"], r
        assert list(r["dropped"]) == ["hospital-c"]
        assert r["dropped"]["hospital-c"].startswith("no pairwise key with hospital-")
        assert "no QKD key available; the policy allows no fallback" in r["dropped"]["hospital-c"]
        assert r["sessions_by_mode"] == {"hybrid": 6}  # A-B, A and B with the aggregator; both ends count
    acc = [c["accuracy"] for c in fl["curves"]["secure"]]
    assert acc[-1] != acc[0]


@pytest.mark.parametrize(("unpaired", "left_out"), [
    ({"hospital-b": ["hospital-c"]}, ["hospital-c"]),  # one pair short: the later SAE ID sits out
    ({"hospital-a": ["hospital-b", "hospital-c"]}, ["hospital-a"]),  # A has no key with anyone: only A
    ({"hospital-a": ["hospital-c"], "hospital-b": ["hospital-c"]}, ["hospital-c"]),
    ({"hospital-a": ["hospital-b", "hospital-c"], "hospital-b": ["hospital-c"]}, ["hospital-b", "hospital-c"]),
])
def test_the_fewest_organisations_sit_out_when_pairwise_keys_are_missing(unpaired, left_out):
    from flwr.app import ConfigRecord

    from qfabric.apps.federated.strategy import RoundLog, _left_out_for_missing_pair_keys

    saes = ["hospital-a", "hospital-b", "hospital-c"]
    names = dict(enumerate(saes))
    paired = {i: ConfigRecord({"unpaired": unpaired.get(sae, []),
                               "unpaired-reasons": ["pool dry"] * len(unpaired.get(sae, []))})
              for i, sae in enumerate(saes)}
    log = RoundLog(1)
    out = _left_out_for_missing_pair_keys(paired, names, log)
    assert sorted(saes[n] for n in out) == left_out == sorted(log.dropped)
    assert all(why.startswith("no pairwise key with hospital-") and why.endswith(": pool dry")
               for why in log.dropped.values())


def test_qkd_only_without_fallback_refuses_to_start_when_supply_cannot_cover_the_rounds(tmp_path):
    data = yaml.safe_load(DEFAULT.read_text())
    data["kms"]["max_key_count"] = 5
    data["federated"] |= {"rounds": 50, "policy": "qkd-only", "fallback": "none", "warmup_s": 1.0,
                          "supply_cuts": [{"qkd": "qkd-c-hub", "from_round": 2}]}
    with pytest.raises(KeyBudgetError, match=r"hospital-c.*needs 50 keys.*qkd-c-hub"):
        run_federation(parse_scenario(data, "budget"))
    path = tmp_path / "budget.yaml"
    path.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(cli, ["fl", str(path), "--quiet"])
    assert result.exit_code == 2 and "not enough QKD keys for 50 rounds" in result.output


def test_fl_command_rejects_an_unknown_policy():
    result = CliRunner().invoke(cli, ["fl", str(DEFAULT), "--policy", "quantum-magic", "--quiet"])
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "'quantum-magic' is not one of 'qkd-only', 'hybrid', 'pq-only'" in text


@pytest.mark.parametrize(("change", "field"), [
    ({"aggregator": "nobody"}, "federated.aggregator"),
    ({"organisations": [{"sae": "hospital-a", "data_share": 0.5}, {"sae": "hospital-x", "data_share": 0.5}]},
     "federated.organisations[1].sae"),
    ({"organisations": [{"sae": "hospital-a", "data_share": 0.5}, {"sae": "hospital-b", "data_share": 0.2}]},
     "federated.organisations"),
    ({"supply_cuts": [{"qkd": "qkd-nowhere", "from_round": 1}]}, "federated.supply_cuts[0].qkd"),
])
def test_bad_federated_sections_name_the_field(change, field):
    data = yaml.safe_load(DEFAULT.read_text())
    data["federated"] |= change
    with pytest.raises(ScenarioError) as err:
        parse_scenario(data, "bad.yaml")
    assert field in str(err.value) and "bad.yaml" in str(err.value)


def test_the_protected_client_refuses_an_unprotected_train_message():
    app = protected_client_app()
    app.train()(train)
    from qfabric.apps.federated.grid import LocalGrid

    grid = LocalGrid(app, [{"partition-id": 0}])
    [reply] = grid.send_and_receive([Message(RecordDict({"arrays": ArrayRecord([np.zeros(2, np.float32)]),
                                                          "config": ConfigRecord({"server-round": 1})}),
                                             dst_node_id=next(iter(grid.get_node_ids())), message_type="train")])
    assert reply.has_error() and "qfabric-sae-id" in reply.error.reason


def test_the_shipped_scenario_validates():
    sc = load_scenario(DEFAULT)
    assert sc.federated is not None and len(sc.federated.organisations) == 3
