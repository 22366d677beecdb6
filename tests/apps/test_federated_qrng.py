"""The federation's DP noise and the KMS's relayed keys can come from the simulated QRNG (issue 15, part 5)."""

from pathlib import Path

import numpy as np
import yaml

from qfabric.apps.federated.privacy import noise_generator
from qfabric.apps.qrng.stream import QrngGenerator
from qfabric.scenario import parse_scenario
from qfabric.scenario.federation import run_federation

DEFAULT = Path(__file__).resolve().parents[2] / "scenarios" / "three-hospitals.yaml"


def test_the_noise_generator_is_the_qrngs_when_asked_and_reproducible_from_its_seed():
    seed = np.random.SeedSequence([7, 1])
    qrng = noise_generator("qrng", seed)
    assert isinstance(qrng, QrngGenerator)
    draws = qrng.normal(size=1000)
    assert np.array_equal(draws, noise_generator("qrng", np.random.SeedSequence([7, 1])).normal(size=1000))
    assert abs(draws.mean()) < 4 / np.sqrt(1000) and abs(draws.std() - 1) < 0.1  # a standard normal
    assert not isinstance(noise_generator("seeded", seed), QrngGenerator)
    assert not isinstance(noise_generator(None, seed), QrngGenerator)


def test_a_federation_draws_its_dp_noise_and_relayed_keys_from_the_qrng(tmp_path, monkeypatch):
    import qfabric.apps.qrng as qrng_package

    made = []
    real = qrng_package.generator
    monkeypatch.setattr(qrng_package, "generator", lambda seed=None, **kw: made.append(seed) or real(seed, **kw))
    data = yaml.safe_load(DEFAULT.read_text())
    data["randomness"] = {"dp_noise": "qrng", "relay_keys": "qrng"}
    data["federated"] |= {"hidden_layers": [8], "compare_plain": False}  # DP-SGD draws noise per step: keep it small
    report = run_federation(parse_scenario(data, "qrng"), rounds=2, workdir=tmp_path)
    assert report["privacy"]["noise_source"] == "qrng" and report["privacy"]["noise_multiplier"] > 0
    assert len(made) == 2 * 3  # every hospital's noise, every round, from a QRNG generator
    supply = report["key_supply"]
    assert supply["relay_key_source"] == "qrng"
    relayed = sum(s.get("trusted_relay", 0) for s in supply["sources"].values())
    assert relayed > 0 and supply["qrng_relay_blocks"] > 0  # the hub relayed keys, drawn from the QRNG
    assert report["rounds_completed"] == 2
