"""Record-level differential privacy: DP-SGD in the hospitals' training (per-record clipping without per-record
gradients, Gaussian noise, Poisson sampling) and its accounting, against explicit computations and a published
number."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qfabric.apps.federated import model
from qfabric.apps.federated.data import split_dataset
from qfabric.apps.federated.privacy import RDP_ORDERS, DpSgd, PrivacyAccountant, record_epsilon_curve


def _records(classes: int, n: int = 24, features: int = 7, seed: int = 3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, features)).astype(np.float32)
    y = rng.integers(0, max(classes, 2), n).astype(np.float32)
    params = model.init_params([features, 9, 5, classes], rng)
    return params, X, y


def _record_gradients(params, X, y):
    """Every record's gradient, one record at a time (what the ghost norms avoid)."""
    return [model._gradients(params, X[i : i + 1], y[i : i + 1])[0] for i in range(len(y))]


@pytest.mark.parametrize("classes", [1, 4])  # sigmoid + binary cross-entropy, softmax + cross-entropy
def test_record_gradient_norms_equal_the_norms_of_explicit_per_record_gradients(classes):
    params, X, y = _records(classes)
    explicit = [math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads))
                for grads in _record_gradients(params, X, y)]
    assert model.record_gradient_norms(params, X, y) == pytest.approx(explicit, rel=1e-5)


def test_private_gradient_is_the_sum_of_clipped_record_gradients_plus_gaussian_noise():
    params, X, y = _records(4)
    dp = DpSgd(clip_norm=0.05, noise_multiplier=1.5)  # a small bound: most records are clipped
    clipped_sum = [np.zeros_like(p, dtype=np.float64) for p in params]
    clipped = 0
    for grads in _record_gradients(params, X, y):
        norm = math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads))
        clipped += norm > dp.clip_norm
        for k, g in enumerate(grads):
            clipped_sum[k] += g * min(1.0, dp.clip_norm / norm)
    assert clipped > len(y) // 2
    draws = [model._private_gradients(params, X, y, dp, expected_batch=16.0, noise_rng=np.random.default_rng(s))[0]
             for s in range(400)]
    noise = np.concatenate([np.concatenate([(g - c / 16.0).ravel() for g, c in zip(d, clipped_sum, strict=True)])
                            for d in draws])
    # mean: the clipped sum (no bias, 400 x 133 draws: 5 standard errors); spread: z C / B on every coordinate
    std = dp.noise_multiplier * dp.clip_norm / 16.0
    assert abs(noise.mean()) < 5 * std / math.sqrt(noise.size)
    assert noise.std() == pytest.approx(std, rel=0.02)


def test_training_draws_poisson_samples_of_the_batch_size_on_average(monkeypatch):
    params, X, y = _records(4, n=200)
    sizes = []
    real = model._private_gradients

    def spy(params, X, y, *args, **kwargs):
        sizes.append(len(y))
        return real(params, X, y, *args, **kwargs)

    monkeypatch.setattr(model, "_private_gradients", spy)
    dp = DpSgd(1.0, 1.0)
    for seed in range(20):
        model.train(params, X, y, epochs=3, batch_size=20, learning_rate=1e-2, rng=np.random.default_rng(seed),
                    privacy=dp)
    assert len(sizes) == 20 * dp.steps(200, 20, 3) == 20 * 30
    # each record joins a step with probability 20/200: Binomial(200, 0.1), mean 20, variance 18
    assert np.mean(sizes) == pytest.approx(20, abs=5 * math.sqrt(18 / len(sizes)))
    assert np.var(sizes) == pytest.approx(18, rel=0.2) and len(set(sizes)) > 10


def test_dp_sgd_trains_digits_and_is_reproducible_from_its_seeds():
    split = split_dataset("digits", [1.0], 0.2, 2026)
    data = split.partitions[0]
    params = model.init_params([64, 32, 10], np.random.default_rng(1))
    dp = DpSgd(1.0, 1.0)

    def run():
        with model.one_blas_thread():
            return model.train(params, data.X, data.y, epochs=4, batch_size=64, learning_rate=1e-2,
                               rng=np.random.default_rng(5), privacy=dp, noise_rng=np.random.default_rng(6))[0]

    trained = run()
    assert all(np.array_equal(a, b) for a, b in zip(trained, run(), strict=True))
    assert model.evaluate(trained, split.test.X, split.test.y)["accuracy"] > 0.8  # from 0.1 by chance


def test_record_level_accounting_reproduces_the_tf_privacy_tutorial():
    """TensorFlow Privacy's MNIST tutorial: 60,000 records, batches of 256 (sampling rate 0.427 %), noise 1.1,
    60 epochs = 14,063 steps: "eps = 3.01" at delta 1e-5 with the classic RDP-to-DP conversion
    (eps = min over orders of RDP + log(1/delta) / (order - 1)). dp-accounting's conversion is tighter."""
    steps = math.ceil(60 * 60_000 / 256)
    acc = PrivacyAccountant(1.1, 256 / 60_000, 1e-5)
    rdp = acc.rdp(steps)
    classic = min(r + math.log(1e5) / (a - 1) for a, r in zip(RDP_ORDERS, rdp, strict=True))
    assert steps == 14_063 and classic == pytest.approx(3.01, abs=0.02)
    assert 0.8 * classic < acc.epsilon(steps) < classic


def test_epsilon_by_round_scales_one_rounds_rdp_exactly_like_a_fresh_accounting():
    acc = PrivacyAccountant(1.5, 0.1, 1e-5)
    curve = acc.epsilon_curve(steps_per_round=18, rounds=6)
    assert curve == pytest.approx([acc.epsilon(18 * r) for r in range(1, 7)], rel=1e-9)
    assert curve == sorted(curve)
    # record-level: the organisation with the fewest records (largest sampling rate) spends the most
    sizes = [718, 432, 287]
    record = record_epsilon_curve(DpSgd(1.0, 1.5), sizes, batch_size=32, epochs=2, rounds=6, delta=1e-5)
    smallest = PrivacyAccountant(1.5, 32 / 287, 1e-5).epsilon_curve(DpSgd.steps(287, 32, 2), 6)
    assert record == pytest.approx(smallest) and DpSgd.steps(287, 32, 2) == 18
