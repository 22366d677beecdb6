"""Keys between KME domains: two KMEs on loopback, fed by scenarios/two-domains.yaml's QKD links, forwarding keys
over the link that joins their domains (qfabric.kms.interkme)."""

import base64
from pathlib import Path

import httpx
import pytest

from qfabric.errors import ScenarioError
from qfabric.kms.certs import make_dev_pki
from qfabric.kms.client import KmeError, tls_context
from qfabric.kms.interkme import FORWARD_PATH, gateway
from qfabric.kms.local import free_port
from qfabric.scenario import load_scenario
from qfabric.scenario.keysupply import KeySupply
from qfabric.scenario.load import parse_scenario

SCENARIO = Path(__file__).parents[2] / "scenarios" / "two-domains.yaml"
KMES = ("kme-north", "kme-south")
SAES = ("alice", "bob", "carol")


@pytest.fixture(scope="module")
def domains(tmp_path_factory, kme_domain):
    tmp = tmp_path_factory.mktemp("two-domains")
    scenario = load_scenario(SCENARIO)
    pki = make_dev_pki(tmp / "pki", kmes=list(KMES), saes=list(SAES))
    ports = {k: free_port() for k in KMES}
    north = kme_domain(tmp, scenario, "kme-north", pki, ports["kme-north"], {"kme-south": ports["kme-south"]})
    south = kme_domain(tmp, scenario, "kme-south", pki, ports["kme-south"], {"kme-north": ports["kme-north"]})
    for d in (north, south):
        d.supply.prime()
        d.supply.tick(2.0)  # two simulated seconds of every link's key: pools and pads
        d.server.start()
    yield {"north": north, "south": south, "pki": pki, "tmp": tmp, "scenario": scenario}
    for d in (north, south):
        d.server.stop()


def client(domains, sae: str, kme: str):
    from qfabric.kms.client import SaeClient

    pki = domains["pki"]
    return SaeClient(domains[kme].server.url, str(pki[sae]), str(pki[f"{sae}.key"]), str(pki["ca"]))


def test_an_sae_gets_keys_with_an_sae_of_another_kme_and_both_kmes_audit_them(domains):
    with client(domains, "alice", "north") as alice, client(domains, "bob", "south") as bob:
        status = alice.status("bob")
        assert status["source_KME_ID"] == "kme-north" and status["target_KME_ID"] == "kme-south"
        assert status["stored_key_count"] >= 3
        keys = alice.enc_keys("bob", number=3)
        got = bob.dec_keys("alice", [k for k, _ in keys])
    assert got == keys and len({m for _, m in keys}) == 3 and all(len(m) == 32 for _, m in keys)
    ids = {k for k, _ in keys}
    north, south = domains["north"], domains["south"]
    assert any(set(eval_ids(r)) == ids for r in north.events("forward_out"))
    assert any(set(eval_ids(r)) == ids and '"from_kme": "kme-north"' in r["detail"] for r in south.events("forward_in"))
    with client(domains, "bob", "south") as bob, pytest.raises(KmeError) as again:
        bob.dec_keys("alice", [keys[0][0]])  # each key once
    assert again.value.status == 400


def eval_ids(row: dict) -> list[str]:
    import json

    return json.loads(row["key_ids"] or "[]")


def test_keys_go_both_ways_and_to_an_sae_at_the_joining_link(domains):
    with client(domains, "bob", "south") as bob, client(domains, "alice", "north") as alice:
        keys = bob.enc_keys("alice", number=2, size=512)  # two units per key
        assert alice.dec_keys("bob", [k for k, _ in keys]) == keys and all(len(m) == 64 for _, m in keys)
    with client(domains, "alice", "north") as alice, client(domains, "carol", "south") as carol:
        keys = alice.enc_keys("carol")
        assert carol.dec_keys("alice", [k for k, _ in keys]) == keys


def test_a_refused_forward_hands_out_nothing_and_spends_its_pads(domains):
    north, south = domains["north"], domains["south"]
    pool = south.supply.relay_pool(gateway("kme-north"), "bob")
    drained = south.store.available(pool)
    south.store.take_units(pool, drained, "test_drain")  # the south cannot relay to bob's node now
    before = south.store.accounting("forwarded")["keys_delivered"]
    with client(domains, "alice", "north") as alice, pytest.raises(KmeError) as refused:
        alice.enc_keys("bob")
    assert refused.value.status == 503 and "kme-south refused" in refused.value.body["message"]
    assert south.store.accounting("forwarded")["keys_delivered"] == before  # nothing stored for bob
    failed = north.events("forward_failed")
    assert failed and '"status": 503' in failed[0]["detail"]
    south.supply.tick(1.0)  # the pool refills: forwarding works again
    with client(domains, "alice", "north") as alice, client(domains, "bob", "south") as bob:
        keys = alice.enc_keys("bob")
        assert bob.dec_keys("alice", [keys[0][0]]) == keys


def test_a_replayed_forward_and_a_non_kme_caller_are_refused(domains):
    north, south, pki = domains["north"], domains["south"], domains["pki"]
    link, pads = north.supply.take_pads("kme-south", 1)
    body = {"master_SAE_ID": "alice", "slave_SAE_IDs": ["bob"], "size": 256, "link": link,
            "keys": [{"key_ID": "6f1f0c5e-6a36-4c41-9f53-0a4a8e2b1c11", "pad_IDs": [pads[0][0]],
                      "key": base64.b64encode(bytes(32)).decode()}]}
    url = south.server.url + FORWARD_PATH
    as_north = tls_context(str(pki["kme-north"]), str(pki["kme-north.key"]), str(pki["ca"]))
    with httpx.Client(verify=as_north) as http:
        assert http.post(url, json=body).status_code == 200
        body["keys"][0]["key_ID"] = "7a2b0c5e-6a36-4c41-9f53-0a4a8e2b1c22"  # the same pad again
        replay = http.post(url, json=body)
        assert replay.status_code == 400 and "used before" in replay.json()["message"]
        body["keys"][0]["pad_IDs"] = ["not-a-pad"]
        assert http.post(url, json=body).status_code == 400
    as_alice = tls_context(str(pki["alice"]), str(pki["alice.key"]), str(pki["ca"]))
    with httpx.Client(verify=as_alice) as http:
        denied = http.post(url, json=body)
    assert denied.status_code == 401 and denied.json()["message"]
    refusals = [r for r in south.events("refused") if '"call": "kme_forward"' in r["detail"]]
    assert len(refusals) >= 3  # every refusal audited


def test_an_sae_of_another_kme_cannot_call_this_kme(domains):
    with client(domains, "bob", "north") as bob_at_north, pytest.raises(KmeError) as refused:
        bob_at_north.enc_keys("alice")
    assert refused.value.status == 401


def test_pads_never_repeat_across_restarts(domains):
    north = domains["north"]
    again = KeySupply(domains["scenario"], north.store, "kme-north", north.kme_config.pool)
    again.tick(1.0)
    _, first = north.supply.take_pads("kme-south", 1)
    _, restarted = again.take_pads("kme-south", 1)
    assert first[0][0].split(".")[0] != restarted[0][0].split(".")[0] and first[0][1] != restarted[0][1]


def test_saes_of_kmes_no_qkd_link_joins_are_refused():
    import yaml

    data = yaml.safe_load(SCENARIO.read_text())
    data["qkd"] = [q for q in data["qkd"] if q["link"] != "north-south"]
    with pytest.raises(ScenarioError) as err:
        parse_scenario(data, "two-domains.yaml", SCENARIO.parent)
    assert "kms.saes" in str(err.value) and "no chain of decoy-bb84 QKD links" in str(err.value)


def test_keys_cross_a_transit_domain_hop_by_hop(tmp_path, kme_domain):
    """Three KMEs in a row: k2 relays alice's keys across its domain (t1 to t2) and forwards them on to k3."""
    nodes = ["a", "t1", "t2", "b"]
    links = [{"name": f"{x}-{y}", "between": [x, y], "length_km": 10, "profile": "near-term"}
             for x, y in zip(nodes, nodes[1:], strict=False)]
    scenario = parse_scenario({
        "name": "three-domains", "seed": 7, "duration_s": 1.0, "nodes": [{"name": n} for n in nodes], "links": links,
        "chain": {"from": "a", "to": "b"},
        "qkd": [{"name": f"q-{link['name']}", "link": link["name"], "max_simulated_pulses": 3e7} for link in links],
        "kms": {"kmes": [{"id": "k1", "nodes": ["a"]}, {"id": "k2", "nodes": ["t1", "t2"]},
                         {"id": "k3", "nodes": ["b"]}],
                "saes": [{"id": "alice", "node": "a"}, {"id": "bob", "node": "b"}]}}, "three-domains.yaml")
    pki = make_dev_pki(tmp_path / "pki", kmes=["k1", "k2", "k3"], saes=["alice", "bob"])
    ports = {k: free_port() for k in ("k1", "k2", "k3")}
    neighbours = {"k1": ["k2"], "k2": ["k1", "k3"], "k3": ["k2"]}
    kmes = {k: kme_domain(tmp_path, scenario, k, pki, ports[k], {n: ports[n] for n in neighbours[k]}) for k in ports}
    assert kmes["k1"].supply.routes == {"k2": "k2", "k3": "k2"}
    try:
        for d in kmes.values():
            d.supply.prime()
            d.supply.tick(2.0)
            d.server.start()
        transit_pool = kmes["k2"].supply.relay_pool(gateway("k1"), gateway("k3"))
        before = kmes["k2"].store.available(transit_pool)
        domains = {"k1": kmes["k1"], "k3": kmes["k3"], "pki": pki}
        with client(domains, "alice", "k1") as alice, client(domains, "bob", "k3") as bob:
            keys = alice.enc_keys("bob", number=2)
            assert bob.dec_keys("alice", [k for k, _ in keys]) == keys
        assert kmes["k2"].store.available(transit_pool) == before - 2  # one relayed key across k2 per key
        transit = kmes["k2"].events("forward_transit")
        assert transit and set(eval_ids(transit[0])) == {k for k, _ in keys}
        assert kmes["k2"].store.accounting("forwarded")["keys_delivered"] == 0  # k2 keeps no key
        kmes["k3"].server.stop()  # the last domain is down: nothing is handed out, both others say why
        with client(domains, "alice", "k1") as alice, pytest.raises(KmeError) as refused:
            alice.enc_keys("bob")
        assert refused.value.status == 503 and "kme" in refused.value.body["message"].lower()
        assert kmes["k2"].events("forward_failed") and kmes["k1"].events("forward_failed")
    finally:
        for d in kmes.values():
            if d.server._thread is not None and d.server._thread.is_alive():
                d.server.stop()


def test_two_kms_serve_processes_forward_keys_between_their_domains(tmp_path):
    """The two commands of scenarios/two-domains.yaml's header, then keys from alice (north) to bob (south)."""
    import os
    import subprocess
    import sys
    import time

    from qfabric.kms.client import SaeClient

    pki = make_dev_pki(tmp_path / "pki", kmes=list(KMES), saes=list(SAES))
    ports = {k: free_port() for k in KMES}
    procs = {}
    for kme, other in (KMES, KMES[::-1]):
        log = open(tmp_path / f"{kme}.log", "wb")  # noqa: SIM115 (closed with the process)
        procs[kme] = subprocess.Popen(
            [sys.executable, "-m", "qfabric.cli.main", "kms", "serve", str(SCENARIO), "--kme", kme, "--pki",
             str(tmp_path / "pki"), "--port", str(ports[kme]), "--peer", f"{other}=https://127.0.0.1:{ports[other]}"],
            stdout=log, stderr=log, env=dict(os.environ, COLUMNS="400"))
    try:
        def client(sae, kme):
            return SaeClient(f"https://127.0.0.1:{ports[kme]}", str(pki[sae]), str(pki[f"{sae}.key"]), str(pki["ca"]))

        deadline = time.monotonic() + 120
        keys = None
        with client("alice", "kme-north") as alice, client("bob", "kme-south") as bob:
            while keys is None and time.monotonic() < deadline:
                assert all(p.poll() is None for p in procs.values()), (tmp_path / "kme-north.log").read_text()
                try:
                    if alice.status("bob")["stored_key_count"] > 0:
                        keys = alice.enc_keys("bob")
                except (KmeError, httpx.HTTPError):
                    pass
                time.sleep(0.5)
            assert keys is not None, (tmp_path / "kme-north.log").read_text()
            assert bob.dec_keys("alice", [keys[0][0]]) == keys
        assert "forwarding to KME kme-south over link north-south" in (tmp_path / "kme-north.log").read_text()
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            p.wait(30)


def test_no_pads_on_the_joining_link_refuses_before_spending_relayed_keys(domains):
    north = domains["north"]
    link = north.supply.neighbours["kme-south"]
    pool = north.supply.relay_pool("alice", gateway("kme-south"))
    owed, before = link.owed_bits, north.store.available(pool)
    link.owed_bits = 0.0  # the joining link has given all its key
    try:
        with client(domains, "alice", "north") as alice, pytest.raises(KmeError) as refused:
            alice.enc_keys("bob")
        assert refused.value.status == 503 and "not enough key on the link" in refused.value.body["message"]
        assert north.store.available(pool) == before
    finally:
        link.owed_bits = owed
