"""`qfabric kms keys enc|dec` fetch keys over ETSI 014 as an SAE: the same key at both ends, each handed out once,
and refusals or an unreachable KME end with exit code 2 and a message."""

import base64
import json

import pytest
from typer.testing import CliRunner

from qfabric.cli.main import app
from qfabric.kms.local import LocalKme, ThreadedKme, free_port

runner = CliRunner()


@pytest.fixture(scope="module")
def kme(tmp_path_factory):
    base = LocalKme.create(tmp_path_factory.mktemp("kme"), ["alice", "bob", "carol"])
    base.fill("alice", "bob", 8)
    threaded = ThreadedKme(base.config, base.store)
    threaded.start()
    yield base
    threaded.stop()


def sae(kme, name: str) -> list[str]:
    return ["--kme", kme.url, "--cert", str(kme.pki[name]), "--key", str(kme.pki[f"{name}.key"])]


def keys_of(result) -> list[dict]:
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["keys"]


def test_enc_then_dec_gives_both_ends_the_same_keys_once(kme):
    sent = keys_of(runner.invoke(app, ["kms", "keys", "enc", *sae(kme, "alice"), "--slave", "bob", "--number", "2"]))
    assert len(sent) == 2 and all(len(base64.b64decode(k["key"])) == 32 for k in sent)
    ids = [arg for k in sent for arg in ("--key-id", k["key_ID"])]
    got = keys_of(runner.invoke(app, ["kms", "keys", "dec", *sae(kme, "bob"), "--master", "alice", *ids]))
    assert got == sent
    again = runner.invoke(app, ["kms", "keys", "dec", *sae(kme, "bob"), "--master", "alice", *ids])
    text = " ".join(again.output.split())
    assert again.exit_code == 2 and "the KME refused: 400" in text and "not found" in text


def test_status_and_refusals_are_plain_messages(kme):
    status = runner.invoke(app, ["kms", "status", *sae(kme, "alice"), "--slave", "bob"])
    assert status.exit_code == 0 and json.loads(status.output)["slave_SAE_ID"] == "bob"
    foreign = runner.invoke(app, ["kms", "keys", "dec", *sae(kme, "carol"), "--master", "alice",
                                  "--key-id", "00000000-0000-0000-0000-000000000000"])
    assert foreign.exit_code == 2 and "the KME refused" in foreign.output
    odd = runner.invoke(app, ["kms", "keys", "enc", *sae(kme, "alice"), "--slave", "bob", "--size", "12"])
    assert odd.exit_code == 2 and "size shall be a multiple of 8" in " ".join(odd.output.split())


def test_an_unreachable_kme_or_a_missing_certificate_is_named(kme, tmp_path):
    down = runner.invoke(app, ["kms", "keys", "enc", "--kme", f"https://127.0.0.1:{free_port()}",
                               *sae(kme, "alice")[2:], "--slave", "bob"])
    assert down.exit_code == 2 and "cannot reach https://127.0.0.1:" in down.output
    missing = runner.invoke(app, ["kms", "keys", "enc", "--kme", kme.url, "--cert", str(tmp_path / "none.pem"),
                                  "--key", str(kme.pki["alice.key"]), "--slave", "bob"])
    assert missing.exit_code == 2 and "none.pem: no such file" in " ".join(missing.output.split())
