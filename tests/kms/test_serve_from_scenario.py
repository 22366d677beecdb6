"""`qfabric kms serve`: a KME fed by a scenario's QKD links, reached over ETSI 014 by real SAE clients."""

import subprocess
import sys
import time

import pytest
import yaml

from qfabric.kms.certs import make_dev_pki
from qfabric.kms.client import SaeClient


@pytest.fixture
def served(tmp_path, free_port, kms_scenario):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(kms_scenario))
    pki = make_dev_pki(tmp_path / "pki", kmes=["kme-x"], saes=["alice", "bob"])
    port = free_port
    with open(tmp_path / "serve.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "qfabric.cli.main", "kms", "serve",
                                 str(tmp_path / "s.yaml"), "--kme", "kme-x", "--pki", str(tmp_path / "pki"),
                                 "--port", str(port)], stdout=log, stderr=log)
    url = f"https://127.0.0.1:{port}"
    deadline = time.time() + 90
    client = None
    while time.time() < deadline:
        try:
            client = SaeClient(url, str(pki["alice"]), str(pki["alice.key"]), str(pki["ca"]), timeout=2)
            client.status("bob")
            break
        except Exception:
            if proc.poll() is not None:
                raise RuntimeError((tmp_path / "serve.log").read_text()) from None
            time.sleep(0.3)
    yield url, pki, client
    client.close()
    proc.terminate()
    proc.wait(10)


def test_keys_flow_in_from_the_links_and_reach_both_saes(served):
    url, pki, alice = served
    first = alice.status("bob")["stored_key_count"]
    deadline = time.time() + 30  # the supply thread may be busy distilling the next QKD block
    while alice.status("bob")["stored_key_count"] <= first and time.time() < deadline:
        time.sleep(0.2)
    assert alice.status("bob")["stored_key_count"] > first  # the pool fills as the links produce key
    keys = alice.enc_keys("bob", number=3, size=512)
    with SaeClient(url, str(pki["bob"]), str(pki["bob.key"]), str(pki["ca"])) as bob:
        assert bob.dec_keys("alice", [k for k, _ in keys]) == keys
        assert bob.status("alice")["master_SAE_ID"] == "bob"


def test_serve_without_certificates_says_what_to_run(tmp_path, kms_scenario):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(kms_scenario))
    result = subprocess.run([sys.executable, "-m", "qfabric.cli.main", "kms", "serve",
                             str(tmp_path / "s.yaml"), "--kme", "kme-x", "--pki", str(tmp_path / "nopki")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "qfabric kms certs --out" in result.stderr and "--sae alice --sae bob" in result.stderr
