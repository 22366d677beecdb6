"""KME throughput: enc_keys + dec_keys round trips under concurrent load, over mutual TLS on loopback.

    python benchmarks/bench_kms.py [--seconds 10] [--clients 1 4 8] [--number 1 10] [--client raw httpx]
                                   [--db URL] [--baseline-src DIR] [--repeat N]

Each client is one master/slave SAE pair with its own TLS connections (keep-alive): it asks for keys
(enc_keys), then fetches them as the slave (dec_keys). A key pair is one key delivered to both. The KME
is a separate process (uvicorn, one worker) with a SQLite store (durable: synchronous=FULL) unless --db
names another database. The load generator is this process; client and server share the machine's cores.

Two load generators: ``httpx`` (one thread per pair, :class:`~qfabric.kms.client.SaeClient`, what an SAE
written in Python would use) and ``raw`` (one asyncio task per pair writing the same HTTP/1.1 requests on
the same mutual-TLS connections, about a fifth of httpx's CPU per request, so that more of the two cores
is left to the KME). Both check every answer (status 200, the keys asked for).

``--baseline-src DIR`` also runs each row against a KME whose code comes from DIR (a directory holding a
``qfabric`` package, e.g. the last commit: ``git archive HEAD src/qfabric | tar -x -C /tmp/kms-head`` and
``--baseline-src /tmp/kms-head/src``), alternating with the current code row by row, so that both see the
same machine load; ``--repeat N`` measures each row N times, alternating. Per row: key pairs/s, p50/p99 of
the requests, the KME's CPU time per key pair (what the machine's other load changes least) and its event
loop's (main thread's) share, the load generator's, and the machine's 1-minute load average before and after
the row.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import psutil

from peers import machine
from qfabric.kms.local import LocalKme


def load_httpx(kme: LocalKme, clients: int, seconds: float, number: int) -> tuple[list[float], int]:
    """One thread per SAE pair with httpx clients: (request latencies in s, key pairs done)."""
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
                got = s.dec_keys(master, [k for k, _ in keys])
                t2 = time.perf_counter()
                if got != keys:
                    raise RuntimeError("dec_keys returned other keys than enc_keys")
                local_lat += [t1 - t0, t2 - t1]
                done += len(keys)
        with lock:
            latencies.extend(local_lat)
            pairs[0] += done

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, pairs[0]


class RawSae:
    """One SAE's keep-alive mutual-TLS connection, sending ETSI 014 requests as bytes (asyncio streams)."""

    def __init__(self, kme: LocalKme, sae: str):
        self.kme, self.sae = kme, sae
        self.context = ssl.create_default_context(cafile=str(kme.pki["ca"]))
        self.context.load_cert_chain(str(kme.pki[sae]), str(kme.pki[f"{sae}.key"]))

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.kme.config.port,
                                                                 ssl=self.context)

    async def post(self, path: str, body: dict) -> dict:
        data = json.dumps(body).encode()
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                          f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = next(int(line[15:]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:"))
        answer = json.loads(await self.reader.readexactly(length))
        if status != 200:
            raise RuntimeError(f"{path}: {status} {answer}")
        return answer

    def close(self) -> None:
        self.writer.close()


def load_raw(kme: LocalKme, clients: int, seconds: float, number: int) -> tuple[list[float], int]:
    """One asyncio task per SAE pair on raw keep-alive connections: (request latencies in s, key pairs done)."""
    latencies: list[float] = []
    pairs = [0]

    async def pair(i: int, stop: float) -> None:
        master, slave = RawSae(kme, f"m{i}"), RawSae(kme, f"s{i}")
        await master.connect()
        await slave.connect()
        try:
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                keys = (await master.post(f"/api/v1/keys/s{i}/enc_keys", {"number": number}))["keys"]
                t1 = time.perf_counter()
                got = (await slave.post(f"/api/v1/keys/m{i}/dec_keys",
                                        {"key_IDs": [{"key_ID": k["key_ID"]} for k in keys]}))["keys"]
                t2 = time.perf_counter()
                if got != keys or len(keys) != number:
                    raise RuntimeError("dec_keys returned other keys than enc_keys")
                latencies.extend((t1 - t0, t2 - t1))
                pairs[0] += len(keys)
        finally:
            master.close()
            slave.close()

    async def main() -> None:
        stop = time.perf_counter() + seconds
        await asyncio.gather(*(pair(i, stop) for i in range(clients)))

    asyncio.run(main())
    return latencies, pairs[0]


def top_up(kme: LocalKme, clients: int, units: int) -> None:
    """Refill the pools of the first ``clients`` SAE pairs to ``units`` free units (before each row)."""
    for i in range(clients):
        free = kme.store.available(kme.config.kme().pool(f"m{i}", f"s{i}"))
        if free < units:
            kme.fill(f"m{i}", f"s{i}", units - free)


def loop_cpu(server: psutil.Process) -> float:
    """CPU seconds (user + system) of the KME's main thread, which runs its event loop (the store's writer and
    sync threads are the rest of the process's CPU)."""
    return next((t.user_time + t.system_time for t in server.threads() if t.id == server.pid), 0.0)


def measure(kme: LocalKme, client: str, clients: int, seconds: float, number: int) -> dict:
    server, me = psutil.Process(kme.proc.pid), psutil.Process()
    load_before = os.getloadavg()[0]
    s0, c0, l0 = server.cpu_times(), me.cpu_times(), loop_cpu(server)
    t0 = time.perf_counter()
    latencies, pairs = (load_raw if client == "raw" else load_httpx)(kme, clients, seconds, number)
    wall = time.perf_counter() - t0
    s1, c1, l1 = server.cpu_times(), me.cpu_times(), loop_cpu(server)
    q = statistics.quantiles(latencies, n=100)
    return {"key_pairs_per_s": pairs / wall, "requests": len(latencies), "p50_ms": q[49] * 1e3,
            "p99_ms": q[98] * 1e3,
            "server_cpu_ms_per_pair": 1e3 * (s1.user + s1.system - s0.user - s0.system) / pairs,
            "loop_cpu_ms_per_pair": 1e3 * (l1 - l0) / pairs,
            "client_cpu_ms_per_pair": 1e3 * (c1.user + c1.system - c0.user - c0.system) / pairs,
            "load_before": load_before, "load_1min": os.getloadavg()[0]}


def kme_under_test(tmp: str, name: str, clients: int, units: int, db: str | None, src: str | None) -> LocalKme:
    directory = os.path.join(tmp, name)
    os.mkdir(directory)
    saes = [f"{r}{i}" for i in range(clients) for r in ("m", "s")]
    kme = LocalKme.create(directory, saes, db_url=db, max_key_per_request=128)
    for i in range(clients):
        kme.fill(f"m{i}", f"s{i}", units)
    env = None
    if src is not None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
        where = subprocess.run([sys.executable, "-c", "import qfabric.kms.store as s; print(s.__file__)"],
                               env=env, capture_output=True, text=True, check=True).stdout.strip()
        if not where.startswith(os.path.abspath(src)):
            sys.exit(f"--baseline-src {src}: the KME would import {where}, not the code in {src}")
    kme.start(env=env)
    return kme


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--number", type=int, nargs="+", default=[1, 10], help="keys per request")
    ap.add_argument("--client", nargs="+", choices=["raw", "httpx"], default=["raw", "httpx"],
                    help="load generators to run")
    ap.add_argument("--units", type=int, default=40_000, help="free key units per SAE pair's pool before each row")
    ap.add_argument("--repeat", type=int, default=1, help="measure each row this many times (KMEs alternating)")
    ap.add_argument("--db", default=None, help="database URL (default: a SQLite file; one KME per URL)")
    ap.add_argument("--baseline-src", default=None, help="also run a KME with the qfabric package in this directory")
    a = ap.parse_args()
    most = max(a.clients)
    with tempfile.TemporaryDirectory() as tmp:
        kmes = {"current": kme_under_test(tmp, "current", most, a.units, a.db, None)}
        if a.baseline_src:
            if a.db:
                sys.exit("--baseline-src needs the default SQLite stores (one database per KME)")
            kmes = {"baseline": kme_under_test(tmp, "baseline", most, a.units, None, a.baseline_src), **kmes}
        try:
            print(f"machine: {machine()}; store: {kmes['current'].config.db_url.split(':')[0]}")
            print("| KME | load generator | clients | keys per request | key pairs/s | requests | p50 ms | p99 ms "
                  "| KME CPU ms per pair | of which event loop | generator CPU ms per pair "
                  "| load avg (1 min) before / after |")
            print("|---|---|---|---|---|---|---|---|---|---|---|---|")
            for client in a.client:
                for number in a.number:
                    for clients in a.clients:
                        for _ in range(a.repeat):
                            for name, kme in kmes.items():
                                top_up(kme, clients, a.units)
                                r = measure(kme, client, clients, a.seconds, number)
                                print(f"| {name} | {client} | {clients} | {number} | {r['key_pairs_per_s']:,.0f} | "
                                      f"{r['requests']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                                      f"{r['server_cpu_ms_per_pair']:.2f} | {r['loop_cpu_ms_per_pair']:.2f} | "
                                      f"{r['client_cpu_ms_per_pair']:.2f} | "
                                      f"{r['load_before']:.2f} / {r['load_1min']:.2f} |", flush=True)
        finally:
            for kme in kmes.values():
                kme.stop()


if __name__ == "__main__":
    main()
