"""Quantum-kernel matrices and QRNG throughput, against the per-entry peers, in one run.

    python benchmarks/bench_qml.py [--skip-peers] [--qrng-seconds 5]

1. A 100 x 100 ZZ-feature-map kernel at 8 qubits (2 reps, all pairs): qfabric (every state once, |S S^H|^2),
   PennyLane's ``qml.kernels.kernel_matrix`` (one compute-uncompute circuit per entry on default.qubit) and
   qiskit-machine-learning's ``FidelityQuantumKernel`` (ZZFeatureMap, statevector fidelity) if installed;
   the peers' matrices are checked against qfabric's.
2. A 1000 x 1000 kernel at 12 qubits (qfabric only).
3. QRNG: extracted Mbit/s on one core (source, health tests, Toeplitz extraction).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from peers import machine
from qfabric.apps.qml import QuantumKernel


def best_of(fn, repeats: int = 5) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def pennylane_kernel(X: np.ndarray) -> tuple[float, np.ndarray]:
    import pennylane as qml

    n = X.shape[1]
    dev = qml.device("default.qubit", wires=n)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]

    def zz(x):
        for _ in range(2):
            for w in range(n):
                qml.Hadamard(w)
                qml.PhaseShift(2 * x[w], wires=w)
            for i, j in pairs:
                qml.CNOT([i, j])
                qml.PhaseShift(2 * (np.pi - x[i]) * (np.pi - x[j]), wires=j)
                qml.CNOT([i, j])

    @qml.qnode(dev)
    def circuit(x1, x2):
        zz(x1)
        qml.adjoint(zz)(x2)
        return qml.probs(wires=range(n))

    start = time.perf_counter()
    K = qml.kernels.kernel_matrix(X, X, lambda a, b: circuit(a, b)[0])
    return time.perf_counter() - start, np.asarray(K)


def qiskit_kernel(X: np.ndarray) -> tuple[float, np.ndarray] | None:
    try:
        from qiskit.circuit.library import zz_feature_map
        from qiskit_machine_learning.kernels import FidelityQuantumKernel
    except ImportError:
        return None
    kernel = FidelityQuantumKernel(feature_map=zz_feature_map(X.shape[1], reps=2, entanglement="full"))
    start = time.perf_counter()
    K = kernel.evaluate(X)
    return time.perf_counter() - start, np.asarray(K)


def kernels(skip_peers: bool) -> None:
    X = np.random.default_rng(0).uniform(0, 2 * np.pi, (100, 8))
    qk = QuantumKernel("zz", reps=2)
    qk(X)  # warm-up
    ours_default, K = best_of(lambda: qk(X))
    with threadpool_limits(1):
        ours_one, _ = best_of(lambda: qk(X))
    print(f"\n100 x 100 kernel, 8 qubits (ZZ, 2 reps, 28 pairs): qfabric {ours_default * 1e3:.1f} ms "
          f"(BLAS default threads), {ours_one * 1e3:.1f} ms (1 thread); best of 5")
    if not skip_peers:
        seconds, K_pl = pennylane_kernel(X)
        print(f"  PennyLane kernel_matrix (per entry, default.qubit): {seconds:.1f} s, ratio "
              f"{seconds / ours_default:,.0f}x; max |K - K_qfabric| = {np.abs(K_pl - K).max():.1e}")
        qiskit = qiskit_kernel(X)
        if qiskit is None:
            print("  qiskit-machine-learning not installed: FidelityQuantumKernel not measured")
        else:
            seconds, K_q = qiskit
            print(f"  qiskit-machine-learning FidelityQuantumKernel: {seconds:.1f} s, ratio "
                  f"{seconds / ours_default:,.0f}x; max |K - K_qfabric| = {np.abs(K_q - K).max():.1e}")
    X = np.random.default_rng(1).uniform(0, 2 * np.pi, (1000, 12))
    qk = QuantumKernel("zz", reps=2)
    states_s, S = best_of(lambda: qk.states(X), repeats=3)
    total_s, _ = best_of(lambda: qk(X), repeats=3)
    print(f"1000 x 1000 kernel, 12 qubits (66 pairs): {total_s:.2f} s (states {states_s:.2f} s, "
          f"{S.nbytes / 2**20:.0f} MiB); best of 3")


def qrng(seconds: float) -> None:
    from qfabric.apps.qrng import Qrng

    with threadpool_limits(1):
        q = Qrng(seed=1)
        q.random_bytes(1)
        bits, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            q.block()
            bits += q.out_bits
        elapsed = time.perf_counter() - start
    s = q.summary()
    print(f"\nQRNG: {bits / elapsed / 1e6:.2f} Mbit/s extracted on one core ({bits:,} bits in {elapsed:.1f} s); "
          f"{s['block_samples']} samples x {s['adc_bits']} bits per block -> {s['extracted_bits_per_block']} bits "
          f"(ratio {s['extraction_ratio']:.3f}, H_quantum {s['min_entropy_quantum_bits']:.3f} bits/sample); "
          f"raw {bits / elapsed / s['extraction_ratio'] / 1e6:.2f} Mbit/s through the health tests")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--qrng-seconds", type=float, default=5.0)
    args = parser.parse_args()
    print(machine())
    kernels(args.skip_peers)
    qrng(args.qrng_seconds)


if __name__ == "__main__":
    main()
