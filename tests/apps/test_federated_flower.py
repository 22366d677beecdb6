"""Federated training on Flower keyed by the simulated network: the default scenario end to end (reduced),
equivalence with unprotected FedAvg, tampering, dropouts, key supply cuts, and bad input.

Every run starts a real KME (HTTPS, mutual TLS) on 127.0.0.1 in a thread and stops it; QKD keys come from
the scenario's simulated links. Runs use the shipped scenario with fewer rounds and a smaller model.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.mod import message_size_mod
from typer.testing import CliRunner

from qfabric.apps.federated.hospital import train
from qfabric.apps.federated.mod import qfabric_protection_mod
from qfabric.apps.federated.sessions import Sessions
from qfabric.apps.federated.wire import PAIRS, RECORD, STEP, TRAIN, hello_to_bytes, public_to_bytes
from qfabric.cli.main import app as cli
from qfabric.errors import ScenarioError
from qfabric.kms.broker import SessionBroker
from qfabric.kms.certs import make_dev_pki
from qfabric.kms.hybrid import ResponderKeys, initiate
from qfabric.kms.policy import Policy
from qfabric.scenario import load_scenario, parse_scenario
from qfabric.scenario.federation import KeyBudgetError, run_federation

DEFAULT = Path(__file__).resolve().parents[2] / "scenarios" / "three-hospitals.yaml"


def scenario(**federated):
    """The shipped scenario, reduced: a small MLP, 3 rounds, no baselines unless asked."""
    data = yaml.safe_load(DEFAULT.read_text())
    data["federated"] |= {"hidden_layers": [32], "rounds": 3, "compare_plain": False} | federated
    return parse_scenario(data, "three-hospitals (test)")


def protected(outer=(), inner=(), train_fn=train) -> ClientApp:
    """The hospitals' ClientApp with qfabric's mod; ``outer`` mods see the network side, ``inner`` the plain one."""
    app = ClientApp(mods=[*outer, qfabric_protection_mod(), *inner])
    app.train()(train_fn)
    return app


def _step(msg: Message) -> str | None:
    return msg.content[RECORD].get(STEP) if RECORD in msg.content else None


def test_default_scenario_runs_end_to_end_from_the_cli(tmp_path, monkeypatch):
    from qfabric.scenario import build

    data = yaml.safe_load(DEFAULT.read_text())
    data["federated"]["rounds"] = 4
    path = tmp_path / "three-hospitals.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setattr(build, "_DISTILLED", {})  # nothing distilled yet in this process
    before = build.distillations
    result = CliRunner().invoke(cli, ["run", str(path), "--json", str(tmp_path / "r.json"),
                                      "--html", str(tmp_path / "r.html"), "--quiet"])
    assert result.exit_code == 0, result.output
    # each of the 4 QKD links is simulated and distilled once for the whole run: the report's qkd section,
    # the KMS's first keys and every round's supply share it
    assert build.distillations - before == len(data["qkd"]) == 4
    report = json.loads((tmp_path / "r.json").read_text())
    fl = report["federated"]
    assert fl["rounds_completed"] == 4 and fl["model"]["parameters"] == 64 * 64 + 64 + 64 * 10 + 10  # MLP on digits
    # hospital C is not a neighbour of A or B: their keys are relayed through the hub
    hops = {p["pair"]: p["hops"] for p in fl["key_supply"]["pairs"]}
    assert hops["hospital-a|hospital-c"] == 2 and hops["hospital-a|hospital-b"] == 1
    # per round: 3 session keys and 3 pairwise keys, each fetched at both ends; keys_per_request 20, capped at the
    # run's 4 rounds: the first round's 12 ETSI requests fetch the keys of rounds 1-4, later rounds make none
    assert [r["kme_requests"] for r in fl["per_round"]] == [12, 0, 0, 0]
    assert [r["qkd_keys_fetched"] for r in fl["per_round"]] == [48, 0, 0, 0]
    # 12 sessions a round (both ends count); each round's training also starts the next round's 3 pairwise
    # sessions (one message a round), so round 1 counts 15 and the last round 9
    assert [r["sessions_by_mode"] for r in fl["per_round"]] == [{"hybrid": n} for n in (15, 12, 12, 9)]
    # sessions are kept for session_rounds (10): the ML-KEM + X25519 key agreements all happen in round 1 (6
    # sessions, both ends count); later rounds derive their keys from them and a fresh QKD key each
    assert [r["key_agreements"] for r in fl["per_round"]] == [12, 0, 0, 0]
    assert fl["wire"]["by_type"] == {"train (hello)": 3, "train (pairs)": 3, "train (train)": 12}
    for pair, acc in fl["key_supply"]["accounting"].items():
        assert acc["keys_delivered"] == 4 and acc["claims_done"] == 4, pair  # one request, claimed at once
    # record-level DP: DP-SGD in each hospital's training, accounted per hospital (the smallest, 287 records,
    # spends the most: 36 Poisson samples of 32 a round); the mod adds no noise of its own
    privacy = fl["privacy"]
    assert privacy["level"] == "record" and [d["steps_per_round"] for d in privacy["dp_sgd"]] == [90, 54, 36]
    assert privacy["epsilon_by_round"][-1]["epsilon"] == pytest.approx(fl["epsilon"]) and 0 < fl["epsilon"] < 10
    assert all(r["noise_std"] == 0 for r in fl["per_round"])
    # three runs side by side
    runs = fl["final"]["runs"]
    assert runs["secure_dp"]["rounds"] == runs["plain"]["rounds"] == [1, 2, 3, 4]
    assert fl["final"]["secure_accuracy"] == runs["secure_dp"]["mean"]
    page = (tmp_path / "r.html").read_text()
    for heading in ("Federated training", "Key supply vs consumption", "Differential privacy", "Where the time went",
                    "QKD services"):
        assert heading in page
    assert "protected, no DP" in page


def test_protection_without_dp_equals_plain_fedavg_and_dp_costs_the_accuracy():
    """Encryption and masking cost no accuracy: same seed, same data, same training, and the protected run
    without DP predicts exactly as Flower's FedAvg every round (the only difference is the masks' fixed point,
    2^-24 per parameter here, which moves the test loss by less than 1e-6 relative)."""
    fl = run_federation(scenario(rounds=8, compare_plain=True, hidden_layers=[]))
    secure, no_dp, plain = (fl["curves"][k] for k in ("secure", "secure_no_dp", "plain"))
    assert [c["accuracy"] for c in no_dp] == [c["accuracy"] for c in plain]
    assert [c["loss"] for c in no_dp] == pytest.approx([c["loss"] for c in plain], rel=1e-6, abs=0)
    assert [c["loss"] for c in no_dp] != [c["loss"] for c in secure]  # the DP run is a different run
    runs = fl["final"]["runs"]
    assert runs["secure_no_dp"] == runs["plain"] and len(runs["plain"]["rounds"]) == 5
    assert runs["secure_dp"]["mean"] < runs["plain"]["mean"]  # what the noise costs, on a 8-round run
    assert abs(runs["plain"]["mean"] - runs["centralised"]["mean"]) <= 0.04


def test_the_plain_fedavg_run_is_reproducible_from_the_scenario_seed():
    """Flower's FedAvg samples nodes with Python's global random: the plain run seeds it, and restores it."""
    import random

    from qfabric.scenario.federation import run_plain

    sc = scenario(rounds=3, hidden_layers=[16])
    random.seed(1)
    expected_next = random.random()
    random.seed(1)
    first = run_plain(sc, sc.federated, 3)["curve"]
    assert random.random() == expected_next  # the caller's random is where it was
    random.seed(2)
    second = run_plain(sc, sc.federated, 3)["curve"]
    assert [(c["loss"], c["accuracy"]) for c in first] == [(c["loss"], c["accuracy"]) for c in second]


def test_the_mod_works_inside_clientapp_mods_with_other_mods_stacked():
    """``ClientApp(mods=[flower's message_size_mod, qfabric_protection_mod(), a user's mod])``: the mod after
    qfabric's sees the plain global model and the plain reply; the one before it only sealed bytes."""
    inner_seen, outer_seen = [], []

    def inner(msg, context, call_next):
        reply = call_next(msg, context)
        inner_seen.append(([a.shape for a in msg.content["arrays"].to_numpy_ndarrays()],
                           [a.shape for a in reply.content["arrays"].to_numpy_ndarrays()]))
        return reply

    def outer(msg, context, call_next):
        reply = call_next(msg, context)
        outer_seen.append((_step(msg), sorted(msg.content.array_records), sorted(reply.content.array_records)))
        return reply

    app = protected(outer=[message_size_mod, outer], inner=[inner])
    fl = run_federation(scenario(rounds=2, hidden_layers=[4]), client_app=app)
    assert fl["rounds_completed"] == 2 and all(r["participants"] == ["hospital-a", "hospital-b", "hospital-c"]
                                               for r in fl["per_round"])
    shapes = [(64, 4), (4,), (4, 10), (10,)]  # digits: 64 pixels, 10 classes
    assert inner_seen == [(shapes, shapes)] * 6  # three hospitals, two rounds: plain arrays in and out
    assert {step for step, *_ in outer_seen} == {"hello", "pairs", "train"}
    assert all(arrays_in == arrays_out == [] for _, arrays_in, arrays_out in outer_seen)  # sealed: no arrays


def test_the_digits_data_set_trains_a_ten_class_model_under_protection():
    fl = run_federation(scenario(dataset="digits", hidden_layers=[], rounds=2, compare_plain=True,
                                 privacy={"noise_multiplier": 0.0}))
    assert fl["model"]["layers"] == [64, 10] and fl["test_examples"] == 360  # 20 % of 1,797 images
    assert fl["curves"]["secure"] and [c["accuracy"] for c in fl["curves"]["secure"]] == \
        [c["accuracy"] for c in fl["curves"]["plain"]]
    assert fl["final"]["runs"]["secure_no_dp"]["last"] > 0.85  # logistic regression on digits: ~0.9 in 2 rounds


@pytest.mark.parametrize(("noise", "weighting"), [
    (1.0, "Weighted by: uniform (differential privacy bounds each organisation's influence)"),
    (0.0, "Weighted by: 'num-examples', capped at 228 (masked)"),
])
def test_flowers_strategy_log_says_how_updates_are_really_weighted(noise, weighting):
    import logging

    from qfabric.apps.federated.strategy import Protection, SecureFedAvg

    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    flwr_log = logging.getLogger("flwr")
    flwr_log.addHandler(handler)
    level = flwr_log.level
    flwr_log.setLevel(logging.INFO)
    try:
        SecureFedAvg(Protection("aggregator", None, Policy(), noise_multiplier=noise,
                                weight_cap_examples=228)).summary()
    finally:
        flwr_log.removeHandler(handler)
        flwr_log.setLevel(level)
    text = "\n".join(lines)
    assert weighting in text and "Federated evaluation: off" in text, text
    assert ("noise multiplier 1" in text) == (noise > 0)


def _aggregator_swaps_c_public_key_for_the_next_round(msg: Message, context, call_next) -> Message:
    """The same attack on the next round's pairs, which travel in this round's train message."""
    if _step(msg) == TRAIN and "next-publics" in msg.content[RECORD]:
        record = msg.content[RECORD]
        i = list(record["next-participants"]).index("hospital-c")
        publics = list(record["next-publics"])
        publics[i] = public_to_bytes(ResponderKeys.generate().public())
        record["next-publics"] = publics
    return call_next(msg, context)


def test_the_next_rounds_pairs_carried_by_the_train_message_are_checked_too():
    # a key agreement every round (session_rounds 1): the next round's public keys are used, so checked
    fl = run_federation(scenario(rounds=3, policy="pq-only", session_rounds=1),
                        client_app=protected(outer=[_aggregator_swaps_c_public_key_for_the_next_round]))
    r1, r2, r3 = fl["per_round"]
    assert r1["participants"] == ["hospital-a", "hospital-b", "hospital-c"] and not r1["dropped"]
    assert list(r2["dropped"]) == ["hospital-c"]
    assert "hospital-c's signature on public does not verify" in r2["dropped"]["hospital-c"], r2
    assert r3["participants"] == ["hospital-a", "hospital-b", "hospital-c"]  # a pairs step of its own, untampered
    assert fl["rounds_completed"] == 3


def _flip_update_byte(msg, context, call_next):
    reply = call_next(msg, context)
    if _step(msg) == TRAIN and context.node_config["qfabric-sae-id"] == "hospital-b" and not reply.has_error():
        record = reply.content[RECORD]
        blob = bytearray(record["update"])
        blob[40] ^= 1
        record["update"] = bytes(blob)
    return reply


def test_tampered_update_fails_authentication_and_the_round_completes_without_it():
    fl = run_federation(scenario(rounds=2), client_app=protected(outer=[_flip_update_byte]))
    for r in fl["per_round"]:
        assert r["failed"] is None and r["participants"] == ["hospital-a", "hospital-b", "hospital-c"]
        assert "failed authentication" in r["dropped"]["hospital-b"]
    assert fl["rounds_completed"] == 2  # the survivors revealed their masks with B; the sum is of A and C


def _unknown_key_id(msg, context, call_next):
    """In round 2 (a kept session: no signature, only the key ID and its confirmation) the aggregator's round
    hello to C names a QKD key ID nobody has. (In a key agreement the aggregator's signature catches any
    change: the test above.)"""
    record = msg.content.get(RECORD, {})
    if _step(msg) == TRAIN and record.get("round") == 2 and context.node_config["qfabric-sae-id"] == "hospital-c":
        round_hello = json.loads(record["hello"])
        assert "hello" not in round_hello  # a kept session's round
        round_hello["key_ID"] = "00000000-0000-0000-0000-000000000000"
        record["hello"] = json.dumps(round_hello).encode()
    return call_next(msg, context)


def test_a_key_id_the_kme_does_not_know_fails_loudly_and_the_round_handles_it():
    fl = run_federation(scenario(rounds=3), client_app=protected(outer=[_unknown_key_id]))
    r1, r2, r3 = fl["per_round"]
    assert not r1["dropped"] and not r3["dropped"]  # round 3: C's sessions start over
    assert list(r2["dropped"]) == ["hospital-c"] and "KME answered" in r2["dropped"]["hospital-c"], r2
    assert r2["failed"] is None and fl["rounds_completed"] == 3


def _wrong_shape(msg: Message, context) -> Message:
    arrays = msg.content["arrays"].to_numpy_ndarrays()
    return Message(RecordDict({"arrays": ArrayRecord(arrays[:-1]),
                               "metrics": MetricRecord({"num-examples": 10})}), reply_to=msg)


def test_a_model_update_of_the_wrong_shape_is_rejected():
    fl = run_federation(scenario(rounds=1, min_clients=2), client_app=protected(train_fn=_wrong_shape))
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
    if _step(msg) == PAIRS:
        record = msg.content[RECORD]
        i = list(record["participants"]).index("hospital-c")
        publics = list(record["publics"])
        publics[i] = public_to_bytes(ResponderKeys.generate().public())
        record["publics"] = publics
    return call_next(msg, context)


def _aggregator_swaps_hellos_to_c(msg: Message, context, call_next) -> Message:
    """A malicious aggregator hands C its own encapsulations instead of A's and B's: C would share its
    pairwise keys with the aggregator, which could then unmask C's update."""
    if _step(msg) == TRAIN and context.node_config["qfabric-sae-id"] == "hospital-c":
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
    learn pairwise masks; the organisations' signatures (by their KME client certificates) stop it. Here every
    round makes a key agreement (session_rounds 1); a kept session's rounds: the next test."""
    fl = run_federation(scenario(rounds=2, policy="pq-only", session_rounds=1), client_app=protected(outer=[tamper]))
    for r in fl["per_round"]:
        assert list(r["dropped"]) == ["hospital-c"] and r["failed"] is None, r
        assert reason in r["dropped"]["hospital-c"], r
        assert r["participants"] in (["hospital-a", "hospital-b"], ["hospital-a", "hospital-b", "hospital-c"])
    assert fl["rounds_completed"] == 2


def _downgrade_to_c(strip_signature: bool, forged_keys: list):
    """Someone between the aggregator and C (the SuperLink, say) replaces the aggregator's key agreement with C
    by a post-quantum-only one of its own, made with C's public keys (no QKD key: none to steal). Without the
    aggregator's signature C would take it (checked here) and seal its update under the attacker's key."""

    def tamper(msg: Message, context, call_next) -> Message:
        record = msg.content.get(RECORD, {})
        if _step(msg) == TRAIN and context.node_config["qfabric-sae-id"] == "hospital-c":
            seeds = context.state["qfabric-node"]
            c_keys = ResponderKeys(MLKEM768PrivateKey.from_seed_bytes(seeds["mlkem"]),
                                   X25519PrivateKey.from_private_bytes(seeds["x25519"]))
            round_number, audit = int(record["round"]), []
            forged, key = Sessions("aggregator").initiate(
                SessionBroker("aggregator", None, Policy("pq-only"), audit.append), "hospital-c",
                c_keys.public, round_number)
            c_side = SessionBroker("hospital-c", None, Policy("hybrid", "pq-only"), audit.append)
            forged_keys.append(Sessions("hospital-c").respond(c_side, "aggregator", forged, c_keys, round_number)
                               == key)
            record["hello"] = forged
            if strip_signature:
                del record["hello-sig"]
        return call_next(msg, context)

    return tamper


@pytest.mark.parametrize(("strip_signature", "reason"), [
    (False, "aggregator's signature on aggregator-hello does not verify"),
    (True, "'aggregator''s key agreement for round 1 is not signed"),
])
def test_the_aggregators_key_agreement_is_signed_so_no_one_between_can_downgrade_it(strip_signature, reason):
    forged_keys = []
    fl = run_federation(scenario(rounds=2), client_app=protected(outer=[_downgrade_to_c(strip_signature,
                                                                                         forged_keys)]))
    assert forged_keys == [True, True]  # a well-formed agreement: C's session key would be the attacker's
    r1, r2 = fl["per_round"]
    assert list(r1["dropped"]) == ["hospital-c"] and reason in r1["dropped"]["hospital-c"], r1
    assert list(r2["dropped"]) == ["hospital-c"] and r2["failed"] is None  # sessions start over: forged again
    assert r1["participants"] == r2["participants"] == ["hospital-a", "hospital-b", "hospital-c"]
    assert fl["rounds_completed"] == 2  # A and B carry on (C's masks recovered)


def _aggregator_alters_a_kept_sessions_hello_to_c(msg: Message, context, call_next) -> Message:
    """In round 2 (a kept session's round: no key agreement, no signature), the relay alters the key
    confirmation of A's pair hello to C."""
    record = msg.content.get(RECORD, {})
    if _step(msg) == TRAIN and record.get("round") == 2 and context.node_config["qfabric-sae-id"] == "hospital-c":
        hellos = [json.loads(h) for h in record["peer-hellos"]]
        assert all("hello" not in h for h in hellos)  # kept sessions: no key agreement in round 2
        hellos[0]["tag"] = base64.b64encode(bytes(16)).decode()
        record["peer-hellos"] = [json.dumps(h).encode() for h in hellos]
    return call_next(msg, context)


def test_a_kept_sessions_round_hello_altered_in_transit_is_refused_and_the_session_restarts():
    fl = run_federation(scenario(rounds=3), client_app=protected(outer=[_aggregator_alters_a_kept_sessions_hello_to_c]))
    r1, r2, r3 = fl["per_round"]
    assert not r1["dropped"] and list(r2["dropped"]) == ["hospital-c"] and r2["failed"] is None
    assert "'hospital-a''s round-2 hello does not match its session" in r2["dropped"]["hospital-c"], r2
    # round 3: C's sessions start over (with the aggregator and both peers: 3 key agreements, both ends)
    assert r3["participants"] == ["hospital-a", "hospital-b", "hospital-c"] and not r3["dropped"]
    assert r3["key_agreements"] == 6 and fl["rounds_completed"] == 3


def test_sessions_expire_after_session_rounds_and_public_keys_travel_only_when_a_pair_needs_an_agreement():
    seen = []

    def record_publics(msg: Message, context, call_next) -> Message:
        if _step(msg) == TRAIN and context.node_config["qfabric-sae-id"] == "hospital-a":
            record = msg.content[RECORD]
            seen.append((record["round"], "next-publics" in record))
        return call_next(msg, context)

    fl = run_federation(scenario(rounds=5, session_rounds=2), client_app=protected(outer=[record_publics]))
    assert fl["rounds_completed"] == 5 and not any(r["dropped"] for r in fl["per_round"])
    # agreements in rounds 1, 3, 5 (sessions of 2 rounds); each round's message starts the next round's pairs,
    # so a pairs agreement for round 3 is counted at its initiator in round 2 (3) and its responder in round 3
    assert [r["key_agreements"] for r in fl["per_round"]] == [12, 3, 9, 3, 9]
    # the next round's public keys ride in the train message only when the pairs' sessions end
    assert seen == [(1, False), (2, True), (3, False), (4, True), (5, False)]


def test_an_organisation_that_drops_out_is_recovered_without_revealing_its_update():
    fl = run_federation(scenario(rounds=3, dropouts=[{"sae": "hospital-a", "round": 2}]))
    r2 = fl["per_round"][1]
    assert r2["dropped"] == {"hospital-a": "no reply to train"} and r2["failed"] is None
    assert fl["rounds_completed"] == 3
    assert fl["wire"]["by_type"]["train (unmask)"] == 2  # the two survivors, once
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
                          "privacy": {"noise_multiplier": 0.0},
                          "supply_cuts": [{"qkd": "qkd-c-hub", "from_round": 2}]}
    with pytest.raises(KeyBudgetError, match=r"hospital-c.*needs 50 keys.*qkd-c-hub"):
        run_federation(parse_scenario(data, "budget"))
    path = tmp_path / "budget.yaml"
    path.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(cli, ["fl", str(path), "--quiet"])
    assert result.exit_code == 2 and "not enough QKD keys for 50 rounds" in result.output


def test_rounds_that_would_overspend_the_privacy_budget_are_refused_before_starting(tmp_path):
    data = yaml.safe_load(DEFAULT.read_text())
    data["federated"]["rounds"] = 40  # DP-SGD, z = 2, over 40 rounds: epsilon 12.7 at delta 1e-5 (RDP accountant)
    path = tmp_path / "budget.yaml"
    path.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(cli, ["fl", str(path), "--quiet"])
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "federated.privacy.epsilon_budget: 40 rounds" in text, text
    assert "(record-level DP) spend epsilon 12.7 " in text and "more than the budget 10" in text


def test_fl_command_rejects_an_unknown_policy():
    result = CliRunner().invoke(cli, ["fl", str(DEFAULT), "--policy", "quantum-magic", "--quiet"])
    text = " ".join(result.output.replace("│", " ").split())  # rich may wrap the message in a box
    assert result.exit_code == 2 and "'quantum-magic' is not one of 'qkd-only', 'hybrid', 'pq-only'" in text


@pytest.mark.parametrize(("change", "field"), [
    ({"aggregator": "nobody"}, "federated.aggregator"),
    ({"organisations": [{"sae": "hospital-a", "data_share": 0.5}, {"sae": "hospital-x", "data_share": 0.5}]},
     "federated.organisations[1].sae"),
    ({"organisations": [{"sae": "hospital-a", "data_share": 0.5}, {"sae": "hospital-b", "data_share": 0.2}]},
     "federated.organisations"),
    ({"supply_cuts": [{"qkd": "qkd-nowhere", "from_round": 1}]}, "federated.supply_cuts[0].qkd"),
    ({"model": "vqc"}, "federated.privacy.unit"),  # DP-SGD needs per-record gradients: the VQC has none
    ({"privacy": {"unit": "patient"}}, "federated.privacy.unit"),
])
def test_bad_federated_sections_name_the_field(change, field):
    data = yaml.safe_load(DEFAULT.read_text())
    data["federated"] |= change
    with pytest.raises(ScenarioError) as err:
        parse_scenario(data, "bad.yaml")
    assert field in str(err.value) and "bad.yaml" in str(err.value)


def test_the_protected_client_refuses_an_unprotected_train_message():
    from qfabric.apps.federated.grid import LocalGrid

    grid = LocalGrid(protected(), [{"partition-id": 0}])
    [reply] = grid.send_and_receive([Message(RecordDict({"arrays": ArrayRecord([np.zeros(2, np.float32)]),
                                                          "config": ConfigRecord({"server-round": 1})}),
                                             dst_node_id=next(iter(grid.get_node_ids())), message_type="train")])
    assert reply.has_error() and "without qfabric protection" in reply.error.reason


def test_the_shipped_scenario_validates():
    sc = load_scenario(DEFAULT)
    assert sc.federated is not None and len(sc.federated.organisations) == 3
