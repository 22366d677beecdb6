"""Post-processing steps: Cascade efficiency and frame error rate, Toeplitz hashing, verification."""

import math
from collections import deque

import numpy as np
import pytest
from scipy.stats import beta

from qfabric.errors import ParameterError
from qfabric.qkd.postprocess import (
    block_sizes,
    cascade,
    estimate_qber,
    sift,
    toeplitz_hash,
    toeplitz_matrix,
    verify,
    verify_frames,
)


def noisy_pair(n, qber, rng):
    alice = rng.integers(0, 2, n, dtype=np.uint8)
    return alice, alice ^ (rng.random(n) < qber).astype(np.uint8)


def exact_pair(n, qber, rng):
    """Bob's copy with exactly round(qber n) wrong bits, the noise model of the cascade-cpp study."""
    alice = rng.integers(0, 2, n, dtype=np.uint8)
    bob = alice.copy()
    bob[rng.choice(n, int(qber * n + 0.5), replace=False)] ^= 1
    return alice, bob


def measure(variant, qber, frames, n=10_000, seed=0, pair=noisy_pair):
    """Mean efficiency, its standard error and the number of frames left wrong."""
    rng = np.random.default_rng(seed)
    effs, failures = [], 0
    for i in range(frames):
        alice, bob = pair(n, qber, rng)
        result = cascade(alice, bob, qber, variant, seed=i)
        failures += int(not np.array_equal(result.corrected, alice))
        effs.append(result.efficiency(qber))
    return float(np.mean(effs)), float(np.std(effs, ddof=1) / math.sqrt(frames)), failures


# Published efficiency f = (parities asked) / (n h(QBER)) at n = 10^4, mean of 10,000 reconciliations per point
# with exactly round(QBER n) errors: Bruno Rijsman's cascade-cpp study, brunorijsman/cascade-cpp,
# study/data/papers/data__algorithm=<variant>;key_size=10000;error_rate=vary ("efficiency" average and its
# standard deviation over the runs; run 2025-02-20), made to reproduce the figures of Martinez-Mateo et al. 2015.
CASCADE_CPP = {
    "original": {0.01: (1.142955, 0.012145), 0.02: (1.159373, 0.008881), 0.05: (1.184570, 0.005252),
                 0.08: (1.217105, 0.005560), 0.10: (1.208883, 0.003592)},
    # cascade-cpp does not reuse sub-blocks when cascading (a TODO in its Iteration::get_cascade_block) and, as it
    # serves all searches breadth-first, asks some parities twice: an upper bound for option8 with sub-block reuse
    "option8": {0.01: (1.159806, 0.117932), 0.02: (1.130985, 0.094676), 0.05: (1.109861, 0.074680),
                0.10: (1.222440, 0.151951)},
}


@pytest.mark.parametrize("qber", [0.01, 0.02, 0.05, 0.08, 0.10])
def test_original_cascade_efficiency_matches_the_published_table(qber):
    # 300 frames with the study's noise model: standard error 0.0002-0.0005. Never more than the reference
    # implementation, and at most 0.03 less: qfabric finishes each binary search before starting the next, so it
    # never asks a parity twice and skips blocks corrected meanwhile, while cascade-cpp runs all searches in
    # lock-step and leaks 0.010-0.020 more (measured with a Python port of its schedule, which reproduces its table
    # to 0.001). The padded-tree search this replaces leaked 0.07-0.10 more than the table at 1, 2 and 8 %.
    published, _ = CASCADE_CPP["original"][qber]
    f, se, failures = measure("original", qber, frames=300, seed=int(qber * 1000), pair=exact_pair)
    assert published - 0.03 <= f <= published + 3 * se, f"f = {f:.4f} +- {se:.4f}, published {published}"
    assert failures <= 2  # published frame error rate at these points: 3e-4 or below


@pytest.mark.parametrize("qber", [0.01, 0.02, 0.05, 0.10])
@pytest.mark.parametrize("variant", ["option7", "option8"])
def test_optimised_cascade_efficiency(variant, qber):
    # Martinez-Mateo et al. report about 1.05-1.07 for the optimised variants at n = 10^4 (REFERENCES.md s2, read
    # off their figures); measured here 1.06-1.09. option8 must beat cascade-cpp's option8, which lacks sub-block
    # reuse.
    f, se, failures = measure(variant, qber, frames=300, seed=int(qber * 1000) + 1, pair=exact_pair)
    assert 1.04 <= f <= 1.10, f"{variant} at {qber}: f = {f:.4f} +- {se:.4f}"
    if variant in CASCADE_CPP:
        assert f + 3 * se < CASCADE_CPP[variant][qber][0]
    assert failures <= 2


def reference_cascade(alice, bob, perms, inverse, sizes, reuse):
    """Cascade in plain Python, each parity computed from the bits and every disclosed parity recorded by its range.

    Same protocol and order as the kernel (first-in first-out searches, each finished before the next, a wave per
    round trip); raises if a parity is asked twice or could have been inferred from its parent and sibling.
    Returns Bob's bits, the disclosed parities as (pass, start, stop) and the round trips.
    """
    n = len(alice)
    bob = bob.copy()
    known = [{} for _ in sizes]  # per pass: (start, stop) -> Alice's parity
    disclosed = []

    def parity(bits, p, lo, hi):
        return int(np.bitwise_xor.reduce(bits[perms[p][lo:hi]]))

    def ask(p, rng, parent=None):
        assert rng not in known[p], f"parity of {rng} in pass {p} asked twice"
        if parent is not None:
            sibling = (rng[1], parent[1]) if rng[0] == parent[0] else (parent[0], rng[0])
            assert parent in known[p] and sibling not in known[p], f"parity of {rng} in pass {p} was known"
        known[p][rng] = parity(alice, p, *rng)
        disclosed.append((p, *rng))

    def odd(p, rng):
        return known[p][rng] != parity(bob, p, *rng)

    rounds = 0
    for cur, k in enumerate(sizes):
        rounds += 1
        queue = deque()
        for start in range(0, n, k):
            block = (start, min(start + k, n))
            ask(cur, block)
            if odd(cur, block):
                queue.append((cur, block))
        while queue:
            wave_depth = 0
            for _ in range(len(queue)):
                p, (lo, hi) = queue.popleft()
                if not odd(p, (lo, hi)):
                    continue
                depth = 0
                while hi - lo > 1:  # the left half holds the first half of the bits, rounded down
                    mid = lo + (hi - lo) // 2
                    left, right = (lo, mid), (mid, hi)
                    if left not in known[p]:
                        ask(p, left, parent=(lo, hi))
                        depth += 1
                    if odd(p, left):
                        hi = mid
                    else:
                        known[p].setdefault(right, known[p][(lo, hi)] ^ known[p][left])  # inferred, not disclosed
                        lo = mid
                wave_depth = max(wave_depth, depth)
                j = perms[p][lo]
                bob[j] ^= 1
                for q in range(cur + 1):  # cascade: the smallest known odd range holding bit j, per pass
                    pos = inverse[q][j]
                    start = pos - pos % sizes[q]
                    top = (start, min(start + sizes[q], n))
                    odd_ranges = [r for r in known[q] if r[0] <= pos < r[1] and (reuse or r == top) and odd(q, r)]
                    if odd_ranges:
                        queue.append((q, min(odd_ranges, key=lambda r: r[1] - r[0])))
            rounds += wave_depth
    return bob, disclosed, rounds


@pytest.mark.parametrize("variant", ["original", "option7", "option8"])
def test_disclosed_parities_match_an_independent_reference(variant):
    # small frames, many block shapes (odd sizes, short last blocks, one-bit blocks), estimates off the true QBER
    from qfabric.qkd.postprocess.cascade import shuffles

    rng = np.random.default_rng({"original": 11, "option7": 12, "option8": 13}[variant])
    for case in range(300):
        n = int(rng.integers(2, 1000))
        estimate = float(rng.choice([0.003, 0.01, 0.02, 0.05, 0.08, 0.13, 0.2, 0.3]))
        alice, bob = noisy_pair(n, float(rng.uniform(0, 2 * estimate)), rng)
        result = cascade(alice, bob, estimate, variant, seed=case)
        sizes, reuse = block_sizes(variant, estimate, n)
        perms, inverse = shuffles(n, len(sizes), case)
        corrected, disclosed, rounds = reference_cascade(alice, bob, perms, inverse, sizes, reuse)
        assert len(set(disclosed)) == len(disclosed)
        assert result.leaked_bits == len(disclosed), f"case {case}: n={n}, sizes {sizes}"
        assert np.array_equal(result.corrected, corrected)
        assert result.round_trips == rounds


def test_binary_search_asks_one_parity_per_halving():
    # one wrong bit in a single 73-bit block (original Cascade, k1 = 73 at QBER 1 %): besides the four top-level
    # parities Alice reveals exactly one parity per halving, 6 or 7 of them, never a range the parties already know
    # (a tree padded to 128 bits splits 64 + 9 and re-asks ranges clipped to their parent: up to 10)
    from qfabric.qkd.postprocess.cascade import shuffles

    def depth(pos, lo, hi):
        return 0 if hi - lo == 1 else 1 + (depth(pos, lo, lo + (hi - lo) // 2) if pos < lo + (hi - lo) // 2
                                           else depth(pos, lo + (hi - lo) // 2, hi))

    n = 73
    alice = np.random.default_rng(2).integers(0, 2, n, dtype=np.uint8)
    _, inverse = shuffles(n, 4, 5)
    asked = []
    for j in range(n):
        bob = alice.copy()
        bob[j] ^= 1
        result = cascade(alice, bob, 0.01, "original", seed=5)
        assert np.array_equal(result.corrected, alice)
        asked.append(result.leaked_bits - 4)
        assert asked[-1] == depth(int(inverse[0][j]), 0, n)
    assert sorted(set(asked)) == [6, 7] and sum(asked) == 6 * 55 + 7 * 18  # 2^7 - 73 = 55 leaves one level up


@pytest.mark.parametrize("qber", [0.02, 0.05])
def test_optimised_cascade_meets_the_goal(qber):
    # the goal: f <= 1.10 at 2 % and 5 % with a frame error rate below 1e-3, shown by the
    # Clopper-Pearson 95 % upper bound of the failures seen in 10,000 frames of 10^4 bits.
    # (option8 keeps ~1e-4 of frames wrong: when errors survive pass 3 in pairs, each half-key pass
    # finds them only half the time.)
    frames = 10_000
    f, _, failures = measure("option8", qber, frames=frames, seed=7)
    assert f <= 1.10
    assert beta.ppf(0.95, failures + 1, frames - failures) < 1e-3


def test_cascade_corrects_and_reports_costs():
    rng = np.random.default_rng(4)
    alice, bob = noisy_pair(50_000, 0.03, rng)
    result = cascade(alice, bob, 0.03, "option7", seed=1)
    assert np.array_equal(result.corrected, alice)
    errors = int(np.count_nonzero(alice != bob))
    assert result.leaked_bits >= errors * 1  # at least one parity per corrected error ...
    assert result.leaked_bits < len(alice)  # ... and far fewer than the key
    assert result.passes == 14 and result.round_trips > 14
    assert np.array_equal(bob, alice ^ (alice != bob))  # input untouched


def test_cascade_is_reproducible_from_its_seed():
    rng = np.random.default_rng(5)
    alice, bob = noisy_pair(10_000, 0.05, rng)
    a = cascade(alice, bob, 0.05, "option8", seed=3)
    b = cascade(alice, bob, 0.05, "option8", seed=3)
    c = cascade(alice, bob, 0.05, "option8", seed=4)
    assert a.leaked_bits == b.leaked_bits and np.array_equal(a.corrected, b.corrected)
    assert c.leaked_bits != a.leaked_bits


def test_block_sizes_follow_the_published_rules():
    assert block_sizes("original", 0.01, 10**6)[0] == [73, 146, 292, 584]
    sizes, reuse = block_sizes("option7", 0.02, 10_000)
    assert sizes[:3] == [64, 256, 5000] and len(sizes) == 14 and reuse
    assert block_sizes("option8", 0.05, 10_000)[0][:3] == [16, 256, 4096]


@pytest.mark.parametrize("n,m", [(1, 1), (7, 3), (64, 64), (1000, 1), (4097, 2048)])
def test_fft_toeplitz_equals_direct_product(n, m):
    rng = np.random.default_rng(n + m)
    x = rng.integers(0, 2, n, dtype=np.uint8)
    seed = rng.integers(0, 2, n + m - 1, dtype=np.uint8)
    assert np.array_equal(toeplitz_hash(x, seed, m), toeplitz_matrix(seed, n, m) @ x % 2)


def test_toeplitz_seed_must_have_n_plus_m_minus_one_bits():
    x = np.ones(10, dtype=np.uint8)
    with pytest.raises(ParameterError, match="n \\+ m - 1 = 13"):
        toeplitz_hash(x, np.ones(12, dtype=np.uint8), 4)
    with pytest.raises(ParameterError, match="output length"):
        toeplitz_hash(x, np.ones(20, dtype=np.uint8), 11)


def test_verification_catches_a_single_wrong_bit():
    rng = np.random.default_rng(8)
    alice = rng.integers(0, 2, 5000, dtype=np.uint8)
    bob = alice.copy()
    assert verify(alice, bob, 64, rng)
    bob[3210] ^= 1
    assert not verify(alice, bob, 64, rng)
    frames_a = [alice[:2500], alice[2500:]]
    frames_b = [alice[:2500], bob[2500:]]
    check = verify_frames(frames_a, frames_b, 64, rng)
    assert check.ok.tolist() == [True, False]
    assert check.tag_bits >= 64 and check.tag_bits % 61 == 0
    # a difference in any single word, and in the last (padded) word, is caught
    for position in (0, 31, 32, 2499):
        b = frames_a[1].copy()
        b[position] ^= 1
        assert verify_frames([frames_a[1]], [b], 64, rng).ok.tolist() == [False]


def test_sift_and_estimate():
    a_bases = np.array([0, 1, 1, 0, 1])
    b_bases = np.array([0, 0, 1, 0, 0])
    assert sift(a_bases, b_bases).tolist() == [0, 2, 3]
    est = estimate_qber(np.zeros(10_000, dtype=np.uint8), (np.arange(10_000) % 50 == 0).astype(np.uint8), 1e-10)
    assert est.qber == pytest.approx(0.02)
    assert est.upper == pytest.approx(0.02 + math.sqrt(math.log(1e10) / 20_000))


def test_mismatched_or_bad_arrays_are_refused():
    with pytest.raises(ParameterError, match="same length"):
        cascade(np.zeros(10, dtype=np.uint8), np.zeros(11, dtype=np.uint8), 0.02)
    with pytest.raises(ParameterError, match="same length"):
        sift(np.zeros(3), np.zeros(4))
    with pytest.raises(ParameterError, match="0 and 1"):
        toeplitz_hash(np.array([0, 2, 1]), np.ones(5, dtype=np.uint8), 3)
    with pytest.raises(ParameterError, match="variant"):
        cascade(np.zeros(10, dtype=np.uint8), np.zeros(10, dtype=np.uint8), 0.02, "fastest")
    with pytest.raises(ParameterError, match="qber"):
        cascade(np.zeros(10, dtype=np.uint8), np.zeros(10, dtype=np.uint8), 0.7)
    with pytest.raises(ParameterError, match="at least one disclosed bit"):
        estimate_qber(np.zeros(0), np.zeros(0))


def test_mulmod61_is_exact():
    # the polynomial hash's collision bound rests on exact arithmetic modulo the prime 2^61 - 1
    from qfabric.qkd.postprocess.steps import _mulmod61

    p = (1 << 61) - 1
    rng = np.random.default_rng(0)
    values = [0, 1, 2, p - 1, p - 2, 1 << 60, (1 << 31) - 1, 1 << 31] + [int(v) for v in rng.integers(0, p, 200)]
    for a in values:
        for b in values[:12]:
            assert int(_mulmod61(np.uint64(a), np.uint64(b))) == a * b % p
