"""What the protection adds to Flower messages, and the pieces both sides share.

Only public values travel: key IDs, KEM ciphertexts and public keys, sealed (AES-256-GCM) models and
masked updates. Every qfabric message is a Flower ``train`` message (the one kind every ClientApp registers,
so the mod sees it; Flower routes a message only to registered functions); its ``qfabric`` record says which
step of the protocol it is (``step``: ``hello``, ``pairs``, ``train``, ``recover``) and holds everything below.

>>> from qfabric.kms.hybrid import Hello, Mode
>>> hello_from_bytes(hello_to_bytes(Hello(Mode.QKD_ONLY, "id-7", None, None)))
Hello(mode=<Mode.QKD_ONLY: 'qkd-only'>, qkd_key_id='id-7', kem_ciphertext=None, x25519_share=None)
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field

from flwr.app import ConfigRecord

from qfabric.kms.client import KmeError, SaeClient
from qfabric.kms.hybrid import Hello, Mode, ResponderPublic

RECORD = "qfabric"
MESSAGE_TYPE = "train"  # of every qfabric message
STEP = "step"  # the field of the qfabric record that names the protocol step:
HELLO = "hello"  # the client's SAE ID and public keys (once per node)
PAIRS = "pairs"  # hellos to the peers that sort after it (secure-aggregation keys)
TRAIN = "train"  # the sealed global model in, the sealed masked update out (the user's train function runs)
RECOVER = "recover"  # survivors reveal their masks with clients that dropped out

# node_config keys a protected SuperNode is started with (flower-supernode --node-config "...")
SAE_ID, KME_URL, CERT, KEY, CA = "qfabric-sae-id", "qfabric-kme-url", "qfabric-cert", "qfabric-key", "qfabric-ca"
NOISE_SEED = "qfabric-noise-seed"  # optional: seeds this node's differential-privacy noise
NOISE_SOURCE = "qfabric-noise-source"  # optional: "qrng" draws the noise from the simulated QRNG (apps.qrng)


def qfabric_record(fields: dict) -> ConfigRecord:
    """The ``qfabric`` record of a message: ``fields`` without empty lists (a reader takes a missing list as
    empty; Flower's own mods, e.g. ``message_size_mod``, cannot size an empty list in a ConfigRecord).

    >>> dict(qfabric_record({"step": "pairs", "to": [], "round": 1}))
    {'step': 'pairs', 'round': 1}
    """
    return ConfigRecord({k: v for k, v in fields.items() if not (isinstance(v, list) and not v)})


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
    """An SAE's ETSI 014 client that adds up the wall time spent waiting for its KME, and can fetch QKD keys
    for several rounds in one request.

    With ``keys_per_request`` n > 1, a request for one key (``enc_keys``, the initiator of a session) fetches n
    and keeps the rest for the next sessions with the same peer (:meth:`ahead` names them); the responder,
    told those IDs (:meth:`announce`), fetches them all with the first ``dec_keys``. A pool with fewer than n
    keys (or a KME that refuses n) gets a request for one. Keys fetched ahead were checked against the QBER
    threshold when fetched, and are lost if the run ends before they are used (at most n - 1 per pair).
    """

    client: SaeClient
    seconds: float = 0.0
    requests: int = 0
    keys: int = 0
    keys_per_request: int = 1
    _ahead: dict[str, list[tuple[str, bytes]]] = field(default_factory=dict)  # as master, per slave
    _announced: dict[str, list[str]] = field(default_factory=dict)  # as slave, per master: IDs to fetch next
    _fetched: dict[str, dict[str, bytes]] = field(default_factory=dict)  # as slave, per master: fetched ahead

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
        if self.keys_per_request <= 1 or number != 1 or size is not None:
            keys = self._timed(self.client.enc_keys, slave, number, size, **kw)
            self.keys += len(keys)
            return keys
        ahead = self._ahead.setdefault(slave, [])
        if not ahead:
            try:
                keys = self._timed(self.client.enc_keys, slave, self.keys_per_request, size, **kw)
            except KmeError as err:
                if err.status not in (400, 503):
                    raise
                keys = self._timed(self.client.enc_keys, slave, 1, size, **kw)  # fewer left than a batch
            self.keys += len(keys)
            ahead.extend(keys)
        return [ahead.pop(0)]

    def ahead(self, slave: str) -> list[str]:
        """IDs of the keys fetched ahead for sessions with ``slave`` (tell the peer: :meth:`announce`)."""
        return [key_id for key_id, _ in self._ahead.get(slave, [])]

    def announce(self, master: str, key_ids: list[str]) -> None:
        """``master`` holds these keys for its next sessions with us: fetch them with the next ``dec_keys``."""
        self._announced[master] = [str(k) for k in key_ids]

    def dec_keys(self, master: str, key_ids: list[str]) -> list[tuple[str, bytes]]:
        have = self._fetched.setdefault(master, {})
        missing = [k for k in key_ids if k not in have]
        if missing:
            extra = [k for k in self._announced.pop(master, []) if k not in have and k not in missing]
            try:
                keys = self._timed(self.client.dec_keys, master, missing + extra)
            except KmeError:
                if not extra:
                    raise
                keys = self._timed(self.client.dec_keys, master, missing)  # an announced ID was wrong
            self.keys += len(keys)
            have.update(keys)
        return [(k, have.pop(k)) for k in key_ids]

    def export_keys(self) -> str:
        """The keys fetched ahead (both roles) as JSON, to keep in the node's Flower state: a SuperNode may run
        every message in a new ClientApp process, and a key claimed from the KME cannot be fetched again."""
        return json.dumps({
            "ahead": {peer: [[k, _b64(v)] for k, v in keys] for peer, keys in self._ahead.items() if keys},
            "fetched": {peer: {k: _b64(v) for k, v in keys.items()} for peer, keys in self._fetched.items() if keys}})

    def import_keys(self, data: str | None) -> None:
        """Replace the keys fetched ahead with those of :meth:`export_keys` (None: none)."""
        d = json.loads(data) if data else {}
        self._ahead = {peer: [(k, _unb64(v)) for k, v in keys] for peer, keys in d.get("ahead", {}).items()}
        self._fetched = {peer: {k: _unb64(v) for k, v in keys.items()} for peer, keys in d.get("fetched", {}).items()}
        self._announced = {}

    def take(self) -> tuple[float, int, int]:
        """Seconds waited, requests made and keys received since the last call."""
        out = (self.seconds, self.requests, self.keys)
        self.seconds, self.requests, self.keys = 0.0, 0, 0
        return out
