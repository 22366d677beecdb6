"""Cascade error reconciliation (Brassard and Salvail 1993) and the optimised variants of
Martinez-Mateo, Pacher, Peev, Ciurana, Martin, "Demystifying the information reconciliation
protocol Cascade", Quantum Inf. Comput. 15 (2015).

Bob holds a noisy copy of Alice's bits. In each pass both permute the bits with a shared public
seed and cut them into blocks; Alice reveals block parities, and each block whose parity
differs is binary-searched down to one wrong bit, which Bob flips. The search splits a block
(and then each half) at its middle, the left half taking the first ``len // 2`` bits as in
cascade-cpp, and Alice reveals the parity of the left half only: the right half's follows from
its parent's, and a parity the parties know already (from an earlier search of the block) is
never asked again. Flipping a bit changes the parity of the blocks holding it in earlier passes,
which "cascades" into further searches. Leakage counts every parity Alice reveals, each once.

Variants (block sizes ``k_i`` for pass ``i``, Q the estimated QBER, n the block length):

* ``original``: 4 passes, ``k1 = ceil(0.73/Q)``, ``k_i = 2 k_(i-1)``; cascades only from top-level blocks.
* ``option7``: 14 passes, ``k1 = 2^ceil(log2(1/Q))``, ``k2 = 4 k1``, then ``n/2``; sub-block reuse.
* ``option8``: 14 passes, ``a = log2(1/Q) - 0.5``, ``k1 = 2^ceil(a)``, ``k2 = 2^ceil((a+12)/2)``,
  ``k3 = 4096``, then ``n/2``; sub-block reuse (cascades from the smallest known odd sub-block).

>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> alice = rng.integers(0, 2, 10_000, dtype=np.uint8)
>>> bob = alice ^ (rng.random(10_000) < 0.02).astype(np.uint8)
>>> result = cascade(alice, bob, qber=0.02, variant="option8", seed=7)
>>> bool((result.corrected == alice).all()), 1.0 < result.efficiency(0.02) < 1.15
(True, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numba import njit

from qfabric.errors import ParameterError

KNOWN, ALICE, DIFF = 1, 2, 4  # bits of a tree node's state byte
MIN_QBER = 1e-5
VARIANTS = ("original", "option7", "option8")


def block_sizes(variant: str, qber: float, n: int) -> tuple[list[int], bool]:
    """Block size of every pass and whether cascades reuse sub-blocks.

    >>> block_sizes("option8", 0.02, 10_000)[0][:4]
    [64, 512, 4096, 5000]
    """
    if variant not in VARIANTS:
        raise ParameterError("variant", variant, f"one of {VARIANTS}")
    q = max(qber, MIN_QBER)
    if variant == "original":
        k1 = math.ceil(0.73 / q)
        sizes, reuse = [k1 * 2**i for i in range(4)], False
    elif variant == "option7":
        k1 = 2 ** math.ceil(math.log2(1 / q))
        sizes, reuse = [k1, 4 * k1] + [n // 2] * 12, True
    else:
        a = math.log2(1 / q) - 0.5
        sizes, reuse = [2 ** math.ceil(a), 2 ** math.ceil((a + 12) / 2), 4096] + [n // 2] * 11, True
    return [max(1, min(k, n)) for k in sizes], reuse


@dataclass(frozen=True)
class CascadeResult:
    """Bob's corrected bits and the cost of getting them."""

    corrected: np.ndarray
    leaked_bits: int
    round_trips: int
    passes: int
    variant: str

    def efficiency(self, qber: float) -> float:
        """``f = leaked / (n h(qber))``: 1.0 is the Shannon limit."""
        from qfabric.qkd.theory import h2

        n = len(self.corrected)
        return self.leaked_bits / (n * h2(qber)) if 0 < qber < 1 else math.inf


@njit(cache=True)
def _splitmix64(state):
    state = (state + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    z = state
    z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    return state, z ^ (z >> np.uint64(31))


@njit(cache=True)
def shuffles(n, passes, seed):
    """The public permutations of every pass (Fisher-Yates driven by splitmix64 from ``seed``) and their
    inverses; both parties compute the same ones from the shared seed."""
    perms = np.empty((passes, n), dtype=np.int32)
    inverse = np.empty((passes, n), dtype=np.int32)
    state = np.uint64(seed)
    for p in range(passes):
        perm = perms[p]
        for i in range(n):
            perm[i] = i
        for i in range(n - 1, 0, -1):
            state, r = _splitmix64(state)
            j = np.int64(((r >> np.uint64(32)) * np.uint64(i + 1)) >> np.uint64(32))  # Lemire: uniform in [0, i]
            t = perm[i]
            perm[i] = perm[j]
            perm[j] = t
        for i in range(n):
            inverse[p, perm[i]] = i
    return perms, inverse


@njit(cache=True)
def _parities(both, perm, start, stop):
    """Alice's parity of the permuted range (bit 0) and whether Bob's differs (bit 1): ``both[j]`` holds Alice's
    bit j and, one place up, whether Bob's bit j differs, so one pass over the permutation gives both."""
    acc = np.int32(0)
    for i in range(start, stop):
        acc ^= both[perm[i]]
    return acc & 1, acc >> 1


@njit(cache=True)
def _node_range(h, block_start, block_len):
    """Bits ``[lo, hi)`` of tree node ``h`` (heap order: root 1, children 2h and 2h + 1) of a block: each
    node splits at its middle, the left child taking the first ``len // 2`` bits."""
    lo = block_start
    hi = block_start + block_len
    depth = 0
    x = h
    while x > 1:
        x >>= 1
        depth += 1
    for d in range(depth - 1, -1, -1):
        mid = lo + (hi - lo) // 2
        if (h >> d) & 1:
            lo = mid
        else:
            hi = mid
    return lo, hi


@njit(cache=True)
def _push(queue, tail, p, b, h):
    if tail >= queue.shape[0]:
        bigger = np.empty((queue.shape[0] * 2, 3), dtype=np.int64)
        bigger[: queue.shape[0]] = queue
        queue = bigger
    queue[tail, 0] = p
    queue[tail, 1] = b
    queue[tail, 2] = h
    return queue, tail + 1


@njit(cache=True)
def _cascade_kernel(alice, bob, perms, inverse, sizes, reuse):
    n = alice.shape[0]
    n_pass = sizes.shape[0]
    tree = np.empty(n_pass, dtype=np.int64)  # heap slots per block: halving k bits takes ceil(log2 k) levels
    offsets = np.zeros(n_pass + 1, dtype=np.int64)
    for p in range(n_pass):
        kp = 1
        while kp < sizes[p]:
            kp <<= 1
        tree[p] = 2 * kp
        n_blocks = (n + sizes[p] - 1) // sizes[p]
        offsets[p + 1] = offsets[p] + n_blocks * tree[p]
    state = np.zeros(offsets[n_pass], dtype=np.uint8)
    both = np.empty(n, dtype=np.int32)
    for i in range(n):
        both[i] = alice[i] | ((alice[i] ^ bob[i]) << 1)
    queue = np.empty((1024, 3), dtype=np.int64)
    leaked = 0
    rounds = 0
    for cur in range(n_pass):
        k = sizes[cur]
        n_blocks = (n + k - 1) // k
        head = 0
        tail = 0
        rounds += 1  # Alice sends every top-level parity of this pass
        for b in range(n_blocks):
            start = b * k
            stop = min(start + k, n)
            a, d = _parities(both, perms[cur], start, stop)
            state[offsets[cur] + b * tree[cur] + 1] = KNOWN | (ALICE if a else 0) | (DIFF if d else 0)
            leaked += 1
            if d:
                queue, tail = _push(queue, tail, cur, b, 1)
        while head < tail:
            wave_end = tail
            wave_depth = 0
            while head < wave_end:
                p = queue[head, 0]
                b = queue[head, 1]
                h = queue[head, 2]
                head += 1
                base = offsets[p] + b * tree[p]
                if not (state[base + h] & DIFF):  # corrected meanwhile by another search
                    continue
                block_start = b * sizes[p]
                lo, hi = _node_range(h, block_start, min(sizes[p], n - block_start))
                depth = 0
                while hi - lo > 1:  # binary search: Alice reveals the parity of the left half only
                    mid = lo + (hi - lo) // 2
                    lc = 2 * h
                    if not (state[base + lc] & KNOWN):
                        a, d = _parities(both, perms[p], lo, mid)
                        state[base + lc] = KNOWN | (ALICE if a else 0) | (DIFF if d else 0)
                        leaked += 1
                        depth += 1
                    if state[base + lc] & DIFF:
                        h = lc
                        hi = mid
                    else:
                        h = lc + 1
                        lo = mid
                        if not (state[base + h] & KNOWN):  # inferred: parent XOR left, no leak
                            a = ((state[base + (h >> 1)] & ALICE) != 0) ^ ((state[base + lc] & ALICE) != 0)
                            state[base + h] = KNOWN | (ALICE if a else 0) | DIFF
                if depth > wave_depth:
                    wave_depth = depth
                j = perms[p][lo]
                bob[j] ^= 1
                both[j] ^= 2
                for q in range(cur + 1):  # the flip toggles every known block holding bit j
                    pos = inverse[q][j]
                    kq = sizes[q]
                    bq = pos // kq
                    qbase = offsets[q] + bq * tree[q]
                    qlo = bq * kq
                    qhi = min(qlo + kq, n)
                    node = 1
                    deepest_odd = 0
                    while True:  # known nodes form a subtree under the root: walk down to the bit
                        s = state[qbase + node]
                        if not (s & KNOWN):
                            break
                        s ^= DIFF
                        state[qbase + node] = s
                        if (s & DIFF) and (reuse or node == 1):
                            deepest_odd = node
                        if qhi - qlo <= 1:
                            break
                        mid = qlo + (qhi - qlo) // 2
                        if pos < mid:
                            node = 2 * node
                            qhi = mid
                        else:
                            node = 2 * node + 1
                            qlo = mid
                    if deepest_odd:
                        queue, tail = _push(queue, tail, q, bq, deepest_odd)
            rounds += wave_depth
    return leaked, rounds


@lru_cache(maxsize=4)
def _cached_shuffles(n: int, passes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames of one block share their public shuffles: compute them once (read-only)."""
    perms, inverse = shuffles(n, passes, seed)
    perms.flags.writeable = inverse.flags.writeable = False
    return perms, inverse


def cascade(
    alice: np.ndarray, bob: np.ndarray, qber: float, variant: str = "option8", seed: int = 0
) -> CascadeResult:
    """Reconcile ``bob`` to ``alice`` (0/1 arrays of equal length); the permutations come from ``seed``.

    Alice's bits are read only to answer parity questions, as a remote Alice would.
    """
    alice = np.ascontiguousarray(alice, dtype=np.uint8)
    bob = np.array(bob, dtype=np.uint8, copy=True)
    if alice.shape != bob.shape or alice.ndim != 1:
        raise ParameterError("bob", bob.shape, f"a 1-D array of the same length as alice {alice.shape}")
    if not 2 <= len(alice) < 2**31:
        raise ParameterError("alice", len(alice), "between 2 and 2^31 bits")
    if not (0 <= qber < 0.5):
        raise ParameterError("qber", qber, "an estimated error rate in [0, 0.5)")
    if alice.max(initial=0) > 1 or bob.max(initial=0) > 1:
        raise ParameterError("bits", "values > 1", "arrays of 0 and 1")
    if not (isinstance(seed, int | np.integer) and 0 <= seed < 2**64):
        raise ParameterError("seed", seed, "an integer in [0, 2^64)")
    sizes, reuse = block_sizes(variant, qber, len(alice))
    perms, inverse = _cached_shuffles(len(alice), len(sizes), int(seed))
    leaked, rounds = _cascade_kernel(alice, bob, perms, inverse, np.asarray(sizes, dtype=np.int64), reuse)
    return CascadeResult(corrected=bob, leaked_bits=int(leaked), round_trips=int(rounds), passes=len(sizes),
                         variant=variant)
