"""Crypto policy per SAE pair: QKD-only, hybrid, or post-quantum only; fallback when QKD cannot serve.

>>> policy = Policy(mode="hybrid", fallback="pq-only", qber_threshold=0.11)
>>> policy.decide(qkd_available=False, link_qber=0.02)
Decision(mode='pq-only', fallback=True, reason='no QKD key available')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from qfabric.errors import QfabricError
from qfabric.kms.hybrid import Mode


@dataclass(frozen=True)
class Decision:
    mode: str
    fallback: bool
    reason: str | None = None


class NoKeyAvailable(QfabricError):
    """The policy forbids falling back, and QKD cannot serve."""


@dataclass(frozen=True)
class Policy:
    """``mode`` when QKD is healthy; ``fallback`` (``pq-only`` or ``none``) when the pool is empty or the
    link's QBER is above ``qber_threshold``."""

    mode: Literal["qkd-only", "hybrid", "pq-only"] = "hybrid"
    fallback: Literal["pq-only", "none"] = "pq-only"
    qber_threshold: float = 0.11

    def __post_init__(self) -> None:
        Mode(self.mode)
        if self.fallback not in ("pq-only", "none"):
            raise QfabricError(f"fallback {self.fallback!r}: expected pq-only or none")

    def decide(self, qkd_available: bool, link_qber: float | None = None) -> Decision:
        if self.mode == "pq-only":
            return Decision("pq-only", False)
        reason = None
        if link_qber is not None and link_qber > self.qber_threshold:
            reason = f"link QBER {link_qber:.3f} above {self.qber_threshold:.2f}"
        elif not qkd_available:
            reason = "no QKD key available"
        if reason is None:
            return Decision(self.mode, False)
        if self.fallback == "none":
            raise NoKeyAvailable(f"{reason}; the policy allows no fallback")
        return Decision("pq-only", True, reason)
