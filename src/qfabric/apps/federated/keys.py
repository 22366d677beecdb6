"""Pairwise secure-aggregation keys for organisations, fetched over ETSI GS QKD 014 from their KMS.

For every pair of organisations, the one whose SAE ID sorts first asks its KME for a key (``enc_keys``)
and the other fetches the same key by its ID (``dec_keys``); only key IDs travel between them.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

from qfabric.errors import QfabricError
from qfabric.kms.client import SaeClient


def pairwise_keys(clients: Mapping[str, SaeClient], size_bits: int = 256) -> dict[tuple[str, str], bytes]:
    """One fresh QKD key per pair of SAEs in ``clients`` (SAE ID -> its client), as both ends hold it.

    Raises if the two ends would not hold the same key (which the KMS guarantees never happens).
    """
    if size_bits != 256:
        raise QfabricError("secure-aggregation masks are keyed with 256-bit keys (ChaCha20)")
    keys = {}
    for a, b in itertools.combinations(sorted(clients), 2):
        [(key_id, key_at_a)] = clients[a].enc_keys(b, number=1, size=size_bits)
        [(_, key_at_b)] = clients[b].dec_keys(a, [key_id])
        if key_at_a != key_at_b:
            raise QfabricError(f"the KMS handed {a!r} and {b!r} different keys for {key_id}")
        keys[(a, b)] = key_at_a
    return keys
