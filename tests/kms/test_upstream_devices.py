"""QKD devices upstream: a KME whose links' keys come from ETSI GS QKD 014 endpoints (``qkd[].supply: etsi014``),
tested against a second qfabric KME acting as the devices."""

import copy

import pytest

from qfabric.errors import QfabricError, ScenarioError
from qfabric.kms.client import SaeClient
from qfabric.kms.local import LocalKme, ThreadedKme, free_port
from qfabric.kms.relay import link_pool
from qfabric.kms.server import ServerConfig
from qfabric.kms.store import KeyStore
from qfabric.scenario import parse_scenario
from qfabric.scenario.keysupply import KeySupply

DEVICE_SAES = {"q-a-t": ("at-a", "at-t"), "q-t-b": ("tb-t", "tb-b")}  # each link's two ends, as its device knows them


@pytest.fixture
def device(tmp_path):
    """One qfabric KME serving the devices' ETSI 014 API for both links (each pair of SAEs: one link's ends)."""
    base = LocalKme.create(tmp_path / "device", [s for ends in DEVICE_SAES.values() for s in ends], kme_id="qkd-dev",
                           max_key_per_request=64)
    for a, b in DEVICE_SAES.values():
        base.fill(a, b, 300)
    server = ThreadedKme(base.config, base.store)
    server.start()
    yield base, server
    server.stop()


def device_scenario(kms_scenario: dict, url: str) -> dict:
    data = copy.deepcopy(kms_scenario)
    for q in data["qkd"]:
        a, b = DEVICE_SAES[q["name"]]
        q["supply"] = {"kind": "etsi014", "ca": "device/pki/ca.pem", "keys_per_request": 50,
                       "ends": [{"url": url, "cert": f"device/pki/{a}.pem", "key": f"device/pki/{a}.key"},
                                {"url": url, "cert": f"device/pki/{b}.pem", "key": f"device/pki/{b}.key"}]}
    return data


def test_link_keys_come_from_the_devices_and_the_kms_relays_and_serves_them(tmp_path, kms_scenario, device):
    base, server = device
    sc = parse_scenario(device_scenario(kms_scenario, server.url), "devices.yaml", tmp_path)  # files relative to it
    store = KeyStore(f"sqlite:///{tmp_path / 'kme.db'}", b"k" * 32)
    pki = LocalKme.create(tmp_path / "kme", ["alice", "bob"], kme_id="kme-x").pki
    config = ServerConfig(kme_id="kme-x", saes={"alice": "kme-x", "bob": "kme-x"}, db_url=store.url,
                          secret_file=str(tmp_path / "kek"), certfile=str(pki["kme-x"]), keyfile=str(pki["kme-x.key"]),
                          cafile=str(pki["ca"]), port=free_port())
    kme_config = config.kme()
    supply = KeySupply(sc, store, "kme-x", kme_config.pool)
    assert supply.prime() == {"q-a-t": None, "q-t-b": None}  # no simulation: the devices' keys
    supply.tick(1.0)
    for a, b in DEVICE_SAES.values():
        accounting = base.accounting(a, b)
        assert accounting["keys_delivered"] == 50 and accounting["claims_done"] == 50  # taken at both ends
    # the relay XORs each hop's two copies and refuses if they differ: keys in the pair pool prove they matched
    assert store.available(kme_config.pool("alice", "bob")) > 0
    assert store.available(link_pool("a", "t", "a")) == store.available(link_pool("a", "t", "t"))
    extension = supply.link_qber("alice", "bob")
    assert extension["simulated_key_material"] is False and extension["supply_ready"] is True
    kme_config.status_extension = supply.link_qber
    kme = ThreadedKme(config, store, kme_config)
    kme.start()
    try:
        alice, bob = (SaeClient(kme.url, str(pki[s]), str(pki[f"{s}.key"]), str(pki["ca"])) for s in ("alice", "bob"))
        keys = alice.enc_keys("bob", number=2)
        assert bob.dec_keys("alice", [k for k, _ in keys]) == keys
        assert alice.status("bob")["status_extension"]["simulated_key_material"] is False
    finally:
        kme.stop()


def test_a_device_that_stops_answering_is_reported_and_leaves_the_pools_paired(tmp_path, kms_scenario, device):
    base, server = device
    sc = parse_scenario(device_scenario(kms_scenario, server.url), "devices.yaml", tmp_path)
    store = KeyStore("sqlite://", b"k" * 32)
    supply = KeySupply(sc, store, "kme-x", lambda a, b: f"pair:{a}:{b}")
    supply.prime()
    supply.tick(0.5)
    fetched = base.accounting(*DEVICE_SAES["q-a-t"])["keys_delivered"]
    pair = store.available("pair:alice:bob")
    assert fetched == 50 and pair > 0
    server.stop()
    with pytest.raises(QfabricError, match="q-a-t"):
        supply.tick(0.5)
    assert store.available(link_pool("a", "t", "a")) == store.available(link_pool("a", "t", "t"))
    assert store.available("pair:alice:bob") == pair  # nothing relayed over the link that is down
    assert supply.links_now()["q-a-t"]["up"] is False


def test_device_supply_is_validated(tmp_path, kms_scenario):
    data = device_scenario(kms_scenario, "http://127.0.0.1:1")
    with pytest.raises(ScenarioError, match=r"qkd\[0\]\.supply\.ends\[0\]\.url"):
        parse_scenario(data, "devices.yaml", tmp_path)
    data = device_scenario(kms_scenario, "https://127.0.0.1:1")
    del data["qkd"][0]["supply"]["ends"][1]
    with pytest.raises(ScenarioError, match=r"qkd\[0\]\.supply\.ends"):
        parse_scenario(data, "devices.yaml", tmp_path)


def test_keys_between_kmes_use_the_joining_links_devices(tmp_path, kme_domain):
    """scenarios/two-domains.yaml with QKD devices on the link between the domains: the one-time pads of the
    forwarded keys are the devices' keys (the sending KME's end enc_keys, the receiving KME's end dec_keys)."""
    import json
    from pathlib import Path

    import yaml

    from qfabric.kms.certs import make_dev_pki

    base = LocalKme.create(tmp_path / "device", ["ns-north", "ns-south"], kme_id="qkd-dev", max_key_per_request=64)
    base.fill("ns-north", "ns-south", 50)
    device = ThreadedKme(base.config, base.store)
    device.start()
    data = yaml.safe_load((Path(__file__).parents[2] / "scenarios" / "two-domains.yaml").read_text())
    joining = next(q for q in data["qkd"] if q["link"] == "north-south")  # between exchange-north, exchange-south
    joining["supply"] = {"kind": "etsi014", "ca": "device/pki/ca.pem", "ends": [
        {"url": device.url, "cert": f"device/pki/{s}.pem", "key": f"device/pki/{s}.key"}
        for s in ("ns-north", "ns-south")]}
    scenario = parse_scenario(data, "two-domains.yaml", tmp_path)
    pki = make_dev_pki(tmp_path / "pki", kmes=["kme-north", "kme-south"], saes=["alice", "bob", "carol"])
    ports = {"kme-north": free_port(), "kme-south": free_port()}
    north = kme_domain(tmp_path, scenario, "kme-north", pki, ports["kme-north"], {"kme-south": ports["kme-south"]})
    south = kme_domain(tmp_path, scenario, "kme-south", pki, ports["kme-south"], {"kme-north": ports["kme-north"]})
    try:
        for d in (north, south):
            assert d.supply.prime()["qkd-north-south"] is None  # no simulation of the joining link
            d.supply.tick(2.0)
            d.server.start()
        clients = {s: SaeClient(d.server.url, str(pki[s]), str(pki[f"{s}.key"]), str(pki["ca"]))
                   for s, d in (("alice", north), ("bob", south))}
        assert clients["alice"].status("bob")["stored_key_count"] >= 1
        keys = clients["alice"].enc_keys("bob", number=2)
        assert clients["bob"].dec_keys("alice", [k for k, _ in keys]) == keys
        assert base.accounting("ns-north", "ns-south") == {
            "units_free": 48, "units_used": 2, "keys_delivered": 2, "claims_done": 2}  # two pads, used at both ends
        received = south.events("forward_in")
        assert received and json.loads(received[0]["detail"])["pads"] == 2
    finally:
        for d in (north, south):
            if d.server._thread is not None and d.server._thread.is_alive():
                d.server.stop()
        device.stop()
