"""Run a QKD link end to end: simulate raw records block by block and distill every block.

>>> run = run_decoy_bb84(Channel(40), pulses=10**8, seed=2)
>>> run.key_bits > 0, run.aborted_blocks
(True, 0)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from qfabric.errors import ParameterError
from qfabric.qkd.bb84 import DecoyBB84Link, InterceptResend, PhotonNumberSplitting
from qfabric.qkd.bbm92 import measure_pairs
from qfabric.qkd.distill import MAX_BLOCK_BITS, KeyBlock, distill_bbm92, distill_decoy_bb84
from qfabric.qkd.theory import (
    Channel,
    DecoySettings,
    decoy_bb84_rate,
    expected_counts,
    finite_key_rate,
    minimum_pulses,
    optimise_settings,
)
from qfabric.sim.kernel import stream_seed


@dataclass
class LinkRun:
    """Every block of one link run, and the totals an operator reads."""

    protocol: str
    distance_km: float | None
    pulses: int
    source_rate_hz: float
    blocks: list[KeyBlock] = field(default_factory=list)
    settings: DecoySettings | None = None
    analytic_bits_per_pulse: float | None = None
    asymptotic_bits_per_pulse: float | None = None
    plob_bits_per_pulse: float | None = None

    @property
    def key_bits(self) -> int:
        return sum(b.key_bits for b in self.blocks)

    @property
    def aborted_blocks(self) -> int:
        return sum(1 for b in self.blocks if b.aborted)

    @property
    def secret_bits_per_pulse(self) -> float:
        return self.key_bits / self.pulses

    @property
    def secret_key_rate_bps(self) -> float:
        return self.secret_bits_per_pulse * self.source_rate_hz

    def summary(self) -> dict:
        sifted = sum(b.sifted_bits for b in self.blocks)
        leaked = sum(b.leaked_bits for b in self.blocks)
        effs = [b.efficiency for b in self.blocks if b.efficiency is not None and not b.aborted]
        qbers = [b.qber_actual for b in self.blocks if b.sifted_bits]
        return {
            "protocol": self.protocol, "distance_km": self.distance_km, "pulses": self.pulses,
            "source_rate_hz": self.source_rate_hz, "blocks": len(self.blocks), "aborted_blocks": self.aborted_blocks,
            "abort_reasons": sorted({b.reason for b in self.blocks if b.reason}),
            "sifted_bits": sifted, "leaked_bits": leaked, "key_bits": self.key_bits,
            "qber": float(np.mean(qbers)) if qbers else None,
            "qber_estimate": float(np.mean([b.qber_estimate for b in self.blocks])) if self.blocks else None,
            "reconciliation_efficiency": float(np.mean(effs)) if effs else None,
            "secret_bits_per_pulse": self.secret_bits_per_pulse,
            "secret_key_rate_bps": self.secret_key_rate_bps,
            "analytic_bits_per_pulse": self.analytic_bits_per_pulse,
            "asymptotic_bits_per_pulse": self.asymptotic_bits_per_pulse,
            "plob_bits_per_pulse": self.plob_bits_per_pulse,
            "fraction_of_plob": (self.secret_bits_per_pulse / self.plob_bits_per_pulse
                                 if self.plob_bits_per_pulse else None),
            "seconds": {k: float(sum(b.seconds.get(k, 0.0) for b in self.blocks))
                        for k in ("sift_estimate", "reconcile", "verify", "amplify")},
        }


def _block_seed(seed: int, name: str, i: int) -> int:
    return int(stream_seed(seed, f"{name}/{i}").generate_state(1)[0])


def run_decoy_bb84(
    channel: Channel, pulses: int, *, settings: DecoySettings | None = None,
    eavesdropper: InterceptResend | PhotonNumberSplitting | None = None, seed: int = 0, variant: str = "option8",
    eps_sec: float = 1e-10, eps_cor: float = 1e-15, source_rate_hz: float = 1e9,
    block_bits: int = MAX_BLOCK_BITS, progress: Callable[[float], None] | None = None,
) -> LinkRun:
    """Send ``pulses`` pulses in blocks of at most ``block_bits`` sifted bits; distill each block.

    Settings (intensities, probabilities, basis bias) are optimised for the block size unless given.
    """
    if not (isinstance(pulses, int | np.integer) and pulses >= 1):
        raise ParameterError("pulses", pulses, "a positive whole number of pulses")
    if source_rate_hz <= 0:
        raise ParameterError("source_rate_hz", source_rate_hz, "a positive pulse rate")
    sifted_per_pulse = expected_counts(channel, settings or DecoySettings(), 1.0)["n_z"].sum()
    block_pulses = int(min(pulses, max(1, block_bits * 0.8 / max(sifted_per_pulse, 1e-300))))
    n_blocks = math.ceil(pulses / block_pulses)
    settings = settings or optimise_settings(channel, block_pulses, eps_sec, eps_cor)
    expected = finite_key_rate(channel, settings, block_pulses, eps_sec, eps_cor).rate
    if expected <= 0:
        needed = minimum_pulses(channel, settings, eps_sec, eps_cor)
        hint = (f"at least {needed:.2g} pulses per block" if math.isfinite(needed)
                else "a shorter or less noisy link: no block size gives a key")
        raise ParameterError("pulses", pulses, f"{hint} for a positive finite key over {channel.distance_km:g} km "
                             f"at eps_sec={eps_sec:g}, eps_cor={eps_cor:g} (blocks here hold {block_pulses:.2g})")
    link = DecoyBB84Link(channel, settings, eavesdropper)
    asymptotic = decoy_bb84_rate(channel, "infinite")
    run = LinkRun("decoy-bb84", channel.distance_km, int(pulses), source_rate_hz, settings=settings,
                  analytic_bits_per_pulse=expected,
                  asymptotic_bits_per_pulse=asymptotic.rate, plob_bits_per_pulse=asymptotic.plob)
    for i in range(n_blocks):
        n = block_pulses if i < n_blocks - 1 else pulses - block_pulses * (n_blocks - 1)
        rng = np.random.Generator(np.random.PCG64(_block_seed(seed, "bb84-pulses", i)))
        records = link.simulate(int(n), rng)
        run.blocks.append(distill_decoy_bb84(records, settings, eps_sec=eps_sec, eps_cor=eps_cor, variant=variant,
                                             seed=_block_seed(seed, "bb84-distill", i)))
        if progress is not None:
            progress((i + 1) / n_blocks)
    return run


def run_bbm92(
    pair_weights: np.ndarray, *, p_z: float = 0.5, e_det: float = 0.0, seed: int = 0, variant: str = "option8",
    eps_sec: float = 1e-10, eps_cor: float = 1e-15, pair_rate_hz: float = 1.0, block_bits: int = MAX_BLOCK_BITS,
) -> LinkRun:
    """BBM92 on delivered pairs (one row of Bell-diagonal weights each), in blocks of ``block_bits`` pairs."""
    w = np.asarray(pair_weights, dtype=float)
    if w.ndim != 2 or len(w) == 0:
        raise ParameterError("pair_weights", w.shape, "a non-empty N x 4 array")
    run = LinkRun("bbm92", None, len(w), pair_rate_hz)
    for i, start in enumerate(range(0, len(w), block_bits)):
        rng = np.random.Generator(np.random.PCG64(_block_seed(seed, "bbm92-pairs", i)))
        records = measure_pairs(w[start : start + block_bits], p_z, rng, e_det)
        run.blocks.append(distill_bbm92(records, eps_sec=eps_sec, eps_cor=eps_cor, variant=variant,
                                        seed=_block_seed(seed, "bbm92-distill", i)))
    return run
