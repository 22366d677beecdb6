"""The key store after the operator's security review: durable commits, erased material, the key-encryption key
refused when missing or wrong, secrets and databases owner-only from their first byte."""

import base64
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import bindparam, text

from qfabric.errors import QfabricError
from qfabric.kms.certs import make_dev_pki
from qfabric.kms.relay import feed_link, link_pool, relay_path
from qfabric.kms.server import KEK_ENV, ServerConfig, load_or_create_secret, open_store
from qfabric.kms.store import KeysNotFound, KeyStore, WrongKek

POOL = "sae:alice|bob"


def file_store(tmp_path: Path, secret: bytes = b"k" * 32, **kw) -> KeyStore:
    return KeyStore(f"sqlite:///{tmp_path / 'keys.db'}", secret, **kw)


def config(tmp_path: Path) -> ServerConfig:
    return ServerConfig(kme_id="kme-a", saes={"alice": "kme-a", "bob": "kme-a"},
                        db_url=f"sqlite:///{tmp_path / 'k.db'}", secret_file=str(tmp_path / "kek.bin"),
                        certfile="unused", keyfile="unused", cafile="unused")


# ---- 1. durability ---------------------------------------------------------------------------------------

def test_sqlite_runs_in_wal_with_full_synchronous_on_every_connection(tmp_path):
    store = file_store(tmp_path)
    connections = [store.engine.raw_connection() for _ in range(2)]  # two pooled connections, each configured
    try:
        for conn in connections:
            cursor = conn.cursor()
            assert cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert cursor.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL (NORMAL is 1)
            assert cursor.execute("PRAGMA secure_delete").fetchone()[0] == 1
            cursor.close()
    finally:
        for conn in connections:
            conn.close()


CHILD = """
import os, sys
from qfabric.kms.store import KeyStore
store = KeyStore(sys.argv[1], b"k" * 32)
store.add_units("sae:alice|bob", [os.urandom(32) for _ in range(8)])
def mark(label):  # a failing open() of a unique path: a marker in the system-call trace
    try:
        os.open("/nonexistent-qfabric-mark-" + label, os.O_RDONLY)
    except OSError:
        pass
mark("reserve-begin")
[d] = store.reserve("sae:alice|bob", "alice", ["bob"], 1, 256)
mark("reserve-end")
mark("claim-begin")
store.claim("bob", "alice", [d.key_id])
mark("claim-end")
"""


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed: the fsync calls cannot be seen")
def test_an_issuance_and_a_claim_are_synced_to_disk_before_the_call_returns(tmp_path):
    """The system calls of reserve() and claim(): each flushes the WAL (fsync/fdatasync) before it returns. With
    synchronous=NORMAL they write the WAL but sync it only at checkpoints, so a power cut can undo them.
    (This proves SQLite asks the OS to flush; whether the drive honours a flush is beyond any test here.)"""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    trace = tmp_path / "trace.txt"
    result = subprocess.run(["strace", "-f", "-y", "-o", str(trace), "-e", "trace=openat,fsync,fdatasync",
                             sys.executable, str(script), f"sqlite:///{tmp_path / 'keys.db'}"],
                            capture_output=True, text=True, timeout=120)
    if result.returncode != 0 and "ptrace" in result.stderr:
        pytest.skip(f"strace cannot trace here: {result.stderr.strip()[:200]}")
    assert result.returncode == 0, result.stderr
    lines = trace.read_text().splitlines()

    def synced_between(begin: str, end: str) -> list[str]:
        start = next(i for i, line in enumerate(lines) if f"mark-{begin}" in line)
        stop = next(i for i, line in enumerate(lines) if f"mark-{end}" in line)
        return [line for line in lines[start:stop] if re.search(r"\b(fsync|fdatasync)\(\d+<[^>]*keys\.db-wal>", line)]

    assert synced_between("reserve-begin", "reserve-end")  # the issuance reached the disk before reserve returned
    assert synced_between("claim-begin", "claim-end")  # so did the claim


# ---- 3. erasure ------------------------------------------------------------------------------------------

def unit_material(store: KeyStore, key_ids) -> list[tuple[int, bytes]]:
    """The stored ciphertext of the units of ``key_ids``, straight from the table."""
    query = text("SELECT unit_id, ciphertext FROM key_units WHERE delivery_id IN :ids ORDER BY unit_id")
    with store.engine.connect() as conn:
        return [(r[0], r[1]) for r in conn.execute(query.bindparams(bindparam("ids", expanding=True)),
                                                    {"ids": list(key_ids)})]


def test_material_is_erased_once_the_last_slave_has_claimed_it_and_the_accounting_stays(tmp_path):
    store = file_store(tmp_path)
    store.add_units(POOL, [os.urandom(32) for _ in range(8)])
    keys = store.reserve(POOL, "alice", ["bob", "carol"], 2, 512)  # multicast: two slaves
    ids = [k.key_id for k in keys]
    before = unit_material(store, ids)
    assert len(before) == 4 and all(len(c) == 32 + 16 for _, c in before)  # encrypted unit + GCM tag
    assert store.claim("bob", "alice", ids) == keys
    assert all(len(c) > 0 for _, c in unit_material(store, ids))  # carol has not claimed: still there for her
    assert store.claim("carol", "alice", ids) == keys
    assert all(c == b"" for _, c in unit_material(store, ids))  # the last claim erased it
    assert store.accounting(POOL) == {"units_free": 4, "units_used": 4, "keys_delivered": 2, "claims_done": 4}
    assert store.material(POOL) == {"units_holding_material": 4, "units_erased": 4, "units_expired": 0}
    with store.engine.connect() as conn:  # the record stays: who got which key ID, when, how big
        rows = conn.execute(text("SELECT key_id, master_sae, size_bits FROM deliveries")).all()
        assert sorted(rows) == sorted((k, "alice", 512) for k in ids)
    store.engine.dispose()
    with sqlite3.connect(tmp_path / "keys.db") as conn:
        assert conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0  # not busy: all copied back
    raw = (tmp_path / "keys.db").read_bytes() + (tmp_path / "keys.db-wal").read_bytes()
    assert not any(c in raw for _, c in before)  # not in the file either (secure_delete), after a checkpoint
    with pytest.raises(KeysNotFound):
        store.claim("bob", "alice", ids[:1])


def test_units_spent_by_a_relay_are_erased(tmp_path):
    store = file_store(tmp_path)
    bits = np.random.default_rng(5).integers(0, 2, 256 * 6, dtype=np.uint8)
    feed_link(store, "x", "y", bits, bits, 256)
    relay_path(store, ["x", "y"], POOL, 4)
    for end in ("x", "y"):
        assert store.material(link_pool("x", "y", end)) == {"units_holding_material": 2, "units_erased": 4,
                                                            "units_expired": 0}
    assert store.available(POOL) == 4 and store.material(POOL)["units_holding_material"] == 4


def test_free_units_and_unclaimed_keys_are_erased_after_their_lifetime(tmp_path):
    store = file_store(tmp_path, key_lifetime_s=3600)
    store.add_units(POOL, [os.urandom(32) for _ in range(6)])
    [unclaimed] = store.reserve(POOL, "alice", ["bob"], 1, 256)
    [claimed] = store.reserve(POOL, "alice", ["bob"], 1, 256)
    store.claim("bob", "alice", [claimed.key_id])
    assert store.expire(now=time.time() + 1800) == {"units": 0, "deliveries": 0}  # not yet
    assert store.expire(now=time.time() + 7200) == {"units": 4, "deliveries": 1}
    assert store.available(POOL) == 0  # expired units left the pool
    assert store.material(POOL) == {"units_holding_material": 0, "units_erased": 6, "units_expired": 4}
    acc = store.accounting(POOL)
    assert acc == {"units_free": 0, "units_used": 6, "keys_delivered": 2, "claims_done": 1}
    with pytest.raises(KeysNotFound):  # too late: the material is gone, the key ID is reported not found
        store.claim("bob", "alice", [unclaimed.key_id])
    events = [e["event"] for e in store.audit_log()]
    assert "expired_units" in events and "expired_keys" in events
    assert store.expire(now=time.time() + 7300) == {"units": 0, "deliveries": 0}  # nothing twice


def test_expiry_runs_by_itself_after_writes(tmp_path):
    store = file_store(tmp_path, key_lifetime_s=0.5)
    store.add_units(POOL, [os.urandom(32) for _ in range(3)])
    time.sleep(0.7)
    store.add_units(POOL, [os.urandom(32) for _ in range(2)])  # a write sweeps: the first three are too old
    assert store.available(POOL) == 2
    assert store.material(POOL)["units_expired"] == 3


# ---- 4. the key-encryption key ---------------------------------------------------------------------------

def test_a_missing_kek_is_refused_when_the_store_holds_keys(tmp_path):
    cfg = config(tmp_path)
    open_store(cfg).add_units(POOL, [os.urandom(32)])
    Path(cfg.secret_file).unlink()
    with pytest.raises(QfabricError, match=re.escape(cfg.secret_file) + ".*missing"):
        open_store(cfg)
    assert not Path(cfg.secret_file).exists()  # no new key was made


def test_a_wrong_kek_is_refused_naming_the_file(tmp_path):
    cfg = config(tmp_path)
    open_store(cfg).add_units(POOL, [os.urandom(32)])
    Path(cfg.secret_file).write_bytes(os.urandom(32))
    with pytest.raises(QfabricError, match=re.escape(cfg.secret_file) + ": wrong key-encryption key"):
        open_store(cfg)


def test_a_store_without_check_value_is_checked_by_decrypting_a_unit(tmp_path):
    store = file_store(tmp_path)
    store.add_units(POOL, [os.urandom(32)])
    with store.engine.begin() as conn:  # as a store from before check values
        conn.execute(text("DELETE FROM store_meta"))
    with pytest.raises(WrongKek):
        file_store(tmp_path, secret=b"x" * 32)
    assert file_store(tmp_path).available(POOL) == 1  # the right key opens it (and writes the check value)


def test_an_empty_store_gets_a_kek_and_checks_it_from_then_on(tmp_path):
    cfg = config(tmp_path)
    open_store(cfg)
    assert KeyStore.holds_keys(cfg.db_url)
    Path(cfg.secret_file).write_bytes(os.urandom(32))
    with pytest.raises(QfabricError, match="wrong key-encryption key"):
        open_store(cfg)


def test_the_kek_from_the_environment_as_hex_or_base64(tmp_path, monkeypatch):
    cfg = config(tmp_path)
    secret = os.urandom(32)
    for form in (secret.hex(), base64.b64encode(secret).decode()):
        monkeypatch.setenv(KEK_ENV, form)
        open_store(cfg).add_units(POOL, [os.urandom(32)])
    assert not Path(cfg.secret_file).exists()  # the file was never needed nor made
    assert open_store(cfg).available(POOL) == 2
    monkeypatch.setenv(KEK_ENV, os.urandom(32).hex())
    with pytest.raises(QfabricError, match=re.escape(f"${KEK_ENV}: wrong key-encryption key")):
        open_store(cfg)
    monkeypatch.setenv(KEK_ENV, "not a key")
    with pytest.raises(QfabricError, match=re.escape(KEK_ENV)):
        open_store(cfg)


@pytest.fixture
def no_chmod(monkeypatch):
    """chmod does nothing, the umask is the usual 022: a file is owner-only only if it was created so."""
    monkeypatch.setattr(os, "chmod", lambda *a, **k: None)
    monkeypatch.setattr(os, "fchmod", lambda *a, **k: None)
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_kek_private_keys_and_database_are_owner_only_from_their_first_byte(tmp_path, no_chmod):
    load_or_create_secret(tmp_path / "kek.bin")
    assert mode(tmp_path / "kek.bin") == 0o600
    paths = make_dev_pki(tmp_path / "pki", kmes=["kme-a"], saes=["alice"])
    assert mode(paths["kme-a.key"]) == mode(paths["alice.key"]) == 0o600
    assert mode(paths["alice"]) == 0o644  # certificates are public
    store = file_store(tmp_path)
    store.add_units(POOL, [os.urandom(32)])
    with store.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        for suffix in ("", "-wal", "-shm"):  # SQLite gives its side files the database's mode
            assert mode(tmp_path / f"keys.db{suffix}") == 0o600, suffix


def test_existing_loose_files_are_tightened(tmp_path):
    (tmp_path / "pki").mkdir()
    loose = tmp_path / "pki" / "alice.key"
    loose.write_text("old")
    loose.chmod(0o644)
    make_dev_pki(tmp_path / "pki", kmes=[], saes=["alice"])
    assert mode(loose) == 0o600 and loose.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    db = tmp_path / "keys.db"
    sqlite3.connect(db).close()
    db.chmod(0o644)
    file_store(tmp_path)
    assert mode(db) == 0o600
