"""QKD post-processing throughput on one core, Cascade efficiency and frame error rate, and qfabric vs
SeQUeNCe's BB84 + Cascade on the same 10 km link.

    python benchmarks/bench_qkd.py [--frames 10000] [--skip-peer] [--sections throughput,peer,cascade]

Throughput: a decoy-BB84 link at 25 km with misalignment 2 % (QBER ~2 %), 10^9 pulses, every block
distilled (sift + estimate, Cascade option8 in 65,536-bit frames, verification, Toeplitz privacy
amplification); Mbit/s of sifted key through each step and end to end.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import time  # noqa: E402

import numpy as np  # noqa: E402
from scipy.stats import beta  # noqa: E402

from peers import machine, run_peer  # noqa: E402
from qfabric.qkd.bb84 import DecoyBB84Link  # noqa: E402
from qfabric.qkd.link import run_decoy_bb84  # noqa: E402
from qfabric.qkd.postprocess import cascade  # noqa: E402
from qfabric.qkd.postprocess.steps import sift  # noqa: E402
from qfabric.qkd.theory import Channel, DecoySettings  # noqa: E402


def throughput() -> None:
    run_decoy_bb84(Channel(25, e_det=0.02), 10**8, seed=1)  # compiles the kernels
    for block_bits in (2**23, 2**20):
        run = run_decoy_bb84(Channel(25, e_det=0.02), 10**9, seed=2, block_bits=block_bits)
        s = run.summary()
        bits = s["sifted_bits"]
        print(f"\nlink: 25 km, QBER {s['qber']:.4f}, blocks of at most {block_bits:,} sifted bits: "
              f"{len(run.blocks)} blocks, {bits:,} sifted bits, {s['key_bits']:,} key bits "
              f"({s['secret_bits_per_pulse'] * 1e3:.3f}e-3 per pulse), f = {s['reconciliation_efficiency']:.4f}")
        print("| step (both parties, one core) | seconds | Mbit/s of sifted key |\n|---|---|---|")
        for step, secs in s["seconds"].items():
            print(f"| {step} | {secs:.3f} | {bits / secs / 1e6:.1f} |")
        total = sum(s["seconds"].values())
        print(f"| end to end | {total:.3f} | {bits / total / 1e6:.2f} |")
        # Alice and Bob amplify on their own machines: 3 of the 5 transforms (seed, own key, inverse) each
        per_party = total - s["seconds"]["amplify"] * 2 / 5
        print(f"| end to end, one party (derived: amplification 3/5) | {per_party:.3f} | "
              f"{bits / per_party / 1e6:.2f} |")


def cascade_table(frames: int) -> None:
    print(f"\nCascade on {frames:,} frames of 10^4 bits per point: efficiency f (mean) and frame error rate "
          "(95 % upper bound)")
    print("| variant | QBER | f | failed frames | FER upper 95 % | ms per frame |\n|---|---|---|---|---|---|")
    for variant in ("original", "option7", "option8"):
        for qber in (0.01, 0.02, 0.05, 0.08, 0.10):
            rng = np.random.default_rng(7)
            effs, failures = [], 0
            t0 = time.perf_counter()
            for i in range(frames):
                alice = rng.integers(0, 2, 10_000, dtype=np.uint8)
                bob = alice ^ (rng.random(10_000) < qber).astype(np.uint8)
                r = cascade(alice, bob, qber, variant, seed=i)
                failures += int(not np.array_equal(r.corrected, alice))
                effs.append(r.efficiency(qber))
            ms = (time.perf_counter() - t0) / frames * 1e3
            upper = beta.ppf(0.95, failures + 1, frames - failures)
            print(f"| {variant} | {qber:.2f} | {np.mean(effs):.4f} | {failures} | {upper:.1e} | {ms:.2f} |", flush=True)


def versus_sequence() -> None:
    peer = run_peer("seq_qkd.py", "--distance-km", "10")
    # SeQUeNCe's link: mu = 0.1 at 80 MHz, detectors 0.9 efficient without dark counts, polarization fidelity
    # 0.97, 0.2 dB/km; keys from both bases. qfabric: the same pulses over the same simulated time.
    pulses = int(round(peer["sim_time_s"] * 80e6))
    ch = Channel(10, 0.2, detector_efficiency=0.9, y0=1e-9, e_det=peer["bb84_qber_mean"])
    settings = DecoySettings(mu1=0.1, mu2=0.01, mu3=0.0, p_mu1=0.998, p_mu2=0.001, p_z=0.5)
    t0 = time.perf_counter()
    rec = DecoyBB84Link(ch, settings).simulate(pulses, np.random.default_rng(0))
    idx = sift(rec.alice_basis, rec.bob_basis)
    alice, bob = rec.alice_bit[idx], rec.bob_bit[idx]
    frames = max(1, len(alice) // 65_536)
    reconciled = 0
    for i, (a, b) in enumerate(zip(np.array_split(alice, frames), np.array_split(bob, frames), strict=True)):
        r = cascade(a, b, max(float(np.mean(a != b)), 1e-3), "original", seed=i)
        reconciled += int(np.array_equal(r.corrected, a)) * len(a)
    wall = time.perf_counter() - t0
    q_per_bit = wall / reconciled
    s_per_bit = peer["run_wall_s"] / peer["final_key_bits"]
    print(f"\nBB84 + Cascade over 10 km, {peer['sim_time_s']:.4f} s simulated ({pulses:,} pulses at 80 MHz):")
    print("| simulator | reconciled bits | QBER | wall s | wall per reconciled bit | events |")
    print("|---|---|---|---|---|---|")
    print(f"| SeQUeNCe {peer['version']} | {peer['final_key_bits']} | {peer['bb84_qber_mean']:.4f} | "
          f"{peer['run_wall_s']:.2f} | {s_per_bit * 1e3:.2f} ms | {peer['events_executed']:,} |")
    print(f"| qfabric (Cascade original) | {reconciled:,} | {float(np.mean(alice != bob)):.4f} | {wall:.3f} | "
          f"{q_per_bit * 1e6:.3f} us | 0 (vectorised) |")
    print(f"ratio of wall time per reconciled bit, SeQUeNCe / qfabric: {s_per_bit / q_per_bit:,.0f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=10_000)
    ap.add_argument("--skip-peer", action="store_true")
    ap.add_argument("--sections", default="throughput,peer,cascade",
                    help="comma-separated: throughput, peer (qfabric vs SeQUeNCe), cascade (efficiency table)")
    a = ap.parse_args()
    sections = set(a.sections.split(","))
    if unknown := sections - {"throughput", "peer", "cascade"}:
        ap.error(f"unknown sections {sorted(unknown)}")
    print(f"machine: {machine()}")
    if "throughput" in sections:
        throughput()
    if "peer" in sections and not a.skip_peer:
        versus_sequence()
    if "cascade" in sections:
        cascade_table(a.frames)


if __name__ == "__main__":
    main()
