"""Secure aggregation with pairwise masks keyed by QKD: the aggregator learns only the sum of updates.

Updates are encoded in fixed point modulo 2^32. Every pair of organisations (i, j) shares a key (a QKD
key relayed between their KMEs); from it and the round number, ChaCha20 expands a mask ``m_ij``. Client
i adds ``m_ij`` for every j > i and subtracts it for every j < i, so the masks cancel in the sum. If a
client drops out, the survivors reveal their masks with it (and only those), and the round completes. An
aggregator that lies about a dropout, having received the update, could then unmask it. Double masking
(Bonawitz et al., CCS 2017) stops that: each client also adds a self-mask from a secret seed it
secret-shares among its peers (Shamir, any ``threshold`` of them rebuild it), and a peer reveals, for each
client, either its pairwise mask with it (the client dropped out) or its share of the client's seed (the client
is a survivor), never both: to strip every mask of one update, the aggregator would need both from the same
peers.

>>> import numpy as np
>>> keys = {("a", "b"): bytes(32), ("a", "c"): bytes([1]) * 32, ("b", "c"): bytes([2]) * 32}
>>> updates = {c: np.full(4, v, np.float32) for c, v in (("a", 1.0), ("b", 2.0), ("c", 3.0))}
>>> masked = {c: mask_update(u, c, keys, round_number=1) for c, u in updates.items()}
>>> aggregate(masked.values()).tolist()
[6.0, 6.0, 6.0, 6.0]
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from Crypto.Protocol.SecretSharing import Shamir
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from qfabric.errors import QfabricError

FRACTIONAL_BITS = 16  # fixed point: the default resolution is 2^-16
SCALE = 2.0**FRACTIONAL_BITS
MAX_CLIENTS = 64


def value_limit(max_clients: int = MAX_CLIENTS, fractional_bits: int = FRACTIONAL_BITS) -> float:
    """Largest |value| per coordinate so that the sum of ``max_clients`` updates stays in int32 fixed point."""
    return 2.0**31 / 2.0**fractional_bits / max_clients


def fractional_bits_for(max_abs: float, max_clients: int) -> int:
    """The finest fixed point whose range holds the sum of ``max_clients`` values up to ``max_abs``.

    >>> fractional_bits_for(10.0, 3), value_limit(3, 25) > 10.0
    (25, True)
    """
    if max_abs <= 0 or max_clients < 1:
        raise QfabricError("fixed point needs a positive value bound and at least one client")
    return int(np.floor(31 - np.log2(max_abs * max_clients))) - 1


def encode(x: np.ndarray, max_clients: int = MAX_CLIENTS, fractional_bits: int = FRACTIONAL_BITS) -> np.ndarray:
    """Floats to fixed point modulo 2^32; values must lie within ``value_limit(max_clients, fractional_bits)``."""
    x = np.asarray(x, dtype=np.float64)
    limit = value_limit(max_clients, fractional_bits)
    if np.any(np.abs(x) >= limit):
        raise QfabricError(f"update values must lie within +-{limit:g} to aggregate {max_clients} clients in "
                           "fixed point (clip first)")
    return np.round(x * 2.0**fractional_bits).astype(np.int64).astype(np.uint32)


def decode(x: np.ndarray, fractional_bits: int = FRACTIONAL_BITS) -> np.ndarray:
    return x.astype(np.uint32).view(np.int32).astype(np.float64) / 2.0**fractional_bits


def pair_mask(key: bytes, round_number: int, size: int) -> np.ndarray:
    """The mask of one pair for one round: a ChaCha20 keystream (key = the pair's QKD key) as uint32."""
    if len(key) != 32:
        raise QfabricError("a pairwise mask key must be 32 bytes")
    nonce = hashlib.sha256(f"qfabric-secagg-round-{round_number}".encode()).digest()[:16]
    stream = Cipher(algorithms.ChaCha20(key, nonce), mode=None).encryptor().update(bytes(4 * size))
    return np.frombuffer(stream, dtype=np.uint32).copy()


SEED_BYTES = 16  # a self-mask's seed: one Shamir block of pycryptodome (GF(2^128))


def self_mask(seed: bytes, round_number: int, size: int) -> np.ndarray:
    """The self-mask of double masking: a ChaCha20 keystream keyed by SHA-256 of a 16-byte secret seed."""
    if len(seed) != SEED_BYTES:
        raise QfabricError(f"a self-mask seed must be {SEED_BYTES} bytes")
    return pair_mask(hashlib.sha256(b"qfabric-secagg-self-mask" + seed).digest(), round_number, size)


def seed_threshold(peers: int) -> int:
    """Shares that rebuild a seed by default: a majority of the client's peers.

    >>> [seed_threshold(n) for n in (1, 2, 3, 4)]
    [1, 2, 2, 3]
    """
    return peers // 2 + 1


def share_seed(seed: bytes, peers: Sequence[str], threshold: int) -> dict[str, bytes]:
    """One Shamir share of ``seed`` per peer (pycryptodome's ``Shamir``): any ``threshold`` of them rebuild it,
    fewer tell nothing about it. A share is its 2-byte index and 16 bytes.

    >>> shares = share_seed(bytes(range(16)), ["b", "c", "d"], 2)
    >>> rebuild_seed([shares["b"], shares["d"]]) == bytes(range(16))
    True
    """
    if not 1 <= threshold <= len(peers):
        raise QfabricError(f"a seed shared among {len(peers)} peers needs a threshold in 1..{len(peers)}, "
                           f"got {threshold}")
    if threshold == 1:  # every peer holds the seed itself (pycryptodome's Shamir needs k >= 2)
        return {peer: struct.pack(">H", 0) + seed for peer in peers}
    shares = Shamir.split(threshold, len(peers), seed)
    return {peer: struct.pack(">H", index) + share for peer, (index, share) in zip(peers, shares, strict=True)}


def rebuild_seed(shares: Iterable[bytes]) -> bytes:
    """The seed from at least its threshold of :func:`share_seed`'s shares (fewer give a wrong seed)."""
    parts = [(struct.unpack(">H", s[:2])[0], bytes(s[2:])) for s in shares]
    if any(len(part) != SEED_BYTES for _, part in parts) or not parts:
        raise QfabricError("a seed share is 2 + 16 bytes, and a seed needs at least one")
    if parts[0][0] == 0:  # threshold 1: the seed itself
        return parts[0][1]
    return Shamir.combine(parts)


def pair_key(keys: Mapping[tuple[str, str], bytes], a: str, b: str) -> bytes:
    key = keys.get((a, b)) or keys.get((b, a))
    if key is None:
        raise QfabricError(f"no pairwise key for {a!r} and {b!r}")
    return key


def mask_update(update: np.ndarray, me: str, keys: Mapping[tuple[str, str], bytes], round_number: int,
                max_clients: int = MAX_CLIENTS, fractional_bits: int = FRACTIONAL_BITS) -> np.ndarray:
    """``encode(update) + sum_j sign(j - me) m_(me, j)`` modulo 2^32, over every peer ``me`` shares a key with."""
    masked = encode(update, max_clients, fractional_bits).ravel().astype(np.uint32)
    peers = sorted({p for pair in keys for p in pair if me in pair} - {me})
    for peer in peers:
        m = pair_mask(pair_key(keys, me, peer), round_number, masked.size)
        masked = masked + m if me < peer else masked - m  # uint32 arithmetic wraps modulo 2^32
    return masked.reshape(np.shape(update))


def recovery_share(me: str, dropped: str, keys: Mapping[tuple[str, str], bytes], round_number: int,
                   size: int) -> np.ndarray:
    """What survivor ``me`` reveals when ``dropped`` is gone: its signed mask with ``dropped`` only."""
    m = pair_mask(pair_key(keys, me, dropped), round_number, size)
    return m if me < dropped else (np.uint32(0) - m)


def aggregate(masked: Iterable[np.ndarray], unmasks: Iterable[np.ndarray] = (),
              fractional_bits: int = FRACTIONAL_BITS) -> np.ndarray:
    """The sum of the (unmasked) updates: add the masked updates, take off ``unmasks`` (the survivors' masks
    with the organisations that dropped out, and the survivors' self-masks)."""
    masked = list(masked)
    if not masked:
        raise QfabricError("no masked updates to aggregate")
    total = np.zeros(masked[0].shape, dtype=np.uint32)
    for m in masked:
        total = total + m.astype(np.uint32)
    for mask in unmasks:
        total = total - mask.reshape(total.shape).astype(np.uint32)
    return decode(total, fractional_bits)
