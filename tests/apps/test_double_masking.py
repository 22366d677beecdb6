"""Double masking (secure_aggregation: double-masking): self-masks whose seeds the organisations share, so an
aggregator that fakes a dropout cannot unmask an update, which it can under pairwise masks alone.

Federations run the shipped scenario reduced (a small MLP, 2-3 rounds) with a real KME on 127.0.0.1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

import qfabric.scenario.federation as federation
from qfabric.apps.federated import secagg
from qfabric.apps.federated.protect import decrypt_update
from qfabric.apps.federated.strategy import SecureFedAvg
from qfabric.apps.federated.wire import RECORD, UNMASK, read_record
from qfabric.scenario import parse_scenario
from qfabric.scenario.federation import run_federation

DEFAULT = Path(__file__).resolve().parents[2] / "scenarios" / "three-hospitals.yaml"


def scenario(**federated):
    data = yaml.safe_load(DEFAULT.read_text())
    data["federated"] |= {"hidden_layers": [16], "rounds": 2, "compare_plain": False} | federated
    return parse_scenario(data, "three-hospitals (double masking test)")


def test_self_masks_cancel_with_the_rebuilt_seeds_and_fewer_shares_rebuild_nothing():
    rng = np.random.default_rng(5)
    orgs = ["a", "b", "c", "d"]
    keys = {(x, y): rng.bytes(32) for i, x in enumerate(orgs) for y in orgs[i + 1:]}
    updates = {o: rng.normal(0, 0.1, 500) for o in orgs}
    seeds = {o: rng.bytes(secagg.SEED_BYTES) for o in orgs}
    masked = [secagg.mask_update(u, o, keys, 3) + secagg.self_mask(seeds[o], 3, 500) for o, u in updates.items()]
    without_self = secagg.aggregate(masked)
    assert np.abs(without_self - sum(updates.values())).max() > 1e3  # self-masks do not cancel by themselves
    shares = {o: secagg.share_seed(seeds[o], [p for p in orgs if p != o], secagg.seed_threshold(3)) for o in orgs}
    rebuilt = {o: secagg.rebuild_seed(list(s.values())[:2]) for o, s in shares.items()}  # 2 of 3 peers
    assert rebuilt == seeds
    total = secagg.aggregate(masked, [secagg.self_mask(rebuilt[o], 3, 500) for o in orgs])
    assert np.allclose(total, sum(updates.values()), atol=4 / 2**16)  # fixed-point rounding, one step per client
    assert secagg.rebuild_seed(list(shares["a"].values())[:1]) != seeds["a"]  # one share of a 2-of-3 sharing
    with pytest.raises(Exception, match="threshold in 1..3"):
        secagg.share_seed(seeds["a"], ["b", "c", "d"], 4)


def test_double_masking_trains_the_same_model_with_one_more_message_a_round():
    pairwise = run_federation(scenario())
    double = run_federation(scenario(secure_aggregation="double-masking"))
    # the self-masks come off exactly (modulo 2^32): the same sums, the same model, round by round
    assert [c["loss"] for c in double["curves"]["secure"]] == [c["loss"] for c in pairwise["curves"]["secure"]]
    assert double["wire"]["by_type"]["train (unmask)"] == 3 * 2 and "train (unmask)" not in pairwise["wire"]["by_type"]
    assert all(r["failed"] is None and not r["dropped"] for r in double["per_round"])
    assert double["secure_aggregation"] == {"mode": "double-masking", "seed_threshold": None}


def test_with_three_organisations_a_dropout_fails_the_round_unless_one_share_rebuilds_a_seed():
    dropout = [{"sae": "hospital-a", "round": 2}]
    strict = run_federation(scenario(secure_aggregation="double-masking", dropouts=dropout))
    r2 = strict["per_round"][1]
    assert "self-mask seed has 1 of the 2 shares" in r2["failed"], r2  # B's seed: A (gone) and C hold its shares
    assert strict["rounds_completed"] == 1
    lenient = run_federation(scenario(secure_aggregation="double-masking", seed_threshold=1, dropouts=dropout))
    assert lenient["per_round"][1]["failed"] is None and lenient["rounds_completed"] == 2


def _fakes_c_dropout(stolen: dict, second_ask: dict):
    """A malicious aggregator: it opens C's sealed update (its to open), tells A and B that C dropped out, adds
    their revealed masks with C to C's masked update, and then asks A once more, for its share of C's seed."""

    class FakesADropout(SecureFedAvg):
        def aggregate_train(self, server_round, replies):
            replies = list(replies)
            names = {n: m.sae for n, m in self._directory.items()}
            [c] = [m for m in replies if names[m.metadata.src_node_id] == "hospital-c"]
            cur = self._current
            record = read_record(c.content[RECORD])
            [update] = decrypt_update(record["update"], cur["sessions"][c.metadata.src_node_id][1], server_round,
                                      "hospital-c", [(cur["size"],)])
            stolen[server_round] = {"masked": update.view(np.uint32).copy(), "fb": cur["fb"],
                                    "shares-of-c": dict(zip(record["share-to"], record["seed-shares"], strict=True))
                                    if "share-to" in record else {}}
            return super().aggregate_train(server_round, [m for m in replies if m is not c])

        def _unmask(self, server_round, survivors, dropped, seed_shares, size, threshold, log):
            out = super()._unmask(server_round, survivors, dropped, seed_shares, size, threshold, log)
            stolen[server_round]["revealed"] = out[: len(survivors)]  # each survivor's masks with C
            a = next(n for n in survivors if self._directory[n].sae == "hospital-a")
            shares = stolen[server_round]["shares-of-c"]
            if shares:  # double masking: ask A for its share of C's seed too
                fields = self._policy_fields(server_round) | {
                    "dropped": [], "survivors": ["hospital-a", "hospital-b", "hospital-c"],
                    "share-from": ["hospital-c"], "seed-shares": [shares["hospital-a"]]}
                self._query(self._grid, UNMASK, {a: fields}, log)
                second_ask[server_round] = log.dropped.pop("hospital-a", None)
            return out

    return FakesADropout


@pytest.mark.parametrize("mode", ["pairwise", "double-masking"])
def test_an_aggregator_that_fakes_a_dropout_reads_the_update_only_without_double_masking(monkeypatch, mode):
    true_updates = {}
    real_mask = secagg.mask_update

    def recording_mask(update, me, *args, **kwargs):
        true_updates[me] = np.array(update, copy=True)
        return real_mask(update, me, *args, **kwargs)

    stolen, second_ask = {}, {}
    monkeypatch.setattr(secagg, "mask_update", recording_mask)
    monkeypatch.setattr(federation, "SecureFedAvg", _fakes_c_dropout(stolen, second_ask))
    extra = {"secure_aggregation": mode, "seed_threshold": 1} if mode == "double-masking" else {}
    fl = run_federation(scenario(rounds=1, **extra))
    [r1] = fl["per_round"]
    assert r1["failed"] is None and set(r1["dropped"]) == {"hospital-c"}  # A and B's sum: the round completes
    s = stolen[1]
    guess = secagg.decode(s["masked"] + sum(s["revealed"]), s["fb"])  # C's masks with A and B taken off
    if mode == "pairwise":
        assert np.allclose(guess, true_updates["hospital-c"], atol=1 / 2 ** s["fb"])  # C's update, read
    else:
        # still under C's self-mask: uniform over the fixed point's range +-2^(31 - fb) (median |x|: half of it)
        half_range = 2.0 ** (31 - s["fb"]) / 2
        assert np.median(np.abs(guess)) > half_range / 2 > 10 * np.abs(true_updates["hospital-c"]).max()
        assert "unmasked already" in second_ask[1]  # and A gives no share of C's seed on a second ask


def test_a_deployments_run_config_turns_double_masking_on(tmp_path):
    from qfabric.apps.federated.deploy import secure_fedavg
    from qfabric.kms.certs import make_dev_pki

    pki = make_dev_pki(tmp_path, kmes=["kme"], saes=["aggregator"])
    config = {"qfabric-aggregator": "aggregator", "qfabric-kme-url": "https://127.0.0.1:1",
              "qfabric-cert": str(pki["aggregator"]), "qfabric-key": str(pki["aggregator.key"]),
              "qfabric-ca": str(pki["ca"])}
    with secure_fedavg(config) as plain, secure_fedavg(config | {"double-masking": True, "seed-threshold": 1}) as dm:
        assert (plain.protection.double_masking, plain.protection.seed_threshold) == (False, None)
        assert (dm.protection.double_masking, dm.protection.seed_threshold) == (True, 1)
        assert dm.protection.identity.sae == "aggregator"  # signs its key agreements
