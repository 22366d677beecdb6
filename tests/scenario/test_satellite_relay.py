"""A satellite as a trusted node of the KMS (scenarios/satellite-relay.yaml): each pass's key reaches the pools of
the satellite's link to the station when the pass ends, and the KME relays keys through the satellite between
SAEs at two stations once both have key."""

import copy
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from qfabric.errors import ScenarioError
from qfabric.kms.relay import link_pool
from qfabric.kms.store import KeyStore
from qfabric.scenario import load_scenario, parse_scenario
from qfabric.scenario.keysupply import KeySupply
from qfabric.scenario.satellite import decoy_passes

EXAMPLE = Path(__file__).parents[2] / "scenarios" / "satellite-relay.yaml"
UNIT = 256


def pool_of(a, b):
    return "sae:" + "|".join(sorted((a, b)))


@pytest.fixture(scope="module")
def scenario():
    return load_scenario(EXAMPLE)


@pytest.fixture(scope="module")
def passes(scenario):
    sat = scenario.satellites[0]
    return {q.station: decoy_passes(scenario, sat, q) for q in sat.qkd}


def test_pass_keys_arrive_at_pass_end_and_are_relayed_through_the_satellite(scenario, passes):
    (xinglong_pass,), (graz_pass,) = passes["xinglong"], passes["graz"]
    assert xinglong_pass["end_s"] < graz_pass["start_s"]  # hours apart: the satellite holds the first key
    assert xinglong_pass["key_bits"] > 0 and graz_pass["key_bits"] > 0
    store = KeyStore("sqlite://", b"s" * 32)
    supply = KeySupply(scenario, store, "kme-micius", pool_of)
    sat_xinglong = link_pool("micius", "xinglong", "xinglong")
    pair = pool_of("xinglong", "graz-lab")

    supply.tick(xinglong_pass["end_s"] - 1)  # the pass is not over: its key is not distilled yet
    assert store.available(sat_xinglong) == 0
    supply.tick(2)
    xinglong_units = int(xinglong_pass["key_bits"]) // UNIT
    assert store.available(sat_xinglong) == store.available(link_pool("micius", "xinglong", "micius")) \
        == xinglong_units
    assert store.available(pair) == 0  # nothing from Graz yet: nothing to relay
    assert supply.link_qber("xinglong", "graz-lab")["pool_fill"] == 0

    supply.tick(graz_pass["end_s"] + 1 - supply.now_s)
    graz_units = int(graz_pass["key_bits"]) // UNIT
    assert 0 < graz_units < xinglong_units
    # the pair gets what the poorer satellite link has (the 8 km fibre in Graz has far more), the satellite keeps
    # the rest of Xinglong's key for later relays
    assert store.available(pair) == graz_units
    assert store.available(sat_xinglong) == xinglong_units - graz_units
    assert store.available(link_pool("micius", "graz", "graz")) == 0
    assert supply.path_now("xinglong", "graz-lab") == ["xinglong", "micius", "graz", "graz-lab"]

    status = supply.link_qber("xinglong", "graz-lab")
    assert status["hops"] == 3 and status["simulated_key_material"] is True
    fibre_qber = supply.links_now()["qkd-graz-fibre"]["qber"]
    assert status["link_qber"] == pytest.approx(max(xinglong_pass["qber"], graz_pass["qber"], fibre_qber))
    assert supply.worst_link_qber("graz-lab", "xinglong") == status["link_qber"]  # either order
    # the satellite links' rate: what their passes released, over the run so far (the relay's bottleneck)
    assert status["simulated_key_rate_bps"] == pytest.approx(graz_units * UNIT / supply.now_s)

    # the relayed keys are one key at both SAEs
    (given,) = store.reserve(pair, "xinglong", ["graz-lab"], 1, UNIT)
    (claimed,) = store.claim("graz-lab", "xinglong", [given.key_id])
    assert claimed.material == given.material and len(given.material) == UNIT // 8


def test_pass_keys_never_repeat_across_restarts(tmp_path, scenario, passes):
    (xinglong_pass,) = passes["xinglong"]
    url = f"sqlite:///{tmp_path / 'kme.db'}"
    seen = []
    for _ in range(2):  # two starts of the KME on one database, each seeing the Xinglong pass
        store = KeyStore(url, b"k" * 32)
        supply = KeySupply(scenario, store, "kme-micius", pool_of)
        supply.tick(xinglong_pass["end_s"] + 1)
        seen.append(set(store.take_units(link_pool("micius", "xinglong", "xinglong"), 50, "test")))
        store.engine.dispose()
    assert len(seen[0]) == len(seen[1]) == 50 and not seen[0] & seen[1]


@pytest.fixture()
def data():
    return yaml.safe_load(EXAMPLE.read_text())


@pytest.mark.parametrize("change, field, words", [
    (lambda d: d.pop("kms"), "satellites[0].trusted_relay", "add a kms section"),
    (lambda d: d["satellites"][0].update(name="graz"), "satellites[0].name", "is also a node"),
    (lambda d: d["kms"]["kmes"].__setitem__(0, {"id": "kme-micius", "nodes": ["graz", "graz-lab"]}),
     "satellites[0].qkd", "belong to no KME"),
    (lambda d: d["kms"]["kmes"].extend([{"id": "kme-china", "nodes": ["xinglong"]}])
     or d["kms"]["kmes"][0].update(nodes=["graz", "graz-lab"]), "satellites[0].qkd", "relays inside one KME's domain"),
])
def test_bad_trusted_relays_name_the_field(data, change, field, words):
    bad = copy.deepcopy(data)
    change(bad)
    with pytest.raises(ScenarioError) as err:
        parse_scenario(bad, "relay.yaml")
    assert any(f == field and words in message for f, message in err.value.problems), err.value.problems


def test_without_trusted_relay_the_satellite_relays_nothing(data):
    plain = copy.deepcopy(data)
    plain["satellites"][0]["trusted_relay"] = False
    sc = parse_scenario(plain, "plain.yaml")
    with pytest.raises(Exception, match="no chain of QKD links"):
        KeySupply(sc, KeyStore("sqlite://", b"s" * 32), "kme-micius", pool_of)


def test_kms_serve_starts_after_the_passes_and_serves_relayed_keys(tmp_path, scenario, passes):
    """`qfabric kms serve --start-at`: the KME starts after both passes; the SAEs get one key over ETSI 014."""
    from qfabric.kms.certs import make_dev_pki
    from qfabric.kms.client import SaeClient
    from qfabric.kms.local import free_port

    pki = make_dev_pki(tmp_path / "pki", kmes=["kme-micius"], saes=["xinglong", "graz-lab"])
    port = free_port()
    with open(tmp_path / "serve.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "qfabric.cli.main", "kms", "serve", str(EXAMPLE),
                                 "--kme", "kme-micius", "--pki", str(tmp_path / "pki"), "--port", str(port),
                                 "--start-at", "24500"], stdout=log, stderr=log)
    try:
        url = f"https://127.0.0.1:{port}"
        deadline, count = time.time() + 90, 0
        with SaeClient(url, str(pki["xinglong"]), str(pki["xinglong.key"]), str(pki["ca"]), timeout=2) as beijing:
            while time.time() < deadline and count == 0:
                try:
                    count = beijing.status("graz-lab")["stored_key_count"]
                except Exception:
                    assert proc.poll() is None, (tmp_path / "serve.log").read_text()
                time.sleep(0.3)
            assert count == int(passes["graz"][0]["key_bits"]) // UNIT, (tmp_path / "serve.log").read_text()
            extension = beijing.status("graz-lab")["status_extension"]
            assert extension["hops"] == 3 and extension["supply_ready"] is True
            keys = beijing.enc_keys("graz-lab", number=2)
        with SaeClient(url, str(pki["graz-lab"]), str(pki["graz-lab.key"]), str(pki["ca"])) as graz:
            assert graz.dec_keys("xinglong", [k for k, _ in keys]) == keys
    finally:
        proc.terminate()
        proc.wait(10)


def test_kms_serve_refuses_a_negative_start(tmp_path):
    result = subprocess.run([sys.executable, "-m", "qfabric.cli.main", "kms", "serve", str(EXAMPLE), "--kme",
                             "kme-micius", "--pki", str(tmp_path), "--start-at", "-5"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--start-at -5" in result.stderr, result.stderr
