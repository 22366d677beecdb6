"""Cascade error reconciliation (Brassard and Salvail 1993) and the optimised variants of
Martinez-Mateo, Pacher, Peev, Ciurana, Martin, "Demystifying the information reconciliation
protocol Cascade", Quantum Inf. Comput. 15 (2015).

Bob holds a noisy copy of Alice's bits. In each pass both permute the bits with a shared public
seed and cut them into blocks; Alice reveals block parities, and each block whose parity
differs is binary-searched (Alice revealing the parity of left halves) down to one wrong bit,
which Bob flips. Flipping a bit changes the parity of the blocks holding it in earlier passes,
which "cascades" into further searches. Leakage counts every distinct parity Alice reveals; the
parity of a right half is inferred from its parent and left half and leaks nothing new.

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
def _parity(bits, perm, start, stop):
    acc = 0
    for i in range(start, stop):
        acc ^= bits[perm[i]]
    return acc


@njit(cache=True)
def _node_range(h, k_pow2, block_start, block_len):
    depth = 0
    x = h
    while x > 1:
        x >>= 1
        depth += 1
    size = k_pow2 >> depth
    lo = (h - (1 << depth)) * size
    hi = lo + size
    if hi > block_len:
        hi = block_len
    return block_start + lo, block_start + hi


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
    k_pow2 = np.empty(n_pass, dtype=np.int64)
    offsets = np.zeros(n_pass + 1, dtype=np.int64)
    for p in range(n_pass):
        kp = 1
        while kp < sizes[p]:
            kp <<= 1
        k_pow2[p] = kp
        n_blocks = (n + sizes[p] - 1) // sizes[p]
        offsets[p + 1] = offsets[p] + n_blocks * 2 * kp
    state = np.zeros(offsets[n_pass], dtype=np.uint8)
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
            a = _parity(alice, perms[cur], start, stop)
            d = a ^ _parity(bob, perms[cur], start, stop)
            node = offsets[cur] + b * 2 * k_pow2[cur] + 1
            state[node] = KNOWN | (ALICE if a else 0) | (DIFF if d else 0)
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
                base = offsets[p] + b * 2 * k_pow2[p]
                if not (state[base + h] & DIFF):
                    continue
                kp = sizes[p]
                block_start = b * kp
                block_len = min(kp, n - block_start)
                depth = 0
                while True:
                    lo, hi = _node_range(h, k_pow2[p], block_start, block_len)
                    if hi - lo <= 1:
                        break
                    lc = 2 * h
                    rc = lc + 1
                    if not (state[base + lc] & KNOWN):
                        clo, chi = _node_range(lc, k_pow2[p], block_start, block_len)
                        a = _parity(alice, perms[p], clo, chi)
                        d = a ^ _parity(bob, perms[p], clo, chi)
                        state[base + lc] = KNOWN | (ALICE if a else 0) | (DIFF if d else 0)
                        leaked += 1
                        depth += 1
                    if state[base + lc] & DIFF:
                        h = lc
                    else:
                        if not (state[base + rc] & KNOWN):  # inferred: parent XOR left, no leak
                            a = ((state[base + h] & ALICE) != 0) ^ ((state[base + lc] & ALICE) != 0)
                            state[base + rc] = KNOWN | (ALICE if a else 0) | DIFF
                        h = rc
                if depth > wave_depth:
                    wave_depth = depth
                lo, hi = _node_range(h, k_pow2[p], block_start, block_len)
                j = perms[p][lo]
                bob[j] ^= 1
                for q in range(cur + 1):  # the flip toggles every known block holding bit j
                    pos = inverse[q][j]
                    bq = pos // sizes[q]
                    node = k_pow2[q] + pos % sizes[q]
                    qbase = offsets[q] + bq * 2 * k_pow2[q]
                    deepest_odd = 0
                    while node >= 1:
                        s = state[qbase + node]
                        if s & KNOWN:
                            s ^= DIFF
                            state[qbase + node] = s
                            if (s & DIFF) and deepest_odd == 0 and (reuse or node == 1):
                                deepest_odd = node
                        node >>= 1
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
