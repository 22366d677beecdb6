"""Sessions kept for several rounds: one hybrid key agreement (ML-KEM-768 + X25519, with a QKD key) keys up to
``session_rounds`` rounds, and a fresh QKD key enters every round's key.

A session between two SAEs starts with the KMS broker's handshake under the crypto policy
(:meth:`~qfabric.kms.broker.SessionBroker.initiate`): its key ``S`` combines a QKD key, ML-KEM-768 and
X25519. Each round ``r`` of the session then has its own keys::

    K_r, M_r = HKDF-SHA256(ikm = S || q_r, info = label, mode, initiator, responder, start, r, key ID of q_r)

where ``q_r`` is a fresh QKD key fetched for that round (none in the session's first round, whose QKD key is
in ``S``; none under a ``pq-only`` policy). ``K_r`` keys the round (the sealed model and update, or the pair's
masks); ``M_r`` only confirms the key: the round's hello carries ``HMAC(M_r, ...)``, so a relay that alters a
key ID or a session's start is caught. A round key stays secret while that round's QKD key is secret or the
session's ML-KEM and X25519 secrets are: the trade-off against a key agreement every round is that an attacker
who has the QKD keys (a compromised relay, say) and breaks one key agreement reads up to ``session_rounds``
rounds instead of one (under ``pq-only``, with no QKD key, breaking the one agreement is enough).

A session ends after ``session_rounds`` rounds, when a round's QKD key cannot be had (the next handshake
applies the policy: fall back or refuse, audited), after a fallback (a fallback session keys one round, so
QKD is tried again the next), or when the aggregator restarts the sessions with an organisation that
failed a round.

>>> from qfabric.kms.hybrid import ResponderKeys
>>> k1, m1 = round_keys(bytes(32), "hybrid", "a", "b", start=1, round_number=2, qkd_key=bytes(32), qkd_key_id="id")
>>> k2, m2 = round_keys(bytes(32), "hybrid", "a", "b", start=1, round_number=3, qkd_key=bytes(32), qkd_key_id="id")
>>> len(k1), k1 != k2, k1 != m1
(32, True, True)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from qfabric.apps.federated.wire import hello_from_bytes, hello_to_bytes
from qfabric.errors import QfabricError
from qfabric.kms.broker import SessionBroker
from qfabric.kms.client import MAX_LINK_QBER, KmeError
from qfabric.kms.hybrid import Mode, ResponderKeys, ResponderPublic

LABEL = b"qfabric federated round keys v1"
CONFIRM = b"qfabric round hello"


class SessionMismatch(QfabricError):
    """A round's hello does not match the session it names (tampered, or the two ends out of step)."""


def _prefixed(*parts: bytes) -> bytes:
    return b"".join(struct.pack(">I", len(p)) + p for p in parts)


def round_keys(session_key: bytes, mode: str, initiator: str, responder: str, start: int, round_number: int,
               qkd_key: bytes | None = None, qkd_key_id: str | None = None) -> tuple[bytes, bytes]:
    """The round's key and its key-confirmation key, from the session's key and the round's QKD key."""
    info = b"\x00".join([LABEL, mode.encode(), initiator.encode(), responder.encode(), str(start).encode(),
                         str(round_number).encode(), (qkd_key_id or "").encode()])
    okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=info).derive(
        _prefixed(session_key, qkd_key or b""))
    return okm[:32], okm[32:]


def _tag(confirm_key: bytes) -> bytes:
    return hmac.new(confirm_key, CONFIRM, hashlib.sha256).digest()[:16]


@dataclass
class Session:
    """A key agreement's key and the rounds it keys: ``start`` to ``until`` (both included)."""

    key: bytes
    mode: str
    start: int
    until: int

    def covers(self, round_number: int) -> bool:
        return self.start <= round_number <= self.until


@dataclass
class Sessions:
    """One SAE's sessions, as initiator and as responder, per peer; ``rounds``: how many rounds a key agreement
    keys (1: a new one every round). Held by the aggregator in memory, and by a node in its Flower state
    (:meth:`to_json`): a SuperNode may run every message in a new process."""

    sae: str
    rounds: int = 1
    initiated: dict[str, Session] = field(default_factory=dict)
    responded: dict[str, Session] = field(default_factory=dict)
    changed: bool = False  # a session started or ended since the last to_json or load_json

    def forget(self, peers: Iterable[str]) -> None:
        """End the sessions with ``peers`` (both roles): their next round starts with a key agreement."""
        for peer in peers:
            ended = (self.initiated.pop(peer, None), self.responded.pop(peer, None))
            self.changed |= ended != (None, None)

    def initiate(self, broker: SessionBroker, peer: str, public: Callable[[], ResponderPublic],
                 round_number: int) -> tuple[bytes, bytes]:
        """This round's key with ``peer`` and the hello to send it: the session's next round with a fresh QKD
        key, or a new key agreement (``public()``, the peer's checked public keys, is called only then)."""
        session = self.initiated.get(peer)
        if session is not None and session.covers(round_number) and session.start < round_number:
            key_id = qkd_key = None
            try:
                if session.mode != Mode.PQ_ONLY:
                    [(key_id, qkd_key)] = broker.kme.enc_keys(
                        peer, number=1, extension_mandatory=[{MAX_LINK_QBER: broker.policy.qber_threshold}])
            except KmeError:  # no QKD key this round: a new key agreement applies the policy (and audits it)
                session = None
            if session is not None:
                broker.audit({"event": "session", "sae": self.sae, "peer": peer, "mode": session.mode,
                              "key_ID": key_id, "handshake": False, "since_round": session.start})
                return self._hello(session, peer, round_number, qkd_key, key_id)
        hello, key = broker.initiate(peer, public())
        kept = hello.mode.value == broker.policy.mode  # a fallback keys one round: QKD is tried again next round
        session = Session(key, hello.mode.value, round_number, round_number + (self.rounds - 1 if kept else 0))
        self.initiated[peer] = session
        self.changed = True
        return self._hello(session, peer, round_number, None, None, handshake=hello_to_bytes(hello))

    def _hello(self, session: Session, peer: str, round_number: int, qkd_key: bytes | None, key_id: str | None,
               handshake: bytes | None = None) -> tuple[bytes, bytes]:
        key, confirm = round_keys(session.key, session.mode, self.sae, peer, session.start, round_number, qkd_key,
                                  key_id)
        fields = {"start": session.start, "until": session.until, "round": round_number, "mode": session.mode,
                  "key_ID": key_id, "tag": base64.b64encode(_tag(confirm)).decode()}
        if handshake is not None:
            fields["hello"] = base64.b64encode(handshake).decode()
        return json.dumps(fields).encode(), key

    def respond(self, broker: SessionBroker, peer: str, hello: bytes, keys: ResponderKeys,
                round_number: int) -> bytes:
        """This round's key from ``peer``'s hello (:meth:`initiate`): a new session, or the next round of ours."""
        try:
            d = json.loads(hello)
            start, until, mode, key_id = int(d["start"]), int(d["until"]), str(d["mode"]), d["key_ID"]
            tag = base64.b64decode(d["tag"])
            handshake = base64.b64decode(d["hello"]) if "hello" in d else None
        except (ValueError, KeyError, TypeError) as err:
            raise SessionMismatch(f"a malformed round hello from {peer!r}: {err}") from None
        if int(d["round"]) != round_number:
            raise SessionMismatch(f"{peer!r}'s hello is for round {d['round']}, not {round_number}")
        qkd_key = None
        if handshake is not None:
            if start != round_number or not start <= until < start + self.rounds:
                raise SessionMismatch(f"{peer!r}'s key agreement names rounds {start}-{until} in round {round_number} "
                                      f"(sessions here last at most {self.rounds} rounds)")
            agreement = hello_from_bytes(handshake)
            mode = agreement.mode.value
            session = Session(broker.respond(peer, agreement, keys), mode, start, until)
        else:
            session = self.responded.get(peer)
            if session is None or session.start != start or session.mode != mode or not session.covers(round_number):
                raise SessionMismatch(f"{peer!r}'s hello continues a session of round {start} that {self.sae!r} does "
                                      "not hold (or that has ended)")
            if key_id is not None:
                [(_, qkd_key)] = broker.kme.dec_keys(peer, [str(key_id)])
            elif mode != Mode.PQ_ONLY:
                raise SessionMismatch(f"{peer!r}'s {mode} round hello carries no QKD key")
            broker.audit({"event": "session", "sae": self.sae, "peer": peer, "mode": mode, "key_ID": key_id,
                          "handshake": False, "since_round": start})
        key, confirm = round_keys(session.key, mode, peer, self.sae, start, round_number, qkd_key, key_id)
        if not hmac.compare_digest(tag, _tag(confirm)):
            raise SessionMismatch(f"{peer!r}'s round-{round_number} hello does not match its session (a key ID or "
                                  "the session altered in transit?)")
        self.changed |= self.responded.get(peer) is not session
        self.responded[peer] = session
        return key

    def to_json(self) -> str:
        def out(table: dict[str, Session]) -> dict:
            return {p: asdict(s) | {"key": base64.b64encode(s.key).decode()} for p, s in table.items()}

        self.changed = False
        return json.dumps({"initiated": out(self.initiated), "responded": out(self.responded)})

    def load_json(self, data: str | None) -> None:
        """Replace the sessions with those of :meth:`to_json` (None: none)."""
        d = json.loads(data) if data else {}

        def back(table: dict) -> dict[str, Session]:
            return {p: Session(base64.b64decode(s["key"]), s["mode"], s["start"], s["until"]) for p, s in table.items()}

        self.initiated, self.responded = back(d.get("initiated", {})), back(d.get("responded", {}))
        self.changed = False


def continues_session(hello: bytes) -> bool:
    """Whether a round hello continues a session (confirmed by its round key) rather than starting one (a key
    agreement, which peers sign and check). Anything else counts as a key agreement, whose signature is checked.

    >>> continues_session(b'{"start": 1, "round": 2}'), continues_session(b'{"start": 2, "hello": "..."}')
    (True, False)
    """
    try:
        d = json.loads(hello)
    except ValueError:
        return False
    return isinstance(d, dict) and "start" in d and "hello" not in d
