"""Session keys for applications under a crypto policy: QKD keys from the KME over ETSI 014, combined
with ML-KEM-768 and X25519, or post-quantum only when QKD cannot serve; every fallback is audited.

The initiator (master SAE) asks its KME for a key, derives the session key and sends the responder
a :class:`~qfabric.kms.hybrid.Hello` carrying the key ID (never the key); the responder fetches the same
key from its KME by ID and derives the same session key.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from qfabric.kms.client import MAX_LINK_QBER, KmeError, SaeClient
from qfabric.kms.hybrid import Hello, Mode, ResponderKeys, ResponderPublic, initiate, respond
from qfabric.kms.policy import Policy

AuditSink = Callable[[dict], None]
log = logging.getLogger("qfabric.kms.broker")
SIMULATED_QKD_ONLY = ("qkd-only session keys from simulated QKD links: the KME says its key material is "
                      "simulated (reproducible from a scenario seed), so these sessions have no secrecy; "
                      "use hybrid to keep ML-KEM-768 + X25519")


def jsonl_audit(path: str | Path) -> AuditSink:
    """An append-only audit file: one JSON object per line (who, what, why; never key material)."""
    path = Path(path)

    def write(event: dict) -> None:
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"at": time.time(), **event}) + "\n")

    return write


@dataclass
class SessionBroker:
    """One SAE's side: its KME client, its policy, where audit events go."""

    sae_id: str
    kme: SaeClient
    policy: Policy
    audit: AuditSink
    _simulated: dict[str, bool] = field(default_factory=dict, repr=False)  # per peer: the KME's keys are simulated

    def _warn_if_simulated(self, peer: str) -> None:
        """Once per peer: a ``qkd-only`` session on simulated key material is logged and audited as such."""
        if peer not in self._simulated:
            extension = self.kme.status(peer).get("status_extension") or {}
            self._simulated[peer] = bool(extension.get("simulated_key_material"))
            if self._simulated[peer]:
                log.warning("%s -> %s: %s", self.sae_id, peer, SIMULATED_QKD_ONLY)
                self.audit({"event": "warning", "sae": self.sae_id, "peer": peer, "mode": Mode.QKD_ONLY.value,
                            "reason": SIMULATED_QKD_ONLY})

    def _qkd_key(self, peer: str) -> tuple[tuple[str, bytes] | None, bool, float | None]:
        """A QKD key for ``peer`` if its pool has one and its links' QBER is within the policy's threshold;
        returns (key or None, whether the pool had keys, the link QBER if the KME said).

        One request: ``enc_keys`` with the ``max_link_qber`` mandatory extension (the KME refuses above the
        threshold without spending a key). A KME that answers it with 400 (one that does not support the
        extension) is asked for the pair's status first, then for a key."""
        try:
            [key] = self.kme.enc_keys(peer, number=1,
                                      extension_mandatory=[{MAX_LINK_QBER: self.policy.qber_threshold}])
            return key, True, None
        except KmeError as err:
            if err.status == 503:
                details = (err.body or {}).get("details") or [{}]
                qber = details[0].get("link_qber") if isinstance(details[0], dict) else None
                return None, qber is not None, qber  # above the threshold, or the pool is dry
            if err.status != 400:
                raise
        status = self.kme.status(peer)
        qber = (status.get("status_extension") or {}).get("link_qber")
        if status["stored_key_count"] == 0 or (qber is not None and qber > self.policy.qber_threshold):
            return None, status["stored_key_count"] > 0, qber
        try:
            [key] = self.kme.enc_keys(peer, number=1)
            return key, True, qber
        except KmeError as err:
            if err.status != 503:
                raise
            return None, False, qber

    def initiate(self, peer: str, peer_public: ResponderPublic) -> tuple[Hello, bytes]:
        """Derive a session key with ``peer`` under the policy; returns the hello to send and the key."""
        qkd_key = key_id = None
        if self.policy.mode == Mode.PQ_ONLY:
            decision = self.policy.decide(qkd_available=False)
        else:
            key, available, qber = self._qkd_key(peer)
            decision = self.policy.decide(qkd_available=available and key is not None, link_qber=qber)
            if key is not None:
                key_id, qkd_key = key
        if decision.mode == Mode.QKD_ONLY:
            self._warn_if_simulated(peer)
        if decision.fallback:
            self.audit({"event": "fallback", "sae": self.sae_id, "peer": peer, "mode": decision.mode,
                        "wanted": self.policy.mode, "reason": decision.reason})
        hello, key = initiate(peer_public, self.sae_id, peer, decision.mode, qkd_key, key_id)
        self.audit({"event": "session", "sae": self.sae_id, "peer": peer, "mode": decision.mode, "key_ID": key_id})
        return hello, key

    def respond(self, peer: str, hello: Hello, keys: ResponderKeys) -> bytes:
        """The responder's side: fetch the QKD key the hello names (if any) and derive the session key."""
        qkd_key = None
        if hello.qkd_key_id is not None:
            [(_, qkd_key)] = self.kme.dec_keys(peer, [hello.qkd_key_id])
        self.audit({"event": "session", "sae": self.sae_id, "peer": peer, "mode": hello.mode.value,
                    "key_ID": hello.qkd_key_id})
        return respond(keys, hello, peer, self.sae_id, qkd_key)
