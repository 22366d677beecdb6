"""From raw records to identical secret keys: sift, estimate, reconcile, verify, amplify; or abort.

>>> import numpy as np
>>> from qfabric.qkd.bb84 import DecoyBB84Link
>>> from qfabric.qkd.theory import Channel, DecoySettings
>>> from qfabric.qkd.theory import optimise_settings
>>> settings = optimise_settings(Channel(25), 10**8)
>>> rec = DecoyBB84Link(Channel(25), settings).simulate(10**8, np.random.default_rng(5))
>>> block = distill_decoy_bb84(rec, settings, seed=5)
>>> block.aborted, bool((block.alice_key == block.bob_key).all()), block.key_bits > 10**4
(False, True, True)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from qfabric.errors import ParameterError
from qfabric.qkd.bb84 import RawRecords, X, Z
from qfabric.qkd.postprocess import cascade, toeplitz_hash_pair, verification_tag_bits, verify_frames
from qfabric.qkd.theory import DecoySettings, FiniteKeyResult, bbm92_key_length, finite_key_length, h2

QBER_THRESHOLD = 0.11
MAX_BLOCK_BITS = 2**23  # privacy amplification is one FFT over the block: keep it in memory and float64-exact


@dataclass
class KeyBlock:
    """The outcome of distilling one block: identical keys, or ``aborted`` with a ``reason``."""

    protocol: str
    pulses: int
    detections: int
    sifted_bits: int
    test_bits: int
    qber_estimate: float
    qber_actual: float
    leaked_bits: int = 0
    round_trips: int = 0
    frames: int = 0
    key_bits: int = 0
    aborted: bool = False
    reason: str | None = None
    alice_key: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint8), repr=False)
    bob_key: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint8), repr=False)
    seconds: dict[str, float] = field(default_factory=dict)
    finite_key: FiniteKeyResult | None = None

    @property
    def efficiency(self) -> float | None:
        """Reconciliation efficiency ``f = leaked / (n h(QBER))`` against the block's actual error rate."""
        if not self.sifted_bits or not 0 < self.qber_actual < 0.5:
            return None
        return self.leaked_bits / (self.sifted_bits * h2(self.qber_actual))

    @property
    def secret_bits_per_pulse(self) -> float:
        return self.key_bits / self.pulses if self.pulses else 0.0

    def summary(self) -> dict:
        """JSON-ready numbers (no key material)."""
        fk = self.finite_key
        return {
            "protocol": self.protocol, "pulses": self.pulses, "detections": self.detections,
            "sifted_bits": self.sifted_bits, "test_bits": self.test_bits,
            "qber_estimate": self.qber_estimate, "qber_actual": self.qber_actual,
            "leaked_bits": self.leaked_bits, "efficiency": self.efficiency, "round_trips": self.round_trips,
            "frames": self.frames, "key_bits": self.key_bits, "secret_bits_per_pulse": self.secret_bits_per_pulse,
            "aborted": self.aborted, "reason": self.reason, "seconds": self.seconds,
            "single_photon_bits": fk.s1 if fk else None, "phase_error_bound": fk.phi1 if fk else None,
        }


def _split_sifted(records: RawRecords):
    same = records.alice_basis == records.bob_basis
    key = same & (records.alice_basis == Z)
    test = same & (records.alice_basis == X)
    return np.flatnonzero(key), np.flatnonzero(test)


def _reconcile(alice: np.ndarray, bob: np.ndarray, qber: float, variant: str, frame_bits: int, eps_cor: float,
               rng: np.random.Generator, block: KeyBlock) -> np.ndarray | None:
    """Cascade frame by frame, then verify every frame; ``None`` if any frame still differs."""
    frames = max(1, len(alice) // frame_bits)
    tag = verification_tag_bits(eps_cor, frames)
    corrected, leaked, rounds = [], 0, 0
    t0 = time.perf_counter()
    shuffle_seed = int(rng.integers(0, 2**63))  # one public set of shuffles for every frame of the block
    for a, b in zip(np.array_split(alice, frames), np.array_split(bob, frames), strict=True):
        result = cascade(a, b, qber, variant, seed=shuffle_seed)
        corrected.append(result.corrected)
        leaked += result.leaked_bits
        rounds = max(rounds, result.round_trips)  # frames run in parallel
    t1 = time.perf_counter()
    check = verify_frames(np.array_split(alice, frames), corrected, tag, rng)
    ok = bool(check.ok.all())
    block.seconds["reconcile"] = t1 - t0
    block.seconds["verify"] = time.perf_counter() - t1
    block.frames = frames
    block.leaked_bits = leaked + frames * check.tag_bits
    block.round_trips = rounds + 1
    return np.concatenate(corrected) if ok else None


def _amplify(alice: np.ndarray, bob: np.ndarray, length: int, rng: np.random.Generator, block: KeyBlock) -> None:
    t0 = time.perf_counter()
    seed = rng.integers(0, 2, len(alice) + length - 1, dtype=np.uint8)
    block.alice_key, block.bob_key = toeplitz_hash_pair(alice, bob, seed, length)  # each party hashes its own
    block.key_bits = length
    block.seconds["amplify"] = time.perf_counter() - t0


def _check_block(records: RawRecords) -> None:
    sifted = int(np.count_nonzero((records.alice_basis == records.bob_basis) & (records.alice_basis == Z)))
    if sifted > MAX_BLOCK_BITS:
        raise ParameterError("records", f"{sifted} sifted bits", f"a block of at most {MAX_BLOCK_BITS} sifted "
                             "bits: split the run into blocks (qfabric.qkd.link.run_link does)")


def _check_common(eps_sec: float, eps_cor: float, frame_bits: int) -> None:
    for name, eps in (("eps_sec", eps_sec), ("eps_cor", eps_cor)):
        if not 0 < eps < 1:
            raise ParameterError(name, eps, "a failure probability in (0, 1)")
    if frame_bits < 256:
        raise ParameterError("frame_bits", frame_bits, "at least 256 bits per Cascade frame")


def _distill(records: RawRecords, protocol: str, estimate, key_length, *, eps_cor: float, variant: str,
             frame_bits: int, seed: int, qber_threshold: float) -> KeyBlock:
    """The steps every protocol shares. ``estimate(records, test_idx) -> QBER`` (or ``None`` if there is
    nothing to test with); ``key_length(block) -> (length, reason if not positive)``."""
    rng = np.random.Generator(np.random.PCG64(seed))
    t0 = time.perf_counter()
    key_idx, test_idx = _split_sifted(records)
    alice, bob = records.alice_bit[key_idx], records.bob_bit[key_idx]
    qber_est = estimate(records, test_idx)
    block = KeyBlock(protocol, records.pulses, len(records.intensity), len(key_idx), len(test_idx),
                     0.5 if qber_est is None else float(qber_est), float(np.mean(alice != bob)) if len(alice) else 0.5)
    block.seconds["sift_estimate"] = time.perf_counter() - t0
    if len(key_idx) < 2 or qber_est is None:
        return _abort(block, "too few detections to sift a key and test it: send more pulses or pairs")
    if qber_est > qber_threshold:
        return _abort(block, f"QBER estimate {qber_est:.3f} above the {qber_threshold:.2f} threshold")
    corrected = _reconcile(alice, bob, max(qber_est, 1e-3), variant, frame_bits, eps_cor, rng, block)
    if corrected is None:
        return _abort(block, "verification failed: a frame kept errors after Cascade")
    length, reason = key_length(block)
    if length < 1:
        return _abort(block, reason)
    _amplify(alice, corrected, int(math.floor(length)), rng, block)
    return block


def distill_decoy_bb84(
    records: RawRecords, settings: DecoySettings, *, eps_sec: float = 1e-10, eps_cor: float = 1e-15,
    variant: str = "option8", frame_bits: int = 65_536, seed: int = 0, qber_threshold: float = QBER_THRESHOLD,
) -> KeyBlock:
    """Decoy BB84 block: key from Z-basis detections (all intensities), X basis disclosed to bound the
    phase error; key length from Lim et al. (2014) with the bits Cascade and verification leaked."""
    _check_common(eps_sec, eps_cor, frame_bits)
    _check_block(records)
    counts = records.counts()

    def estimate(_records, _test_idx):
        return counts["m_x"][0] / counts["n_x"][0] if counts["n_x"][0] else None  # signal intensity, X basis

    def key_length(block):
        fk = finite_key_length(counts["n_z"], counts["n_x"], counts["m_x"], settings, block.leaked_bits,
                               eps_sec, eps_cor)
        block.finite_key = fk
        return fk.length, (f"finite-key length {fk.length:.0f} <= 0 (single-photon bits {fk.s1:.0f}, phase error "
                           f"bound {fk.phi1:.3f}): the block is too small for eps_sec={eps_sec:g}, or an "
                           "eavesdropper was detected")

    return _distill(records, "decoy-bb84", estimate, key_length, eps_cor=eps_cor, variant=variant,
                    frame_bits=frame_bits, seed=seed, qber_threshold=qber_threshold)


def distill_bbm92(
    records: RawRecords, *, eps_sec: float = 1e-10, eps_cor: float = 1e-15, variant: str = "option8",
    frame_bits: int = 65_536, seed: int = 0, qber_threshold: float = QBER_THRESHOLD,
) -> KeyBlock:
    """BBM92 block: key from Z-Z measurements, X-X measurements disclosed to bound the phase error."""
    _check_common(eps_sec, eps_cor, frame_bits)
    errors = {}

    def estimate(rec, test_idx):
        if not len(test_idx):
            return None
        errors["x"] = int(np.count_nonzero(rec.alice_bit[test_idx] != rec.bob_bit[test_idx]))
        return errors["x"] / len(test_idx)

    def key_length(block):
        length, phase = bbm92_key_length(block.sifted_bits, block.test_bits, errors["x"], block.leaked_bits,
                                         eps_sec, eps_cor)
        return length, (f"finite-key length {length:.0f} <= 0 (phase error bound {phase:.3f}): the block is "
                        "too small for the security parameters")

    return _distill(records, "bbm92", estimate, key_length, eps_cor=eps_cor, variant=variant,
                    frame_bits=frame_bits, seed=seed, qber_threshold=qber_threshold)


def _abort(block: KeyBlock, reason: str) -> KeyBlock:
    block.aborted = True
    block.reason = reason
    block.key_bits = 0
    block.alice_key = block.bob_key = np.zeros(0, dtype=np.uint8)
    return block
