"""Model updates encrypted before they leave an organisation: AES-256-GCM under a session key from the
KMS broker, with the round and the sender bound into the ciphertext.

>>> import numpy as np
>>> key = bytes(range(32))
>>> update = [np.ones((2, 3), np.float32), np.arange(4, dtype=np.float32)]
>>> blob = encrypt_update(update, key, round_number=3, sender="hospital-a")
>>> [a.tolist() for a in decrypt_update(blob, key, 3, "hospital-a", [(2, 3), (4,)])][1]
[0.0, 1.0, 2.0, 3.0]
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence

import numpy as np

from qfabric.errors import QfabricError
from qfabric.kms.hybrid import open_sealed, seal


class UpdateRejected(QfabricError):
    """A received update cannot be used: tampered, for another round or sender, or of the wrong shape."""


def pack(arrays: Sequence[np.ndarray]) -> bytes:
    """float32 arrays to bytes: a JSON header of shapes, then the raw data."""
    header = json.dumps([list(a.shape) for a in arrays]).encode()
    body = b"".join(np.ascontiguousarray(a, dtype=np.float32).tobytes() for a in arrays)
    return struct.pack(">I", len(header)) + header + body


def unpack(blob: bytes) -> list[np.ndarray]:
    (n,) = struct.unpack(">I", blob[:4])
    shapes = json.loads(blob[4 : 4 + n])
    data = np.frombuffer(blob[4 + n :], dtype=np.float32)
    out, offset = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        out.append(data[offset : offset + size].reshape(shape).copy())
        offset += size
    if offset != len(data):
        raise UpdateRejected("the update's data does not match its header")
    return out


def _aad(round_number: int, sender: str) -> bytes:
    return f"qfabric-fl/v1;round={round_number};sender={sender}".encode()


def encrypt_update(arrays: Sequence[np.ndarray], key: bytes, round_number: int, sender: str) -> bytes:
    """Seal an update for the aggregator: only this round and this sender will decrypt it."""
    return seal(key, pack(arrays), _aad(round_number, sender))


def decrypt_update(blob: bytes, key: bytes, round_number: int, sender: str,
                   expected_shapes: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
    """Open an update; raises :class:`UpdateRejected` (never returns garbage) if anything is off."""
    from cryptography.exceptions import InvalidTag

    try:
        arrays = unpack(open_sealed(key, blob, _aad(round_number, sender)))
    except InvalidTag:
        raise UpdateRejected(f"update from {sender!r} for round {round_number} failed authentication "
                             "(tampered, wrong key, or replayed from another round)") from None
    shapes = [tuple(a.shape) for a in arrays]
    if shapes != [tuple(s) for s in expected_shapes]:
        raise UpdateRejected(f"update from {sender!r} has shapes {shapes}, expected {list(expected_shapes)}")
    return arrays


def _share_key(pair_key: bytes) -> bytes:
    """A pair's key for seed shares, apart from its mask key (HKDF-SHA256, own label)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"qfabric secagg seed share v1").derive(pair_key)


def _share_aad(round_number: int, owner: str, holder: str) -> bytes:
    return f"qfabric-fl/v1;seed-share;round={round_number};{owner}->{holder}".encode()


def seal_seed_share(pair_key: bytes, share: bytes, round_number: int, owner: str, holder: str) -> bytes:
    """A share of ``owner``'s self-mask seed for ``holder``, sealed under their pair's key: the aggregator relays
    it and cannot open it.

    >>> blob = seal_seed_share(bytes(32), b"share", 3, "a", "b")
    >>> open_seed_share(bytes(32), blob, 3, "a", "b")
    b'share'
    """
    return seal(_share_key(pair_key), share, _share_aad(round_number, owner, holder))


def open_seed_share(pair_key: bytes, blob: bytes, round_number: int, owner: str, holder: str) -> bytes:
    """:func:`seal_seed_share` undone; :class:`UpdateRejected` if it was altered or is for another round or pair."""
    from cryptography.exceptions import InvalidTag

    try:
        return open_sealed(_share_key(pair_key), blob, _share_aad(round_number, owner, holder))
    except InvalidTag:
        raise UpdateRejected(f"{owner!r}'s seed share for {holder!r} in round {round_number} failed authentication"
                             ) from None

