"""KME throughput: enc_keys + dec_keys round trips under concurrent load, over mutual TLS on loopback.

    python benchmarks/bench_kms.py [--seconds 10] [--clients 4 8] [--db URL]

Each client thread is one master/slave SAE pair with its own TLS connections (keep-alive): it asks
for keys (enc_keys), then fetches them as the slave (dec_keys). A key pair is one key delivered to
both. The KME is a separate process (uvicorn, one worker) with a SQLite store unless --db names
another database. Client and server share the machine's two cores.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time

from peers import machine
from qfabric.kms.local import LocalKme


def load(kme: LocalKme, clients: int, seconds: float, number: int) -> dict:
    latencies: list[float] = []
    pairs = [0]
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def worker(i: int) -> None:
        master, slave = f"m{i}", f"s{i}"
        local_lat, done = [], 0
        with kme.client(master) as m, kme.client(slave) as s:
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                keys = m.enc_keys(slave, number=number)
                t1 = time.perf_counter()
                s.dec_keys(master, [k for k, _ in keys])
                t2 = time.perf_counter()
                local_lat += [t1 - t0, t2 - t1]
                done += len(keys)
        with lock:
            latencies.extend(local_lat)
            pairs[0] += done

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    q = statistics.quantiles(latencies, n=100)
    return {"clients": clients, "number": number, "key_pairs_per_s": pairs[0] / wall, "requests": len(latencies),
            "p50_ms": q[49] * 1e3, "p99_ms": q[98] * 1e3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--db", default=None, help="database URL (default: a SQLite file)")
    a = ap.parse_args()
    most = max(a.clients)
    with tempfile.TemporaryDirectory() as tmp:
        saes = [f"{r}{i}" for i in range(most) for r in ("m", "s")]
        kme = LocalKme.create(tmp, saes, db_url=a.db, max_key_per_request=128)
        for i in range(most):
            kme.fill(f"m{i}", f"s{i}", 60_000)
        kme.start()
        try:
            print(f"machine: {machine()}; store: {kme.config.db_url.split(':')[0]}")
            print("| clients | keys per request | key pairs/s | requests | p50 ms | p99 ms |")
            print("|---|---|---|---|---|---|")
            for number in (1, 10):
                for clients in a.clients:
                    r = load(kme, clients, a.seconds, number)
                    print(f"| {r['clients']} | {r['number']} | {r['key_pairs_per_s']:.0f} | {r['requests']} | "
                          f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} |", flush=True)
        finally:
            kme.stop()


if __name__ == "__main__":
    main()
