"""Key supply for SAE pairs: QKD link keys into per-end pools, relayed across trusted nodes along a path.

Each QKD link between nodes ``a`` and ``b`` fills two pools, one per end (``link_pool(a, b, a)`` holds
Alice's copy, ``link_pool(a, b, b)`` Bob's). Keys for an SAE pair whose nodes are ``path[0]`` and
``path[-1]`` are relayed over the links of the path (one hop for neighbours). Keys distilled from entangled
pairs delivered end to end (BBM92) fill ``e2e_pool(a, b, a)`` and ``e2e_pool(a, b, b)``: one hop, no node in
between trusted. Pool names are JSON lists (:func:`pool_name`), so no two pools share a name whatever the
node and SAE names hold.

>>> from qfabric.kms.store import KeyStore
>>> import numpy as np
>>> store = KeyStore("sqlite://", b"s" * 32)
>>> bits = np.random.default_rng(1).integers(0, 2, 4096, dtype=np.uint8)
>>> feed_link(store, "a", "b", bits, bits, unit_bits=256)
16
>>> relay_path(store, ["a", "b"], pool_name("sae", "alice", "bob"), count=4)["bits_per_hop"]
1024
>>> link_pool("b", "a", "a")
'["link","a","b","a"]'
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from qfabric.errors import QfabricError
from qfabric.kms.store import KeyStore, units

MAX_POOL_NAME = units.c.pool.type.length  # the store's pool column


def pool_name(kind: str, *parts: str) -> str:
    """The name of a pool: ``[kind, *parts]`` as compact JSON (one name per list, whatever the parts hold)."""
    name = json.dumps([kind, *parts], separators=(",", ":"), ensure_ascii=False)
    if len(name) > MAX_POOL_NAME:
        raise QfabricError(f"pool name of {len(name)} characters, the store holds at most {MAX_POOL_NAME}: "
                           f"{name[:80]}...")
    return name


def link_pool(a: str, b: str, at: str) -> str:
    """The pool of the QKD link between nodes ``a`` and ``b``, as held at node ``at``."""
    return pool_name("link", *sorted((a, b)), at)


def e2e_pool(a: str, b: str, at: str) -> str:
    """The pool of the end-to-end (entanglement-based) key between nodes ``a`` and ``b``, as held at ``at``."""
    return pool_name("e2e", *sorted((a, b)), at)


def feed_link(store: KeyStore, a: str, b: str, bits_at_a: np.ndarray, bits_at_b: np.ndarray,
              unit_bits: int = 256, pool=link_pool) -> int:
    """Cut a link's distilled key (each end's copy) into units and add them to both ends' pools (``pool(a, b,
    at)`` names them: the QKD link's by default, :func:`e2e_pool` for end-to-end keys)."""
    if unit_bits % 8 or unit_bits <= 0:
        raise QfabricError(f"unit_bits = {unit_bits}: expected a positive multiple of 8")
    if len(bits_at_a) != len(bits_at_b):
        raise QfabricError("the two copies of a link key must have the same length")
    n_units = len(bits_at_a) // unit_bits
    if n_units == 0:
        return 0
    usable, unit_bytes = n_units * unit_bits, unit_bits // 8
    copies = [np.packbits(np.asarray(bits[:usable], dtype=np.uint8)).tobytes() for bits in (bits_at_a, bits_at_b)]
    pairs = [(copies[0][i : i + unit_bytes], copies[1][i : i + unit_bytes])
             for i in range(0, len(copies[0]), unit_bytes)]
    return store.add_link_units(pool(a, b, a), pool(a, b, b), pairs)  # one transaction: the ends stay paired


def relay_path(store: KeyStore, path: Sequence[str], target_pool: str, count: int) -> dict:
    """Relay ``count`` keys from ``path[0]`` to ``path[-1]`` over the path's links into ``target_pool``."""
    if len(path) < 2:
        raise QfabricError(f"a relay path needs at least two nodes, got {list(path)}")
    hops = [(link_pool(a, b, a), link_pool(a, b, b)) for a, b in zip(path, path[1:], strict=False)]
    return store.relay(hops, target_pool, count)
