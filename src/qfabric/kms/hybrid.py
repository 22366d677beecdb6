"""Session keys from a QKD key combined with ML-KEM-768 and X25519, and AES-256-GCM for bulk data.

The secrets are concatenated (length-prefixed) and fed to HKDF-SHA256 with a context that binds
both party IDs, the QKD key ID, the mode and a hash of the KEM ciphertext and X25519 share (the
concatenate-then-KDF combiner of ETSI TS 103 744 and NIST SP 800-56C Rev. 2): the session key stays
secret while any one input is.

>>> responder = ResponderKeys.generate()
>>> qkd = bytes(32)
>>> hello, k1 = initiate(responder.public(), "alice", "bob", mode="hybrid", qkd_key=qkd, qkd_key_id="id-1")
>>> k2 = respond(responder, hello, "alice", "bob", qkd_key=qkd)
>>> k1 == k2, len(k1)
(True, 32)
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from enum import StrEnum

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey, MLKEM768PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from qfabric.errors import QfabricError

LABEL = b"qfabric hybrid session key v1"


class Mode(StrEnum):
    QKD_ONLY = "qkd-only"
    HYBRID = "hybrid"
    PQ_ONLY = "pq-only"


@dataclass(frozen=True)
class ResponderPublic:
    mlkem: bytes
    x25519: bytes


@dataclass(frozen=True)
class ResponderKeys:
    """The responder's ML-KEM-768 and X25519 key pairs."""

    mlkem: MLKEM768PrivateKey
    x25519: X25519PrivateKey

    @classmethod
    def generate(cls) -> ResponderKeys:
        return cls(MLKEM768PrivateKey.generate(), X25519PrivateKey.generate())

    def public(self) -> ResponderPublic:
        return ResponderPublic(self.mlkem.public_key().public_bytes_raw(), self.x25519.public_key().public_bytes_raw())


@dataclass(frozen=True)
class Hello:
    """What the initiator sends: the mode, the QKD key ID (not the key) and the public-key shares."""

    mode: Mode
    qkd_key_id: str | None
    kem_ciphertext: bytes | None
    x25519_share: bytes | None


def derive(mode: Mode, initiator: str, responder: str, qkd_key: bytes | None, qkd_key_id: str | None,
           mlkem_secret: bytes | None, x25519_secret: bytes | None, kem_ciphertext: bytes | None,
           x25519_share: bytes | None, length: int = 32) -> bytes:
    """The combiner: HKDF-SHA256 over the length-prefixed secrets, with every public input in the context."""
    mode = Mode(mode)
    needs_qkd = mode in (Mode.QKD_ONLY, Mode.HYBRID)
    needs_pq = mode in (Mode.HYBRID, Mode.PQ_ONLY)
    if needs_qkd and (not qkd_key or not qkd_key_id):
        raise QfabricError(f"mode {mode.value} needs a QKD key and its key ID")
    if needs_pq and not (mlkem_secret and x25519_secret and kem_ciphertext and x25519_share):
        raise QfabricError(f"mode {mode.value} needs the ML-KEM and X25519 secrets")
    secrets = [s for s in ((qkd_key if needs_qkd else None), (mlkem_secret if needs_pq else None),
                           (x25519_secret if needs_pq else None)) if s]
    ikm = b"".join(struct.pack(">I", len(s)) + s for s in secrets)
    transcript = hashlib.sha256((kem_ciphertext or b"") + (x25519_share or b"")).digest()
    context = b"\x00".join([LABEL, mode.value.encode(), initiator.encode(), responder.encode(),
                            (qkd_key_id or "").encode(), transcript])
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=context).derive(ikm)


def initiate(responder_public: ResponderPublic, initiator: str, responder: str, mode: Mode | str = Mode.HYBRID,
             qkd_key: bytes | None = None, qkd_key_id: str | None = None) -> tuple[Hello, bytes]:
    """The initiator's side: encapsulate to the responder, send :class:`Hello`, keep the session key."""
    mode = Mode(mode)
    ct = share = mlkem_secret = x_secret = None
    if mode is not Mode.QKD_ONLY:
        mlkem_secret, ct = MLKEM768PublicKey.from_public_bytes(responder_public.mlkem).encapsulate()
        eph = X25519PrivateKey.generate()
        x_secret = eph.exchange(X25519PublicKey.from_public_bytes(responder_public.x25519))
        share = eph.public_key().public_bytes_raw()
    key = derive(mode, initiator, responder, qkd_key, qkd_key_id, mlkem_secret, x_secret, ct, share)
    return Hello(mode, qkd_key_id if mode is not Mode.PQ_ONLY else None, ct, share), key


def respond(keys: ResponderKeys, hello: Hello, initiator: str, responder: str, qkd_key: bytes | None = None) -> bytes:
    """The responder's side: the same session key from the hello and its own key pairs."""
    mlkem_secret = x_secret = None
    if hello.mode is not Mode.QKD_ONLY:
        mlkem_secret = keys.mlkem.decapsulate(hello.kem_ciphertext)
        x_secret = keys.x25519.exchange(X25519PublicKey.from_public_bytes(hello.x25519_share))
    return derive(hello.mode, initiator, responder, qkd_key, hello.qkd_key_id, mlkem_secret, x_secret,
                  hello.kem_ciphertext, hello.x25519_share)


def seal(key: bytes, plaintext: bytes, associated_data: bytes = b"") -> bytes:
    """AES-256-GCM: a fresh 96-bit nonce followed by ciphertext and tag."""
    if len(key) != 32:
        raise QfabricError("AES-256-GCM needs a 32-byte key")
    nonce = os.urandom(12)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated_data)


def open_sealed(key: bytes, sealed: bytes, associated_data: bytes = b"") -> bytes:
    """Decrypt :func:`seal` output; raises ``cryptography.exceptions.InvalidTag`` if anything was altered."""
    return AESGCM(key).decrypt(sealed[:12], sealed[12:], associated_data)
