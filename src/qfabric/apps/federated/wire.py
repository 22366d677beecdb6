"""What the protection adds to Flower messages, and the pieces both sides share.

Only public values travel: key IDs, KEM ciphertexts and public keys, sealed (AES-256-GCM) models and
masked updates. Message types are Flower's (``train``, ``query.<action>``); the ``qfabric`` record of a
message holds everything below.

>>> from qfabric.kms.hybrid import Hello, Mode
>>> hello_from_bytes(hello_to_bytes(Hello(Mode.QKD_ONLY, "id-7", None, None)))
Hello(mode=<Mode.QKD_ONLY: 'qkd-only'>, qkd_key_id='id-7', kem_ciphertext=None, x25519_share=None)
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass

from qfabric.kms.client import SaeClient
from qfabric.kms.hybrid import Hello, Mode, ResponderPublic

RECORD = "qfabric"
HELLO = "query.qfabric_hello"  # the client's SAE ID and public keys (once per node)
PAIRS = "query.qfabric_pairs"  # hellos to the peers that sort after it (secure-aggregation keys)
RECOVER = "query.qfabric_recover"  # survivors reveal their masks with clients that dropped out

# node_config keys a protected SuperNode is started with (flower-supernode --node-config "...")
SAE_ID, KME_URL, CERT, KEY, CA = "qfabric-sae-id", "qfabric-kme-url", "qfabric-cert", "qfabric-key", "qfabric-ca"
NOISE_SEED = "qfabric-noise-seed"  # optional: seeds this node's differential-privacy noise


def _b64(value: bytes | None) -> str | None:
    return base64.b64encode(value).decode() if value is not None else None


def _unb64(value: str | None) -> bytes | None:
    return base64.b64decode(value) if value is not None else None


def hello_to_bytes(hello: Hello) -> bytes:
    return json.dumps({"mode": hello.mode.value, "key_ID": hello.qkd_key_id, "kem": _b64(hello.kem_ciphertext),
                       "x25519": _b64(hello.x25519_share)}).encode()


def hello_from_bytes(data: bytes) -> Hello:
    d = json.loads(data)
    return Hello(Mode(d["mode"]), d["key_ID"], _unb64(d["kem"]), _unb64(d["x25519"]))


def public_to_bytes(public: ResponderPublic) -> bytes:
    return json.dumps({"mlkem": _b64(public.mlkem), "x25519": _b64(public.x25519)}).encode()


def public_from_bytes(data: bytes) -> ResponderPublic:
    d = json.loads(data)
    return ResponderPublic(_unb64(d["mlkem"]), _unb64(d["x25519"]))


def model_aad(round_number: int, aggregator: str, client: str) -> tuple[int, str]:
    """The (round, sender) bound into a sealed global model: the aggregator, addressed to one client."""
    return round_number, f"{aggregator}->{client}"


@dataclass
class TimedKme:
    """An SAE's ETSI 014 client that adds up the wall time spent waiting for its KME."""

    client: SaeClient
    seconds: float = 0.0
    requests: int = 0
    keys: int = 0

    def _timed(self, fn, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t0
            self.requests += 1

    def status(self, slave: str) -> dict:
        return self._timed(self.client.status, slave)

    def enc_keys(self, slave: str, number: int = 1, size: int | None = None, **kw) -> list[tuple[str, bytes]]:
        keys = self._timed(self.client.enc_keys, slave, number, size, **kw)
        self.keys += len(keys)
        return keys

    def dec_keys(self, master: str, key_ids: list[str]) -> list[tuple[str, bytes]]:
        keys = self._timed(self.client.dec_keys, master, key_ids)
        self.keys += len(keys)
        return keys

    def take(self) -> tuple[float, int, int]:
        """Seconds waited, requests made and keys received since the last call."""
        out = (self.seconds, self.requests, self.keys)
        self.seconds, self.requests, self.keys = 0.0, 0, 0
        return out
