"""Group commit: many requests' issuances and claims in one durable SQLite transaction, each request isolated
in its own savepoint, no result before its batch's commit, and a crash mid-batch loses the whole batch."""

import asyncio
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from qfabric.errors import QfabricError
from qfabric.kms import writer as writer_module
from qfabric.kms.store import KeysExhausted, KeysNotFound, KeyStore
from qfabric.kms.writer import GroupCommitWriter

POOL = '["sae","alice","bob"]'
SECRET = b"g" * 32


def file_store(tmp_path: Path, **kw) -> KeyStore:
    return KeyStore(f"sqlite:///{tmp_path / 'keys.db'}", SECRET, **kw)


def hold(writer: GroupCommitWriter) -> threading.Event:
    """Keep the writer busy in a batch of its own until the returned event is set."""
    started, release = threading.Event(), threading.Event()

    def blocker(_conn):
        started.set()
        release.wait(10)

    writer.submit(blocker)
    assert started.wait(10)
    return release


def wait_pending(writer: GroupCommitWriter, n: int) -> None:
    deadline = time.monotonic() + 10
    while writer.pending() < n:
        assert time.monotonic() < deadline, f"{writer.pending()} requests queued, {n} expected"
        time.sleep(0.005)


def test_requests_of_one_batch_fail_alone_and_share_one_commit(tmp_path):
    store = file_store(tmp_path)
    store.add_units(POOL, [os.urandom(32) for _ in range(10)])
    writer = store.writer()
    release = hold(writer)
    commits_before = writer.commits
    calls = [lambda: store.reserve(POOL, "alice", ["bob"], 1, 256),
             lambda: store.reserve(POOL, "alice", ["bob"], 50, 256),  # more than the pool holds
             lambda: store.reserve(POOL, "alice", ["bob"], 2, 256),
             lambda: store.claim("bob", "alice", ["00000000-0000-4000-8000-000000000000"]),  # unknown
             lambda: store.reserve("no-such-pool", "alice", ["bob"], 1, 256)]
    with ThreadPoolExecutor(len(calls)) as threads:
        futures = []
        for call in calls:  # queued in this order, all behind the held batch
            futures.append(threads.submit(call))
            wait_pending(writer, len(futures))
        release.set()
        outcomes = []
        for f in futures:
            try:
                outcomes.append(f.result(10))
            except Exception as err:
                outcomes.append(err)
    assert writer.commits == commits_before + 2  # the held batch, then the five requests together
    assert writer.largest_batch >= len(calls)
    assert [len(o) if isinstance(o, list) else type(o) for o in outcomes] == \
        [1, KeysExhausted, 2, KeysNotFound, KeysExhausted]
    acc = store.accounting(POOL)  # only the two successful issuances changed the pool
    assert acc == {"units_free": 7, "units_used": 3, "keys_delivered": 3, "claims_done": 0}
    issued = [e for e in store.audit_log() if e["event"] == "enc_keys"]
    assert len(issued) == 2
    keys = outcomes[0] + outcomes[2]
    assert len({k.material for k in keys}) == 3
    assert [d.material for d in store.claim("bob", "alice", [k.key_id for k in keys])] == [k.material for k in keys]


def test_a_result_leaves_only_after_its_batch_is_committed(tmp_path):
    path = tmp_path / "w.db"
    fail_commit = threading.Event()

    class FailingCommit(sqlite3.Connection):
        def execute(self, sql, *args):
            if sql == "COMMIT" and fail_commit.is_set():
                raise sqlite3.OperationalError("disk I/O error (injected)")
            return super().execute(sql, *args)

    writer = GroupCommitWriter(lambda: sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                                       factory=FailingCommit))
    writer.submit(lambda conn: conn.execute("CREATE TABLE t (x INTEGER)")).result(10)
    seen_commits = []
    release = hold(writer)
    futures = [writer.submit(lambda conn, i=i: conn.execute("INSERT INTO t VALUES (?)", (i,)).rowcount)
               for i in range(5)]
    for f in futures:
        f.add_done_callback(lambda _f: seen_commits.append(writer.commits))
    wait_pending(writer, 5)
    committed = writer.commits  # the held batch is not committed yet
    assert not any(f.done() for f in futures)
    release.set()
    assert [f.result(10) for f in futures] == [1] * 5
    assert seen_commits == [committed + 2] * 5  # every result appeared after the commit of its batch (the second)
    with sqlite3.connect(path) as other:  # and another connection sees all of it
        assert other.execute("SELECT count(*) FROM t").fetchone()[0] == 5

    fail_commit.set()  # a batch whose commit fails: every request of it fails, none of it is stored
    release = hold(writer)
    futures = [writer.submit(lambda conn, i=i: conn.execute("INSERT INTO t VALUES (?)", (i,)).rowcount)
               for i in range(5, 9)]
    wait_pending(writer, 4)
    release.set()
    for f in futures:
        with pytest.raises(sqlite3.OperationalError, match="injected"):
            f.result(10)
    fail_commit.clear()
    assert writer.submit(lambda conn: conn.execute("SELECT count(*) FROM t").fetchone()[0]).result(10) == 5
    writer.close()


def test_a_request_that_fails_after_writing_is_rolled_back_alone(tmp_path):
    writer = GroupCommitWriter(lambda: sqlite3.connect(tmp_path / "w.db", isolation_level=None,
                                                       check_same_thread=False))
    writer.submit(lambda conn: conn.execute("CREATE TABLE t (x INTEGER)")).result(10)

    def write_then_fail(conn):
        conn.execute("INSERT INTO t VALUES (2)")
        raise ValueError("refused after writing")

    release = hold(writer)
    futures = [writer.submit(lambda conn: conn.execute("INSERT INTO t VALUES (1)").rowcount),
               writer.submit(write_then_fail),
               writer.submit(lambda conn: conn.execute("INSERT INTO t VALUES (3)").rowcount)]
    wait_pending(writer, 3)
    release.set()
    assert futures[0].result(10) == futures[2].result(10) == 1
    with pytest.raises(ValueError, match="after writing"):
        futures[1].result(10)
    assert writer.submit(lambda conn: conn.execute("SELECT x FROM t ORDER BY x").fetchall()).result(10) == [(1,), (3,)]
    writer.close()


def test_coroutines_get_their_results_and_a_request_cancelled_while_queued_is_not_run(tmp_path):
    writer = GroupCommitWriter(lambda: sqlite3.connect(tmp_path / "w.db", isolation_level=None,
                                                       check_same_thread=False))
    writer.submit(lambda conn: conn.execute("CREATE TABLE t (x INTEGER)")).result(10)

    def insert(conn, x):
        return conn.execute("INSERT INTO t VALUES (?)", (x,)).rowcount

    async def main():
        release = hold(writer)
        tasks = [asyncio.create_task(writer.run(insert, x)) for x in range(3)]
        await asyncio.sleep(0)  # each task queues its request
        wait_pending(writer, 3)
        tasks[1].cancel()  # its client went away before the batch ran
        release.set()
        return await asyncio.gather(*tasks, return_exceptions=True)

    outcomes = asyncio.run(main())
    assert outcomes[0] == outcomes[2] == 1 and isinstance(outcomes[1], asyncio.CancelledError)
    assert writer.submit(lambda conn: conn.execute("SELECT x FROM t ORDER BY x").fetchall()).result(10) == [(0,), (2,)]
    writer.close()


def test_with_a_sync_file_results_leave_only_after_the_log_is_flushed(tmp_path, monkeypatch):
    path = tmp_path / "w.db"
    events = []
    real = writer_module._datasync
    failing = threading.Event()

    def datasync(fd):
        if failing.is_set():
            raise OSError(5, "Input/output error (injected)")
        real(fd)
        events.append(("flushed", os.readlink(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else ""))

    monkeypatch.setattr(writer_module, "_datasync", datasync)

    def connect():
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # COMMIT does not flush: the sync threads do
        return conn

    writer = GroupCommitWriter(connect, sync_file=f"{path}-wal")
    writer.submit(lambda conn: conn.execute("CREATE TABLE t (x INTEGER)")).result(10)
    release = hold(writer)
    futures = [writer.submit(lambda conn, i=i: conn.execute("INSERT INTO t VALUES (?)", (i,)).rowcount)
               for i in range(4)]
    for f in futures:
        f.add_done_callback(lambda _f: events.append(("answered", writer.syncs)))
    wait_pending(writer, 4)
    events.clear()
    release.set()
    assert [f.result(10) for f in futures] == [1] * 4
    flushed = [i for i, e in enumerate(events) if e[0] == "flushed"]
    answered = [i for i, e in enumerate(events) if e[0] == "answered"]
    assert len(answered) == 4 and flushed and min(answered) > flushed[0]  # the answers came after a flush
    assert all(e[1] == os.path.realpath(f"{path}-wal") for e in events if e[0] == "flushed" and e[1])

    failing.set()  # a flush that fails: the batch's requests get the error, never a result
    futures = [writer.submit(lambda conn: conn.execute("INSERT INTO t VALUES (9)").rowcount) for _ in range(3)]
    for f in futures:
        with pytest.raises(OSError, match="injected"):
            f.result(10)
    writer.close()


def test_checkpoints_run_beside_the_writer_and_copy_the_log_into_the_database_file(tmp_path):
    path = tmp_path / "w.db"

    def connect():
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    writer = GroupCommitWriter(connect, checkpoint_every=5)
    assert writer.submit(lambda conn: conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]).result(10) == 0
    writer.submit(lambda conn: conn.execute("CREATE TABLE t (x INTEGER)")).result(10)
    for x in range(5):  # commits 3 to 7: one checkpoint is due, after the 5th commit (the third insert)
        writer.submit(lambda conn, x=x: conn.execute("INSERT INTO t VALUES (?)", (x,))).result(10)
    deadline = time.monotonic() + 10
    while writer.checkpoints < 1:
        assert time.monotonic() < deadline, "no checkpoint ran"
        time.sleep(0.01)
    copy = tmp_path / "copy.db"  # the database file alone, without its log (which SQLite would copy on close)
    copy.write_bytes(path.read_bytes())
    writer.close()
    with sqlite3.connect(copy) as alone:
        assert alone.execute("SELECT count(*) FROM t").fetchone()[0] >= 3  # what the checkpoint copied


def test_the_store_writer_runs_in_wal_and_flushes_its_log(tmp_path):
    store = file_store(tmp_path)
    writer = store.writer()
    assert writer.sync_file == str(tmp_path / "keys.db-wal")
    settings = writer.submit(lambda conn: [conn.execute(f"PRAGMA {p}").fetchone()[0]
                                           for p in ("journal_mode", "secure_delete", "foreign_keys")])
    assert settings.result(10) == ["wal", 1, 1]
    store.add_units(POOL, [os.urandom(32) for _ in range(4)])
    syncs = writer.syncs
    store.reserve(POOL, "alice", ["bob"], 1, 256)
    assert writer.syncs == syncs + 1  # reserve() returned after the flush of its commit


def test_a_crash_in_the_middle_of_a_batch_leaves_every_unit_free_or_in_one_delivery(tmp_path):
    store = file_store(tmp_path)
    store.add_units(POOL, [os.urandom(32) for _ in range(20)])
    store.close()
    child = textwrap.dedent(f"""
        import os, sys, threading, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_group_commit import POOL, SECRET, hold, wait_pending
        from qfabric.kms.store import KeyStore
        store = KeyStore(sys.argv[1], SECRET)
        first = store.reserve(POOL, "alice", ["bob"], 2, 256)  # its own batch, committed
        print(",".join(d.key_id for d in first), flush=True)
        writer = store.writer()
        release = hold(writer)
        for _ in range(4):
            threading.Thread(target=store.reserve, args=(POOL, "alice", ["bob"], 3, 256), daemon=True).start()
        wait_pending(writer, 4)
        writer.submit(lambda conn: os._exit(9))  # dies in the batch, after the four issuances ran, before COMMIT
        wait_pending(writer, 5)
        release.set()
        time.sleep(10)
    """)
    run = subprocess.run([sys.executable, "-c", child, f"sqlite:///{tmp_path / 'keys.db'}"], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 9, run.stderr
    first = run.stdout.split()[0].split(",")
    store = file_store(tmp_path)
    acc = store.accounting(POOL)
    assert acc == {"units_free": 18, "units_used": 2, "keys_delivered": 2, "claims_done": 0}
    assert {d.key_id for d in store.claim("bob", "alice", first)} == set(first)  # the committed batch survived
    assert len([e for e in store.audit_log() if e["event"] == "enc_keys"]) == 1


@pytest.mark.parametrize("group_commit", [True, False])
def test_both_paths_issue_claim_erase_and_audit_alike(tmp_path, group_commit):
    store = file_store(tmp_path, group_commit=group_commit)
    assert store.group_commit is group_commit
    store.add_units(POOL, [bytes([i]) * 32 for i in range(6)])
    keys = store.reserve(POOL, "alice", ["bob", "carol"], 2, 512)  # two units per key
    assert [len(k.material) for k in keys] == [64, 64]
    with pytest.raises(KeysNotFound):
        store.claim("bob", "alice", [keys[0].key_id, "00000000-0000-4000-8000-000000000000"])
    assert store.claim("bob", "alice", [keys[0].key_id])[0].material == keys[0].material
    assert store.material(POOL)["units_erased"] == 0  # carol has not claimed it yet
    assert store.claim("carol", "alice", [keys[0].key_id])[0].material == keys[0].material
    assert store.material(POOL) == {"units_holding_material": 4, "units_erased": 2, "units_expired": 0}
    store.record("refused", sae="mallory", detail="test")
    assert [e["event"] for e in store.audit_log()][::-1] == ["enc_keys", "dec_keys", "dec_keys", "refused"]
    assert store.accounting(POOL) == {"units_free": 2, "units_used": 4, "keys_delivered": 2, "claims_done": 2}
    store.close()


def test_group_commit_needs_a_database_file():
    assert not KeyStore("sqlite://", SECRET).group_commit
    with pytest.raises(QfabricError, match="SQLite database file"):
        KeyStore("sqlite://", SECRET, group_commit=True)
