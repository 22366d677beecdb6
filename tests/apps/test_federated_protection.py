"""Federated-learning protection: encrypted updates, QKD-keyed secure aggregation, differential privacy."""

import math
import os

import numpy as np
import pytest

from qfabric.apps.federated.privacy import PrivacyAccountant, add_noise, clip
from qfabric.apps.federated.protect import UpdateRejected, decrypt_update, encrypt_update
from qfabric.apps.federated.secagg import aggregate, decode, encode, mask_update, pair_mask, recovery_share
from qfabric.errors import QfabricError

ORGS = ["hospital-a", "hospital-b", "hospital-c"]


def pair_keys(seed=0):
    rng = np.random.default_rng(seed)
    return {(a, b): rng.bytes(32) for i, a in enumerate(ORGS) for b in ORGS[i + 1 :]}


def updates(rng, size=1000):
    return {o: rng.normal(0, 0.1, size).astype(np.float32) for o in ORGS}


def test_aggregate_of_masked_updates_is_the_sum():
    rng = np.random.default_rng(1)
    ups, keys = updates(rng), pair_keys()
    masked = [mask_update(u, o, keys, round_number=4) for o, u in ups.items()]
    expected = sum(u.astype(np.float64) for u in ups.values())
    assert np.allclose(aggregate(masked), expected, atol=3 / 2**16)  # fixed-point rounding, one step per client


def test_a_masked_update_looks_random_without_the_keys():
    rng = np.random.default_rng(2)
    ups, keys = updates(rng, size=20_000), pair_keys()
    masked = mask_update(ups["hospital-a"], "hospital-a", keys, round_number=1)
    plain = encode(ups["hospital-a"]).astype(np.float64)
    seen = masked.astype(np.float64)
    assert abs(np.corrcoef(plain, seen)[0, 1]) < 0.03  # uncorrelated (4 sigma for 20,000 samples)
    counts, _ = np.histogram(seen, bins=16, range=(0, 2**32))
    expected = len(seen) / 16
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 45  # uniform over uint32 (15 degrees of freedom, p ~ 1e-4)
    # removing the masks needs the pair keys: with one wrong key the update stays hidden
    wrong = dict(keys)
    wrong[("hospital-a", "hospital-b")] = os.urandom(32)
    unmasked = masked - pair_mask(wrong[("hospital-a", "hospital-b")], 1, masked.size) \
        - pair_mask(keys[("hospital-a", "hospital-c")], 1, masked.size)
    assert not np.allclose(decode(unmasked), ups["hospital-a"], atol=1e-3)
    right = masked - pair_mask(keys[("hospital-a", "hospital-b")], 1, masked.size) \
        - pair_mask(keys[("hospital-a", "hospital-c")], 1, masked.size)
    assert np.allclose(decode(right), ups["hospital-a"], atol=1 / 2**16)


def test_a_dropped_client_is_recovered_from_the_survivors_masks():
    rng = np.random.default_rng(3)
    ups, keys = updates(rng), pair_keys()
    survivors = ["hospital-a", "hospital-c"]
    masked = [mask_update(ups[o], o, keys, 7) for o in survivors]
    # without recovery the sum is garbage ...
    assert not np.allclose(aggregate(masked), ups["hospital-a"] + ups["hospital-c"], atol=1e-2)
    # ... with each survivor's mask with the dropped client removed, it is the survivors' sum
    shares = [recovery_share(o, "hospital-b", keys, 7, 1000) for o in survivors]
    assert np.allclose(aggregate(masked, shares), ups["hospital-a"].astype(np.float64) + ups["hospital-c"],
                       atol=2 / 2**16)


def test_masks_differ_per_round_and_values_are_bounded():
    key = bytes(32)
    assert not np.array_equal(pair_mask(key, 1, 8), pair_mask(key, 2, 8))
    with pytest.raises(QfabricError, match="clip first"):
        encode(np.array([1e6]))


def test_encrypted_updates_reject_tampering_replay_and_wrong_shapes():
    key = os.urandom(32)
    update = [np.ones((3, 2), np.float32), np.zeros(5, np.float32)]
    blob = encrypt_update(update, key, 2, "hospital-a")
    assert [a.shape for a in decrypt_update(blob, key, 2, "hospital-a", [(3, 2), (5,)])] == [(3, 2), (5,)]
    tampered = blob[:-5] + bytes([blob[-5] ^ 1]) + blob[-4:]
    for args in ((tampered, key, 2, "hospital-a"), (blob, key, 3, "hospital-a"), (blob, key, 2, "hospital-b"),
                 (blob, os.urandom(32), 2, "hospital-a")):
        with pytest.raises(UpdateRejected, match="failed authentication"):
            decrypt_update(*args, [(3, 2), (5,)])
    with pytest.raises(UpdateRejected, match="shapes"):
        decrypt_update(blob, key, 2, "hospital-a", [(6,), (5,)])


def test_clipping_and_noise():
    rng = np.random.default_rng(4)
    update = [np.full(100, 3.0), np.full(44, 4.0)]
    clipped, norm = clip(update, max_norm=1.0)
    assert norm == pytest.approx(math.sqrt(100 * 9 + 44 * 16))
    assert math.sqrt(sum(float((a**2).sum()) for a in clipped)) == pytest.approx(1.0)
    small, _ = clip([np.full(4, 0.1)], max_norm=1.0)
    assert np.allclose(small[0], 0.1)  # already inside: untouched
    noisy = add_noise([np.zeros(50_000)], std=0.5, rng=rng)[0]
    assert noisy.std() == pytest.approx(0.5, rel=0.02) and abs(noisy.mean()) < 0.01


def test_privacy_accountant_behaves_and_respects_the_classic_rdp_bound():
    # Gaussian mechanism, no sampling: RDP eps(a) = T a / (2 sigma^2); eps <= min_a eps(a) + log(1/delta)/(a-1)
    sigma, rounds, delta = 1.5, 30, 1e-5
    acc = PrivacyAccountant(sigma, 1.0, delta)
    classic = min(rounds * a / (2 * sigma**2) + math.log(1 / delta) / (a - 1) for a in np.linspace(1.01, 200, 20_000))
    assert 0.7 * classic < acc.epsilon(rounds) <= classic * 1.001
    assert acc.epsilon(10) < acc.epsilon(20) < acc.epsilon(40)
    assert PrivacyAccountant(3.0).epsilon(20) < PrivacyAccountant(1.0).epsilon(20)
    assert PrivacyAccountant(1.0, sampling_rate=0.1).epsilon(20) < PrivacyAccountant(1.0).epsilon(20)


def test_pairwise_keys_come_from_the_kms_and_drive_secure_aggregation(tmp_path):
    from qfabric.apps.federated.keys import pairwise_keys
    from qfabric.kms.local import LocalKme

    kme = LocalKme.create(tmp_path, ORGS)
    for i, a in enumerate(ORGS):
        for b in ORGS[i + 1 :]:
            kme.fill(a, b, 4)
    kme.start()
    try:
        clients = {o: kme.client(o) for o in ORGS}
        keys = pairwise_keys(clients)
        for c in clients.values():
            c.close()
    finally:
        kme.stop()
    assert set(keys) == {("hospital-a", "hospital-b"), ("hospital-a", "hospital-c"), ("hospital-b", "hospital-c")}
    assert len(set(keys.values())) == 3
    for a, b in keys:
        assert kme.accounting(a, b)["claims_done"] == 1  # each key used by both ends, once
    rng = np.random.default_rng(5)
    ups = updates(rng)
    masked = [mask_update(u, o, keys, round_number=1) for o, u in ups.items()]
    assert np.allclose(aggregate(masked), sum(u.astype(np.float64) for u in ups.values()), atol=3 / 2**16)
