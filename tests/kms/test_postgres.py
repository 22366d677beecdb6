"""The key store on PostgreSQL (a throwaway cluster on loopback): the same guarantees as on SQLite."""

import glob
import os
import shutil
import subprocess
import tempfile
import threading

import pytest

from qfabric.kms.local import free_port
from qfabric.kms.relay import feed_link, relay_path
from qfabric.kms.store import KeysExhausted, KeyStore

INITDB = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
pytestmark = pytest.mark.skipif(not INITDB or shutil.which("runuser") is None,
                                reason="PostgreSQL server binaries are not installed (.ci/run installs them)")


def as_postgres(*cmd):
    subprocess.run(["runuser", "-u", "postgres", "--", *cmd], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def postgres_url():
    bindir = os.path.dirname(INITDB[-1])
    data = tempfile.mkdtemp(prefix="qfabric-pg-")
    shutil.chown(data, "postgres")
    port = free_port()
    as_postgres(f"{bindir}/initdb", "-D", data, "-A", "trust", "-U", "postgres")
    as_postgres(f"{bindir}/pg_ctl", "-D", data, "-l", f"{data}/log", "-w", "-o",
                f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start")
    try:
        as_postgres(f"{bindir}/createdb", "-h", "127.0.0.1", "-p", str(port), "qfabric")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/qfabric"
    finally:
        as_postgres(f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop")
        shutil.rmtree(data, ignore_errors=True)


def test_reserve_claim_and_refusals(postgres_url):
    store = KeyStore(postgres_url, b"p" * 32)
    store.add_units("sae:alice|bob", [bytes([i]) * 32 for i in range(6)])
    keys = store.reserve("sae:alice|bob", "alice", ["bob"], 2, 512)
    assert store.claim("bob", "alice", [k.key_id for k in keys]) == keys
    with pytest.raises(KeysExhausted):
        store.reserve("sae:alice|bob", "alice", ["bob"], 2, 512)  # only two units left: nothing changes
    assert store.accounting("sae:alice|bob") == {"units_free": 2, "units_used": 4, "keys_delivered": 2,
                                                 "claims_done": 2}


def test_concurrent_reservations_never_share_a_unit(postgres_url):
    store = KeyStore(postgres_url, b"p" * 32)
    store.add_units("sae:carol|dave", [os.urandom(32) for _ in range(400)])
    got, errors = [], []

    def worker():
        local = KeyStore(postgres_url, b"p" * 32)  # its own connection pool, as another KME worker would have
        try:
            for _ in range(30):
                [k] = local.reserve("sae:carol|dave", "carol", ["dave"], 1, 256)
                got.append(k)
        except Exception as err:
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({k.key_id for k in got}) == len(got) == 240
    assert len({k.material for k in got}) == 240  # no unit handed out twice (FOR UPDATE SKIP LOCKED)
    assert store.accounting("sae:carol|dave")["units_free"] == 160


def test_relay_on_postgres(postgres_url):
    import numpy as np

    store = KeyStore(postgres_url, b"p" * 32)
    for i, (a, b) in enumerate((("x", "y"), ("y", "z"))):
        bits = np.random.default_rng(i).integers(0, 2, 256 * 4, dtype=np.uint8)
        feed_link(store, a, b, bits, bits, 256)
    assert relay_path(store, ["x", "y", "z"], "sae:xa|zb", 3)["bits_per_hop"] == 768
    assert store.available("sae:xa|zb") == 3
