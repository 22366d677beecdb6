"""A development KME for this example, in one command: ``python dev_kme.py [DIR]``.

It makes a development PKI (a CA, the KME's server certificate, one client certificate per SAE: the
aggregator and the three hospitals), starts an ETSI GS QKD 014 KME on 127.0.0.1 with its keys in SQLite, fills
every SAE pair's pool with keys, writes each hospital's data file and the test set (``DIR/data``, as ``python -m
hospitals.task`` does), and prints the SuperNode and ``flwr run`` settings that use them. Ctrl-C stops it.
The keys are random, not from a QKD link: for development only (``qfabric kms serve`` feeds a KME from a
scenario's simulated links).
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

from hospitals.task import save_split

from qfabric.kms.local import LocalKme

SAES = ["aggregator", "hospital-a", "hospital-b", "hospital-c"]
KEYS_PER_PAIR = 200


def main(directory: str = "dev-kme") -> None:
    kme = LocalKme.create(Path(directory).resolve(), SAES, max_key_count=KEYS_PER_PAIR)
    for a, b in itertools.combinations(SAES, 2):
        kme.fill(a, b, KEYS_PER_PAIR)
    *data, test = save_split(Path(directory).resolve() / "data", [0.5, 0.3, 0.2], seed=2026)  # data-shares, -seed
    kme.start()
    pki = kme.pki
    print(f"KME on {kme.url} (Ctrl-C stops it); {KEYS_PER_PAIR} keys for every pair of {', '.join(SAES)}\n")
    for i, sae in enumerate(SAES[1:]):
        print(f"{sae}: --node-config 'partition-id={i} data-path=\"{data[i]}\" qfabric-sae-id=\"{sae}\" "
              f"qfabric-kme-url=\"{kme.url}\" qfabric-cert=\"{pki[sae]}\" qfabric-key=\"{pki[sae + '.key']}\" "
              f"qfabric-ca=\"{pki['ca']}\"'")
    print(f"\nflwr run: --run-config 'test-data-path=\"{test}\" qfabric-kme-url=\"{kme.url}\" "
          f"qfabric-cert=\"{pki['aggregator']}\" qfabric-key=\"{pki['aggregator.key']}\" "
          f"qfabric-ca=\"{pki['ca']}\"'", flush=True)
    try:
        while kme.proc is not None and kme.proc.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        kme.stop()


if __name__ == "__main__":
    main(*sys.argv[1:2])
