"""Group commit: one writer thread runs many requests' transactions as one durable SQLite commit.

A durable commit waits for the disk to flush the write-ahead log (``fdatasync``: 2-8 ms on a VM's disk):
one commit per request caps a KME at a couple of hundred requests a second, whatever the CPU. The
:class:`GroupCommitWriter` owns one connection and a queue. It takes every request waiting in the queue,
runs each request's work inside its own ``SAVEPOINT`` of one ``BEGIN IMMEDIATE`` transaction, commits once
for the batch, and only once that commit is on disk hands each request its result. So:

* a request whose work raises is rolled back to its savepoint: it changes nothing, the others in the batch
  are not affected;
* no result leaves before the commit that made it durable (a failed commit fails every request of the
  batch, and nothing of it is stored);
* a crash (even ``kill -9``) before the commit loses the whole batch and answers none of it: each unit is
  free or in exactly one delivery, as with one transaction per request.

Two ways to make the commit durable:

* ``sync_file=None``: the connection runs ``synchronous=FULL``, so ``COMMIT`` itself flushes the log, and the
  next batch waits for that flush;
* ``sync_file=<the -wal file>`` (what :class:`~qfabric.kms.store.KeyStore` uses): the connection runs
  ``synchronous=NORMAL`` (``COMMIT`` writes the log without flushing it) and a pool of sync threads calls
  ``fdatasync`` on the log after each commit, answering the batch's requests only when it returns. The
  guarantee is the same as FULL's (a result leaves only after the flush of a log holding its commit; the log
  is append-only, so a later batch on disk means every earlier one is too), but the next batch runs while
  the disk flushes, and flushes overlap.

>>> import sqlite3, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "w.db")
>>> writer = GroupCommitWriter(lambda: sqlite3.connect(path, isolation_level=None, check_same_thread=False))
>>> writer.submit(lambda conn: conn.execute("CREATE TABLE t (x)") and "made").result()
'made'
>>> writer.submit(lambda conn: conn.execute("INSERT INTO t VALUES (1)").rowcount).result(), writer.commits
(1, 2)
>>> writer.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

log = logging.getLogger("qfabric.kms.writer")
_STOP = object()
_datasync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync


class GroupCommitWriter:
    """A thread that runs submitted work ``fn(conn, *args)`` in batches, one durable commit per batch.

    ``connect`` opens the writer's connection (called in the writer thread) in autocommit mode
    (``isolation_level=None``): the writer issues ``BEGIN IMMEDIATE``, savepoints and ``COMMIT`` itself.
    ``sync_file``: flush this file (the database's ``-wal``) after each commit, in one of ``sync_threads``
    threads, before answering (see the module's docstring). ``checkpoint_every``: the writer's connection
    does no checkpoints of its own (they flush twice and would stall a batch); a thread with its own connection
    runs a ``PASSIVE`` one after every that many commits. ``max_batch`` bounds the requests of one
    transaction. Counters: ``commits`` (transactions committed), ``syncs`` (flushes done after them),
    ``checkpoints``, ``largest_batch``.
    """

    def __init__(self, connect: Callable[[], sqlite3.Connection], max_batch: int = 256, name: str = "kms-writer",
                 sync_file: str | None = None, sync_threads: int = 4, checkpoint_every: int | None = None):
        self.max_batch = max_batch
        self.sync_file = sync_file
        self.checkpoint_every = checkpoint_every
        self.commits = 0
        self.syncs = 0
        self.checkpoints = 0
        self.largest_batch = 0
        self._checkpoint_due = threading.Event()
        self._closing = False
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, name=f"{name}-checkpoint", daemon=True) \
            if checkpoint_every else None
        self._sync_fd: int | None = None
        self._sync_queue: queue.SimpleQueue = queue.SimpleQueue()  # committed batches waiting for their flush
        self._syncers = [threading.Thread(target=self._sync_loop, name=f"{name}-sync-{i}", daemon=True)
                         for i in range(sync_threads if sync_file else 0)]
        self._connect = connect
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._running = True  # until the writer thread ends
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        for thread in self._syncers:
            thread.start()
        if self._checkpointer is not None:
            self._checkpointer.start()

    def submit(self, fn: Callable[..., Any], *args) -> Future:
        """Queue ``fn(conn, *args)``; the future has its result (or exception) once its batch is durable."""
        if not self._running:
            raise RuntimeError("the group-commit writer is closed")
        future: Future = Future()
        self._queue.put((fn, args, future, None))
        return future

    async def run(self, fn: Callable[..., Any], *args):
        """``submit`` for coroutines: await the result on the running loop (no thread of its pool held; the
        batch's results reach the loop in one call, not one wake-up per request)."""
        if not self._running:  # (a flag: Thread.is_alive takes a lock, a cost on every request)
            raise RuntimeError("the group-commit writer is closed")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put((fn, args, future, loop))
        return await future

    def pending(self) -> int:
        """Requests queued and not yet taken into a batch."""
        return self._queue.qsize()

    def close(self, timeout_s: float = 10.0) -> None:
        """Finish what is queued, then stop the threads and close the connection."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout_s)
        alive = [thread for thread in self._syncers if thread.is_alive()]
        for _ in alive:  # one stop each; any thread may take any of them
            self._sync_queue.put(_STOP)
        for thread in alive:
            thread.join(timeout_s)
        if self._checkpointer is not None and self._checkpointer.is_alive():
            self._closing = True
            self._checkpoint_due.set()
            self._checkpointer.join(timeout_s)
        if self._sync_fd is not None:
            os.close(self._sync_fd)
            self._sync_fd = None

    # ---- the writer thread ----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            conn = self._connect()
            if self.checkpoint_every:
                conn.execute("PRAGMA wal_autocheckpoint=0")  # the checkpoint thread copies the log into the file
        except BaseException as err:  # reported by the constructor
            self._error = err
            self._running = False
            self._ready.set()
            return
        self._ready.set()
        try:
            stopping = False
            while not stopping:
                batch = [self._queue.get()]
                while len(batch) < self.max_batch:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                if _STOP in batch:
                    stopping = True
                    batch = [item for item in batch if item is not _STOP]
                if batch:
                    self._commit_batch(conn, batch)
        finally:
            self._running = False
            conn.close()

    def _commit_batch(self, conn: sqlite3.Connection, batch: list) -> None:
        outcomes: list[tuple[Any, asyncio.AbstractEventLoop | None, Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for fn, args, future, loop in batch:
                if future.cancelled() if loop else not future.set_running_or_notify_cancel():
                    continue  # cancelled while queued (its client went away): nothing to do
                conn.execute("SAVEPOINT request")
                try:
                    result = fn(conn, *args)
                except Exception as err:  # this request only: undo its changes, keep the others'
                    conn.execute("ROLLBACK TO request")
                    conn.execute("RELEASE request")
                    outcomes.append((future, loop, None, err))
                else:
                    conn.execute("RELEASE request")
                    outcomes.append((future, loop, result, None))
            conn.execute("COMMIT")
        except BaseException as err:  # BEGIN, a savepoint or the commit failed: nothing of the batch stays
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    log.exception("rollback of a failed batch failed")
            log.error("a batch of %d requests failed and was rolled back: %s: %s", len(batch), type(err).__name__,
                      err)
            self._answer([(future, loop, None, err) for _, _, future, loop in batch])
            if not isinstance(err, Exception):
                raise
            return
        self.commits += 1
        self.largest_batch = max(self.largest_batch, len(batch))
        if self.checkpoint_every and self.commits % self.checkpoint_every == 0:
            self._checkpoint_due.set()
        if not self._syncers:  # synchronous=FULL: COMMIT has flushed the log
            self._answer(outcomes)
            return
        if self._sync_fd is None:
            self._sync_fd = os.open(self.sync_file, os.O_RDONLY)
        self._sync_queue.put(outcomes)

    def _checkpoint_loop(self) -> None:
        """The checkpoint thread: every ``checkpoint_every`` commits, copy the log into the database file
        (``PASSIVE``: beside the writer, never blocking it), so that a checkpoint's two flushes never stall a
        batch; SQLite restarts the log once a checkpoint has copied all of it."""
        conn = self._connect()
        try:
            while True:
                self._checkpoint_due.wait()
                self._checkpoint_due.clear()
                if self._closing:
                    return
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except sqlite3.Error as err:  # the next one catches up
                    log.warning("checkpoint failed: %s", err)
        finally:
            conn.close()

    def _sync_loop(self) -> None:
        """A sync thread: for each committed batch, flush the log (holding that batch's commit and every earlier
        one), then answer the batch. Several threads: flushes overlap, and the writer never waits for one."""
        while (outcomes := self._sync_queue.get()) is not _STOP:
            try:
                _datasync(self._sync_fd)
            except OSError as err:  # the commit may or may not be on disk: its keys are never handed out
                log.error("flushing %s failed (%s): %d requests refused", self.sync_file, err, len(outcomes))
                self._answer([(future, loop, None, err) for future, loop, _, _ in outcomes])
                continue
            self.syncs += 1
            self._answer(outcomes)

    @staticmethod
    def _answer(outcomes: list) -> None:
        """Settle each request's future (only now, with the commit on disk, may the results leave): those of
        an event loop in one callback per loop."""
        per_loop: dict[asyncio.AbstractEventLoop, list] = {}
        for future, loop, result, error in outcomes:
            if loop is not None:
                per_loop.setdefault(loop, []).append((future, result, error))
            elif future.running() or (not future.done() and future.set_running_or_notify_cancel()):
                if error is None:
                    future.set_result(result)
                else:
                    future.set_exception(error)
        for loop, settled in per_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits
                loop.call_soon_threadsafe(_settle, settled)


def _settle(settled: list) -> None:
    """On an event loop: set the results of its futures (those not cancelled meanwhile)."""
    for future, result, error in settled:
        if not future.done():
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)
