"""What the protection adds to Flower messages, and the pieces both sides share.

Only public values travel: key IDs, KEM ciphertexts and public keys, sealed (AES-256-GCM) models and
masked updates. Every qfabric message is a Flower ``train`` message (the one kind every ClientApp registers,
so the mod sees it; Flower routes a message only to registered functions); its ``qfabric`` record says which
step of the protocol it is (``step``: ``hello``, ``pairs``, ``train``, ``unmask``) and holds everything below.

>>> from qfabric.kms.hybrid import Hello, Mode
>>> hello_from_bytes(hello_to_bytes(Hello(Mode.QKD_ONLY, "id-7", None, None)))
Hello(mode=<Mode.QKD_ONLY: 'qkd-only'>, qkd_key_id='id-7', kem_ciphertext=None, x25519_share=None)
"""

from __future__ import annotations

import base64
import io
import json
import time
from dataclasses import dataclass, field

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord
from flwr.common.constant import SType

from qfabric.errors import QfabricError
from qfabric.kms.client import KmeError, SaeClient
from qfabric.kms.hybrid import Hello, Mode, ResponderPublic

RECORD = "qfabric"
MESSAGE_TYPE = "train"  # of every qfabric message
STEP = "step"  # the field of the qfabric record that names the protocol step:
HELLO = "hello"  # the client's SAE ID and public keys (once per node)
PAIRS = "pairs"  # hellos to the peers that sort after it (secure-aggregation keys)
TRAIN = "train"  # the sealed global model in, the sealed masked update out (the user's train function runs)
UNMASK = "unmask"  # survivors reveal their masks with clients that dropped out (and, double masking, seed shares)

# node_config keys a protected SuperNode is started with (flower-supernode --node-config "...")
SAE_ID, KME_URL, CERT, KEY, CA = "qfabric-sae-id", "qfabric-kme-url", "qfabric-cert", "qfabric-key", "qfabric-ca"
NOISE_SEED = "qfabric-noise-seed"  # optional: seeds this node's differential-privacy noise
NOISE_SOURCE = "qfabric-noise-source"  # optional: "qrng" draws the noise from the simulated QRNG (apps.qrng)


SETTINGS = "settings"  # the field that carries the scalar settings, costs and audit events as one JSON text
PACKED = frozenset({  # fields packed into SETTINGS: Flower checks and serialises each field of a record on its own
    "policy-mode", "policy-fallback", "qber-threshold", "session-rounds", "keys-per-request", "rounds-left",
    "shapes", "clip-norm", "noise-std", "value-bound", "weighting", "weight-cap-examples", "max-clients",
    "fractional-bits", "update-norm", "audit", "kme-seconds", "kme-requests", "qkd-keys", "train-seconds",
    "crypto-seconds", "double-masking", "seed-threshold"})


def qfabric_record(fields: dict) -> ConfigRecord:
    """The ``qfabric`` record of a message: ``fields`` without empty lists (a reader takes a missing list as
    empty; Flower's own mods, e.g. ``message_size_mod``, cannot size an empty list in a ConfigRecord), the
    :data:`PACKED` ones (numbers, short texts, the audit events) as one JSON field, :data:`SETTINGS`: Flower
    type-checks, serialises and parses every field of a record on its own, ~8 us a field and hop, which for
    the ~20 settings and costs of a train message and its reply was ~1 ms a round. Key IDs, hellos, public keys
    and the sealed model stay fields of their own. :func:`read_record` reads it back.

    >>> record = qfabric_record({"step": "pairs", "to": [], "round": 1, "clip-norm": 0.5})
    >>> dict(record), read_record(record)
    ({'step': 'pairs', 'round': 1, 'settings': '{"clip-norm": 0.5}'}, {'step': 'pairs', 'round': 1, 'clip-norm': 0.5})
    """
    out = {k: v for k, v in fields.items() if k not in PACKED and not (isinstance(v, list) and not v)}
    packed = {k: v for k, v in fields.items() if k in PACKED}
    if packed:
        out[SETTINGS] = json.dumps(packed)
    return ConfigRecord(out)


def read_record(record: ConfigRecord) -> dict:
    """The fields of a :func:`qfabric_record` as one dict, :data:`SETTINGS` unpacked (a malformed one raises
    :class:`~qfabric.errors.QfabricError`)."""
    fields = dict(record.items())
    packed = fields.pop(SETTINGS, None)
    if packed is not None:
        try:
            settings = json.loads(packed)
        except (TypeError, ValueError) as err:
            raise QfabricError(f"a qfabric record's {SETTINGS} field is not JSON: {err}") from None
        if not isinstance(settings, dict):
            raise QfabricError(f"a qfabric record's {SETTINGS} field is not a JSON object")
        fields |= {k: v for k, v in settings.items() if k in PACKED}
    return fields


_NPY_HEADERS: dict[tuple[str, tuple[int, ...]], tuple[bytes, str]] = {}  # np.save's header, dtype's name
_NPY_LAYOUTS: dict[bytes, tuple[np.dtype, tuple[int, ...]]] = {}  # what np.load read from a header


def arrays_to_record(arrays: list[np.ndarray]) -> ArrayRecord:
    """``ArrayRecord(arrays)``, byte for byte, with the ``.npy`` header ``np.save`` writes kept per dtype and shape:
    a model's arrays keep their shapes from round to round, and saving them one by one cost ~40 us an array.

    >>> record = arrays_to_record([np.ones((2, 3), np.float32)])
    >>> record["0"].data == ArrayRecord([np.ones((2, 3), np.float32)])["0"].data
    True
    """
    record = ArrayRecord()
    for i, a in enumerate(arrays):
        if not (isinstance(a, np.ndarray) and a.flags.c_contiguous and not a.dtype.hasobject):
            record[str(i)] = Array.from_numpy_ndarray(a)  # Flower's own path (and its errors)
            continue
        layout = (a.dtype.str, a.shape)
        known = _NPY_HEADERS.get(layout)
        if known is None:
            buffer = io.BytesIO()
            np.save(buffer, a, allow_pickle=False)
            known = _NPY_HEADERS.setdefault(layout, (buffer.getvalue()[: buffer.tell() - a.nbytes], str(a.dtype)))
        header, dtype = known
        record[str(i)] = Array(dtype=dtype, shape=a.shape, stype=SType.NUMPY, data=header + a.tobytes())
    return record


def record_to_arrays(record: ArrayRecord) -> list[np.ndarray]:
    """``record.to_numpy_ndarrays()`` (writable copies), with each distinct ``.npy`` header parsed by NumPy once:
    ``np.load`` parses the header's text for every array (~40 us each). Anything but a C-order array without
    Python objects goes through Flower's own ``Array.numpy`` (which refuses pickles); data that does not fill its
    header's shape exactly raises ``ValueError``.

    >>> [a.tolist() for a in record_to_arrays(ArrayRecord([np.arange(3.0)]))]
    [[0.0, 1.0, 2.0]]
    """
    out = []
    for array in record.values():
        data = array.data
        if array.stype != SType.NUMPY or data[:7] != b"\x93NUMPY\x01":  # npy 2.0 and later: headers over 64 KB
            out.append(array.numpy())
            continue
        size = 10 + int.from_bytes(data[8:10], "little")  # npy 1.0: magic, version, 2-byte header length, header
        layout = _NPY_LAYOUTS.get(data[:size])
        if layout is None:
            fp = io.BytesIO(data)
            np.lib.format.read_magic(fp)
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(fp)  # numpy's own parser
            if fortran_order or dtype.hasobject or fp.tell() != size:
                out.append(array.numpy())
                continue
            layout = _NPY_LAYOUTS.setdefault(data[:size], (dtype, tuple(shape)))
        dtype, shape = layout
        out.append(np.frombuffer(data, dtype=dtype, offset=size).reshape(shape).copy())
    return out


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
    told those IDs (:meth:`announce`), fetches them all with the first ``dec_keys``. A KME that refuses n keys
    (fewer in the pool, or more than it hands out per request) is asked for its status, then for what it has.
    Keys fetched ahead were checked against the QBER threshold when fetched, and are lost if the run ends before
    they are used: ``rounds_left`` (the rounds of the run from the current one, when known) caps n, so a batch
    never fetches keys for rounds that never come.

    >>> TimedKme(client=None, keys_per_request=32, rounds_left=20).batch
    20
    """

    client: SaeClient
    seconds: float = 0.0
    requests: int = 0
    keys: int = 0
    keys_per_request: int = 1
    rounds_left: int | None = None  # the run's rounds from the current one (None: not known)
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

    @property
    def batch(self) -> int:
        """Keys one request for a session's QKD key fetches: ``keys_per_request``, at most ``rounds_left``."""
        return max(1, min(self.keys_per_request, self.rounds_left or self.keys_per_request))

    def status(self, slave: str) -> dict:
        return self._timed(self.client.status, slave)

    def enc_keys(self, slave: str, number: int = 1, size: int | None = None, **kw) -> list[tuple[str, bytes]]:
        ahead = self._ahead.setdefault(slave, [])
        if number != 1 or size is not None or (self.batch <= 1 and not ahead):
            keys = self._timed(self.client.enc_keys, slave, number, size, **kw)
            self.keys += len(keys)
            return keys
        if not ahead:
            try:
                keys = self._timed(self.client.enc_keys, slave, self.batch, size, **kw)
            except KmeError as err:
                if err.status not in (400, 503):
                    raise
                keys = self._timed(self.client.enc_keys, slave, self._fewer(slave), size, **kw)
            self.keys += len(keys)
            ahead.extend(keys)
        return [ahead.pop(0)]

    def _fewer(self, slave: str) -> int:
        """After a refused batch (fewer keys in the pool, or over the KME's keys per request): as many keys as the
        KME's status says one request can have now, 1 if it does not say."""
        try:
            status = self._timed(self.client.status, slave)
            return max(1, min(self.batch - 1, int(status["stored_key_count"]), int(status["max_key_per_request"])))
        except (KmeError, KeyError, TypeError, ValueError):
            return 1

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

    def import_keys(self, data: str | None, keep: bool = False) -> None:
        """Replace the keys fetched ahead with those of :meth:`export_keys` (None: none), or ``keep`` those held
        (they are the state's); announcements of an earlier message are dropped either way."""
        if not keep:
            d = json.loads(data) if data else {}
            self._ahead = {peer: [(k, _unb64(v)) for k, v in keys] for peer, keys in d.get("ahead", {}).items()}
            self._fetched = {peer: {k: _unb64(v) for k, v in keys.items()}
                             for peer, keys in d.get("fetched", {}).items()}
        self._announced = {}

    def take(self) -> tuple[float, int, int]:
        """Seconds waited, requests made and keys received since the last call."""
        out = (self.seconds, self.requests, self.keys)
        self.seconds, self.requests, self.keys = 0.0, 0, 0
        return out
