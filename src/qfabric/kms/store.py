"""The key store: QKD key material in a real database, encrypted at rest, moved between states in transactions.

Material arrives in fixed-size *units* per pool (a pool is the key shared by one pair of SAEs, or by
two neighbouring KMEs for relaying). A master's ``enc_keys`` request turns units into *deliveries*:
each delivery has a fresh key ID, the units it consumed, its master and slaves, and per-slave claims.
A slave's ``dec_keys`` claims deliveries by ID. Every change is one transaction, so concurrent
requests never get the same unit, a failed request changes nothing, and a crash (even ``kill -9``)
leaves each unit either available or in exactly one delivery.

Durability: SQLite runs in WAL mode, and every commit (an issuance, a claim) is flushed to disk before the
call returns; a power cut cannot bring an issued unit back as free. On a SQLite file, issuances, claims and
audit records go through a :class:`~qfabric.kms.writer.GroupCommitWriter` (group commit: many requests, each
in its own savepoint, one commit, one flush of the log before any of them returns); other connections run
``synchronous=FULL``. PostgreSQL and SQLite in memory run one transaction per request. Erasure: a
delivery's material is erased once its last slave has claimed it, units spent by a relay at once, and
(with ``key_lifetime_s``) undelivered units and unclaimed deliveries after their lifetime; what stays is the
metadata (key IDs, who, when, sizes) and the audit log. ``secure_delete`` zeroes the freed bytes in the file.
The store keeps a check value of its key-encryption key: opened with another key, it refuses (:class:`WrongKek`).

>>> store = KeyStore("sqlite://", secret=b"k" * 32)
>>> store.add_units("alice|bob", [bytes([i]) * 32 for i in range(4)])
4
>>> [d] = store.reserve("alice|bob", master="alice", slaves=["bob"], number=1, size_bits=512)
>>> len(d.material), store.available("alice|bob")
(64, 2)
>>> store.claim(slave="bob", master="alice", key_ids=[d.key_id])[0].material == d.material
True
>>> store.material("alice|bob")  # claimed by its only slave: the material is gone, the record stays
{'units_holding_material': 2, 'units_erased': 2, 'units_expired': 0}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import StaticPool

from qfabric.errors import QfabricError
from qfabric.kms.writer import GroupCommitWriter

log = logging.getLogger("qfabric.kms.store")
metadata = MetaData()
ERASED = b""  # nonce and ciphertext of a unit whose material has been erased
EXPIRED = "expired"  # the pool and master of the pseudo-delivery that takes expired free units out of their pool

units = Table(
    "key_units", metadata,
    Column("unit_id", Integer, primary_key=True, autoincrement=True),
    Column("pool", String(200), nullable=False),
    Column("nonce", LargeBinary, nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("size_bits", Integer, nullable=False),
    Column("delivery_id", String(36), ForeignKey("deliveries.key_id"), nullable=True),
    Column("created_at", Float, nullable=False),
    Index("ix_units_pool_free", "pool", "delivery_id", "unit_id"),
    Index("ix_units_delivery", "delivery_id"),
    Index("ix_units_free_age", "delivery_id", "created_at"),
)
deliveries = Table(
    "deliveries", metadata,
    Column("key_id", String(36), primary_key=True),
    Column("pool", String(200), nullable=False),
    Column("master_sae", String(200), nullable=False),
    Column("size_bits", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_deliveries_created", "created_at"),
)
claims = Table(
    "claims", metadata,
    Column("key_id", String(36), ForeignKey("deliveries.key_id"), primary_key=True),
    Column("slave_sae", String(200), primary_key=True),
    Column("claimed_at", Float, nullable=True),
)
audit = Table(
    "audit", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("event", String(50), nullable=False),
    Column("sae", String(200), nullable=True),
    Column("peer", String(200), nullable=True),
    Column("key_ids", Text, nullable=True),
    Column("detail", Text, nullable=True),
)
store_meta = Table(  # the key-encryption key's check value, the expiry watermark
    "store_meta", metadata,
    Column("name", String(100), primary_key=True),
    Column("value", LargeBinary, nullable=False),
)
supply_streams = Table(  # per simulated key stream, the next block not yet used (so a restart never replays one)
    "supply_streams", metadata,
    Column("stream", String(300), primary_key=True),
    Column("next_block", Integer, nullable=False),
)
spent_pads = Table(  # one-time pads of KME-to-KME links used by keys forwarded to this KME: never accepted twice
    "spent_pads", metadata,
    Column("link", String(200), primary_key=True),
    Column("pad_id", String(100), primary_key=True),
    Column("at", Float, nullable=False),
)
KEK_CHECK = b"qfabric key store: key-encryption key check, v1"


class KeysExhausted(QfabricError):
    """The pool holds fewer keys than asked."""


class KeysNotFound(QfabricError):
    """One or more key IDs are unknown to this KME (or already claimed by the caller)."""


class KeysNotForCaller(QfabricError):
    """The keys exist, but the caller was not named as a slave when they were issued."""


class PadReused(QfabricError):
    """A forwarded key names a one-time pad of a KME-to-KME link that was used before (a replay)."""


class WrongKek(QfabricError):
    """The key-encryption key given does not open this store's key material."""


@dataclass(frozen=True)
class Delivery:
    key_id: str
    material: bytes
    size_bits: int


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer; durable across kill -9
    # FULL: the WAL is fsync'ed at every commit, so a commit survives a power cut or an OS crash too (NORMAL
    # syncs only at checkpoints: a committed issuance could come back as free units and be issued twice)
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA secure_delete=ON")  # erased key material is overwritten in the file, not just unlinked
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _postgres_session(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("SET synchronous_commit TO on")  # whatever the server's default: a commit is flushed first
    cursor.close()
    dbapi_connection.commit()  # a SET inside a transaction that is rolled back would not stay


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///...`` URL (``None``: another database, or SQLite in memory)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:") \
            or parsed.database.startswith("file:"):
        return None
    return Path(parsed.database)


def _owner_only_sqlite_file(path: Path) -> None:
    """Create the database file readable by its owner only (SQLite gives its -wal and -shm files the same
    mode), or tighten an existing one."""
    with contextlib.suppress(FileExistsError):  # an empty file is an empty database
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            if p.stat().st_mode & 0o077:
                p.chmod(0o600)
        except FileNotFoundError:
            pass


def redacted(url: str) -> str:
    """``url`` without its password, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def _sqlite_begin_immediate(conn) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")  # take the write lock up front: no lost updates between readers


class KeyStore:
    """Key units, deliveries, claims and the audit log in one database (``sqlite:///file.db`` or a PostgreSQL URL).

    ``secret`` (32 bytes) encrypts key material at rest with AES-256-GCM; the audit log never holds material.
    ``key_lifetime_s``: free units and unclaimed deliveries older than this have their material erased (and
    leave their pool; a late ``dec_keys`` finds nothing); ``None`` keeps them until used.
    ``group_commit``: issue, claim and audit through one writer thread with group commit (default: on a SQLite
    file; ``False``: one transaction per request); :meth:`reserve_async` and :meth:`claim_async` await it
    from an event loop. Raises :class:`WrongKek` if the store holds material under another key-encryption key.
    """

    def __init__(self, url: str, secret: bytes, key_lifetime_s: float | None = None,
                 group_commit: bool | None = None):
        if len(secret) != 32:
            raise QfabricError("the key-encryption secret must be 32 bytes")
        if key_lifetime_s is not None and key_lifetime_s <= 0:
            raise QfabricError(f"key_lifetime_s = {key_lifetime_s}: expected a positive number of seconds or None")
        self.url = url
        self.key_lifetime_s = key_lifetime_s
        self.random_bytes: Callable[[int], bytes] = os.urandom  # fresh relayed keys (a QRNG's, if the caller sets it)
        self._next_expiry = 0.0
        self._aead = AESGCM(secret)
        self._unit_bits: dict[str, int] = {}
        in_memory = url in ("sqlite://", "sqlite:///:memory:")
        # an in-memory database exists per connection: share one across threads (tests, demos)
        options = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}} if in_memory else {}
        path = sqlite_path(url)
        if path is not None:
            _owner_only_sqlite_file(path)
        if group_commit and path is None:
            raise QfabricError(f"group commit needs a SQLite database file, not {redacted(url)}")
        self._path = path if group_commit is not False else None
        self._writer: GroupCommitWriter | None = None
        self._writer_lock = threading.Lock()
        self.engine: Engine = create_engine(url, future=True, **options)
        self._sqlite = self.engine.dialect.name == "sqlite"
        if self._sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin_immediate)
        elif self.engine.dialect.name == "postgresql":
            event.listen(self.engine, "connect", _postgres_session)
        metadata.create_all(self.engine)
        for table in (units, deliveries):  # indexes added since a database was created
            for index in table.indexes:
                index.create(self.engine, checkfirst=True)
        self._check_kek()
        # the hot statements, built once (building SQLAlchemy expressions costs more than running them)
        free = (select(units.c.unit_id, units.c.nonce, units.c.ciphertext)
                .where(units.c.pool == bindparam("pool"), units.c.delivery_id.is_(None))
                .order_by(units.c.unit_id).limit(bindparam("n")))
        self._q_free = free if self._sqlite else free.with_for_update(skip_locked=True)
        self._q_mark = update(units).where(units.c.unit_id == bindparam("uid")).values(delivery_id=bindparam("kid"))
        self._q_deliver = insert(deliveries)
        self._q_claims = insert(claims)
        self._q_audit = insert(audit)
        self._q_issued = (select(deliveries.c.key_id, deliveries.c.pool, deliveries.c.size_bits, claims.c.claimed_at)
                          .join(claims, claims.c.key_id == deliveries.c.key_id)
                          .where(deliveries.c.key_id.in_(bindparam("ids", expanding=True)),
                                 deliveries.c.master_sae == bindparam("master"),
                                 claims.c.slave_sae == bindparam("slave")))
        self._q_parts = (select(units.c.delivery_id, units.c.nonce, units.c.ciphertext)
                         .where(units.c.delivery_id.in_(bindparam("ids", expanding=True))).order_by(units.c.unit_id))
        self._q_claim = (update(claims).where(claims.c.key_id.in_(bindparam("ids", expanding=True)),
                                              claims.c.slave_sae == bindparam("slave"))
                         .values(claimed_at=bindparam("at")))

    # ---- the key-encryption key -------------------------------------------------------------------

    def _check_kek(self) -> None:
        """Verify the store's check value under this key (or, in a store from before check values, one unit's
        material); write the check value if there is none yet."""
        for _ in range(3):
            try:
                with self.engine.begin() as conn:
                    check = conn.execute(select(store_meta.c.value).where(store_meta.c.name == "kek_check")).scalar()
                    if check is not None:
                        try:
                            self._aead.decrypt(check[:12], check[12:], b"kek_check")
                        except InvalidTag:
                            raise WrongKek(f"the key-encryption key does not match the store {redacted(self.url)} "
                                           f"(its check value does not decrypt)") from None
                        return
                    sample = conn.execute(select(units.c.pool, units.c.nonce, units.c.ciphertext)
                                          .where(func.length(units.c.ciphertext) > 0).limit(1)).first()
                    if sample is not None:
                        try:
                            self._aead.decrypt(sample.nonce, sample.ciphertext, sample.pool.encode())
                        except InvalidTag:
                            raise WrongKek(f"the key-encryption key does not match the store {redacted(self.url)} "
                                           f"(its key material does not decrypt)") from None
                    nonce = os.urandom(12)
                    conn.execute(insert(store_meta).values(
                        name="kek_check", value=nonce + self._aead.encrypt(nonce, KEK_CHECK, b"kek_check")))
                return
            except IntegrityError:  # another process wrote it first (PostgreSQL): check that one
                continue
        raise QfabricError(f"could not write the key-encryption key check value to {redacted(self.url)}")

    @staticmethod
    def holds_keys(url: str) -> bool:
        """Whether the database at ``url`` was set up under a key-encryption key or holds key material
        (without opening it with a key, and without creating a database that does not exist)."""
        path = sqlite_path(url)
        if url in ("sqlite://", "sqlite:///:memory:") or (path is not None and not path.exists()):
            return False
        engine = create_engine(url, future=True)
        try:
            names = set(inspect(engine).get_table_names())
            with engine.connect() as conn:
                if "store_meta" in names and conn.execute(
                        select(store_meta.c.name).where(store_meta.c.name == "kek_check")).first():
                    return True
                return "key_units" in names and conn.execute(
                    select(units.c.unit_id).where(func.length(units.c.ciphertext) > 0).limit(1)).first() is not None
        finally:
            engine.dispose()

    def _decrypt(self, pool: str, nonce: bytes, ciphertext: bytes) -> bytes:
        try:
            return self._aead.decrypt(nonce, ciphertext, pool.encode())
        except InvalidTag:
            log.error("a unit of pool %r does not decrypt under the key-encryption key (store %s)", pool,
                      redacted(self.url))
            raise

    # ---- simulated supply streams ---------------------------------------------------------------

    def take_block(self, stream: str) -> int:
        """The next block number of a seeded key stream, taken (and committed) before the block's key is used,
        so that a restart on this database continues the stream instead of replaying it (0, 1, 2, ...)."""
        for _ in range(3):
            try:
                with self.engine.begin() as conn:
                    taken = conn.execute(select(supply_streams.c.next_block)
                                         .where(supply_streams.c.stream == stream).with_for_update()).scalar()
                    if taken is None:
                        conn.execute(insert(supply_streams).values(stream=stream, next_block=1))
                        return 0
                    conn.execute(update(supply_streams).where(supply_streams.c.stream == stream)
                                 .values(next_block=taken + 1))
                    return taken
            except IntegrityError:  # a concurrent first take (PostgreSQL): take again
                continue
        raise QfabricError(f"could not take a block of stream {stream!r}")

    # ---- writing ------------------------------------------------------------------------------

    def _unit_row(self, pool: str, material: bytes, now: float) -> dict:
        """A free unit, its material encrypted under the store secret with the pool name as associated data."""
        nonce = os.urandom(12)
        return {"pool": pool, "nonce": nonce, "ciphertext": self._aead.encrypt(nonce, material, pool.encode()),
                "size_bits": 8 * len(material), "delivery_id": None, "created_at": now}

    def add_units(self, pool: str, materials: Iterable[bytes]) -> int:
        """Append key units (each the same size) to ``pool``; returns how many were added."""
        now = time.time()
        rows = [self._unit_row(pool, m, now) for m in materials]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(insert(units), rows)
        self._maybe_expire()
        return len(rows)

    def add_link_units(self, pool_a: str, pool_b: str, pairs: Sequence[tuple[bytes, bytes]]) -> int:
        """Both ends' copies of a link's keys, ``pairs[i] = (copy at a, copy at b)``, into their two pools in one
        transaction: the pools stay paired unit by unit whatever happens (a relay pairs them in order)."""
        now = time.time()
        rows = [self._unit_row(pool, m, now) for pool, k in ((pool_a, 0), (pool_b, 1)) for m in (p[k] for p in pairs)]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(insert(units), rows)
        self._maybe_expire()
        return len(pairs)

    # ---- keys forwarded between KMEs (:mod:`qfabric.kms.interkme`) ------------------------------------

    def take_units(self, pool: str, count: int, event_name: str, peer: str | None = None) -> list[bytes]:
        """Spend ``count`` free units of ``pool`` now (their material returned, erased in the store, audited as
        ``event_name``): keys relayed on, whatever happens next, are never used again.
        :class:`KeysExhausted` (nothing spent) if the pool holds fewer."""
        with self.engine.begin() as conn:
            rows = conn.execute(self._q_free, {"pool": pool, "n": count}).all()
            if len(rows) < count:
                raise KeysExhausted(f"pool {pool!r} holds {len(rows)} keys, {count} needed")
            material = [self._decrypt(pool, r.nonce, r.ciphertext) for r in rows]
            self._spend(conn, [r.unit_id for r in rows], pool, event_name, peer, {"units": count})
        return material

    def _spend(self, conn, unit_ids: list[int], pool: str, event_name: str, peer: str | None, detail: dict) -> None:
        """Take units out of their pool and erase them (one pseudo-delivery ``event_name`` holds them), audited."""
        if not unit_ids:
            return
        now, spend_id = time.time(), str(uuid.uuid4())
        conn.execute(insert(deliveries).values(key_id=spend_id, pool=event_name, master_sae=event_name, size_bits=0,
                                               created_at=now))
        conn.execute(update(units).where(units.c.unit_id.in_(unit_ids))
                     .values(delivery_id=spend_id, nonce=ERASED, ciphertext=ERASED))
        conn.execute(insert(audit).values(at=now, event=event_name, sae=None, peer=peer, key_ids=json.dumps([spend_id]),
                                          detail=json.dumps({"pool": pool, **detail})))

    def receive_forwarded(self, *, sender: str, link: str, pad_ids: Sequence[str], relays: Sequence[tuple[str, int]],
                          master: str, slaves: Sequence[str], keys: Sequence[tuple[str, bytes]], size_bits: int,
                          deliver: bool) -> None:
        """Accept keys a neighbour KME forwarded, all or nothing: mark the link's one-time pads spent
        (:class:`PadReused` if one was used before), spend the units ``relays`` name (``(pool, count)``: the relay
        on to each slave's node, or to the next KME's link), and if ``deliver`` (the slaves are this KME's) record
        each key under its ID for ``slaves`` to claim, as a master's ``enc_keys`` would."""
        now = time.time()
        with self.engine.begin() as conn:
            try:
                with conn.begin_nested():
                    conn.execute(insert(spent_pads), [{"link": link, "pad_id": p, "at": now} for p in pad_ids])
            except IntegrityError:
                raise PadReused(f"a one-time pad of link {link!r} named by {sender!r} was used before") from None
            for relay_pool, relay_units in relays:
                rows = conn.execute(self._q_free, {"pool": relay_pool, "n": relay_units}).all()
                if len(rows) < relay_units:
                    raise KeysExhausted(f"pool {relay_pool!r} holds {len(rows)} keys, {relay_units} needed")
                self._spend(conn, [r.unit_id for r in rows], relay_pool, "relay_forwarded", sender,
                            {"units": relay_units})
            if deliver:
                try:
                    self._deliver_given(conn, master, slaves, keys, size_bits, now)
                except IntegrityError:
                    raise QfabricError("a forwarded key ID is already in use") from None
            conn.execute(insert(audit).values(
                at=now, event="forward_in" if deliver else "forward_transit", sae=master, peer=",".join(slaves),
                key_ids=json.dumps([k for k, _ in keys]),
                detail=json.dumps({"from_kme": sender, "link": link, "pads": len(pad_ids)})))

    def record_forwarded(self, master: str, slaves: Sequence[str], key_ids: Sequence[str], size_bits: int,
                         to_kme: str, link: str) -> None:
        """At the master's KME, once the next KME has accepted them: the keys handed to ``master`` for slaves of
        another KME (their IDs, who and when; no material: this KME hands them to no one else)."""
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(self._q_deliver, [{"key_id": k, "pool": "forwarded", "master_sae": master,
                                            "size_bits": size_bits, "created_at": now} for k in key_ids])
            conn.execute(insert(audit).values(at=now, event="forward_out", sae=master, peer=",".join(slaves),
                                              key_ids=json.dumps(list(key_ids)),
                                              detail=json.dumps({"to_kme": to_kme, "link": link})))

    def _deliver_given(self, conn, master: str, slaves: Sequence[str], keys: Sequence[tuple[str, bytes]],
                       size_bits: int, now: float) -> None:
        pool = "forwarded"
        conn.execute(self._q_deliver, [{"key_id": k, "pool": pool, "master_sae": master, "size_bits": size_bits,
                                        "created_at": now} for k, _ in keys])
        conn.execute(insert(units), [self._unit_row(pool, m, now) | {"delivery_id": k} for k, m in keys])
        conn.execute(self._q_claims, [{"key_id": k, "slave_sae": s, "claimed_at": None} for k, _ in keys
                                      for s in slaves])

    # ---- group commit (a SQLite file): one writer thread, one durable commit per batch of requests -------

    @property
    def group_commit(self) -> bool:
        """Whether issuances, claims and audit records go through one :class:`GroupCommitWriter` (a SQLite file,
        unless ``group_commit=False``); otherwise each is its own transaction (PostgreSQL, SQLite in memory)."""
        return self._path is not None

    def writer(self) -> GroupCommitWriter | None:
        """The group-commit writer (started on first use), or ``None`` without group commit."""
        if self._path is None:
            return None
        if self._writer is None:
            with self._writer_lock:
                if self._writer is None:
                    path = str(self._path)

                    def connect() -> sqlite3.Connection:
                        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
                        _sqlite_pragmas(conn, None)  # WAL, secure_delete, foreign keys: as every connection
                        # COMMIT writes the log, the writer's sync threads flush it before any result leaves
                        # (the guarantee of FULL, without holding the write lock during the flush)
                        conn.execute("PRAGMA synchronous=NORMAL")
                        return conn

                    self._writer = GroupCommitWriter(connect, name=f"kms-writer:{self._path.name}",
                                                     sync_file=path + "-wal", checkpoint_every=100)
                    weakref.finalize(self, self._writer.close)
        return self._writer

    def close(self) -> None:
        """Stop the writer (after what is queued) and close the database connections."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.engine.dispose()

    async def reserve_async(self, pool: str, master: str, slaves: Sequence[str], number: int,
                            size_bits: int) -> list[Delivery]:
        """:meth:`reserve` for an event loop: awaits its batch's commit (or runs in a worker thread)."""
        writer = self.writer()
        if writer is None:
            return await asyncio.to_thread(self.reserve, pool, master, slaves, number, size_bits)
        out = await writer.run(self._reserve_sqlite, pool, master, list(slaves), number, size_bits)
        await self._expire_if_due()
        return out

    async def claim_async(self, slave: str, master: str, key_ids: Sequence[str]) -> list[Delivery]:
        """:meth:`claim` for an event loop: awaits its batch's commit (or runs in a worker thread)."""
        writer = self.writer()
        if writer is None:
            return await asyncio.to_thread(self.claim, slave, master, key_ids)
        out = await writer.run(self._claim_sqlite, slave, master, list(key_ids))
        await self._expire_if_due()
        return out

    async def _expire_if_due(self) -> None:
        if self.key_lifetime_s is not None and time.monotonic() >= self._next_expiry:
            await asyncio.to_thread(self._maybe_expire)

    def _reserve_sqlite(self, conn: sqlite3.Connection, pool: str, master: str, slaves: list[str], number: int,
                        size_bits: int) -> list[Delivery]:
        """:meth:`reserve` as SQL on the writer's connection (inside its batch's transaction)."""
        unit_bits = self._unit_bits.get(pool)
        if unit_bits is None:
            unit_bits = conn.execute("SELECT size_bits FROM key_units WHERE pool = ? LIMIT 1", (pool,)).fetchone()
            if unit_bits is None:
                raise KeysExhausted(f"no keys in pool {pool!r}")
            unit_bits = self._unit_bits.setdefault(pool, unit_bits[0])
        per_key = -(-size_bits // unit_bits)
        rows = conn.execute("SELECT unit_id, nonce, ciphertext FROM key_units WHERE pool = ? AND delivery_id IS NULL "
                            "ORDER BY unit_id LIMIT ?", (pool, number * per_key)).fetchall()
        if len(rows) < number * per_key:
            raise KeysExhausted(f"pool {pool!r} has {len(rows) // per_key} keys of {size_bits} bits, {number} asked")
        now = time.time()
        out, marks = [], []
        for k in range(number):
            chunk = rows[k * per_key : (k + 1) * per_key]
            key_id = str(uuid.uuid4())
            material = b"".join(self._decrypt(pool, nonce, ciphertext) for _, nonce, ciphertext in chunk)
            marks += [(key_id, unit_id) for unit_id, _, _ in chunk]
            out.append(Delivery(key_id, material[: size_bits // 8], size_bits))
        conn.executemany("INSERT INTO deliveries (key_id, pool, master_sae, size_bits, created_at) "
                         "VALUES (?, ?, ?, ?, ?)", [(d.key_id, pool, master, size_bits, now) for d in out])
        conn.executemany("UPDATE key_units SET delivery_id = ? WHERE unit_id = ?", marks)
        conn.executemany("INSERT INTO claims (key_id, slave_sae, claimed_at) VALUES (?, ?, NULL)",
                         [(d.key_id, s) for d in out for s in slaves])
        conn.execute("INSERT INTO audit (at, event, sae, peer, key_ids, detail) VALUES (?, 'enc_keys', ?, ?, ?, ?)",
                     (now, master, ",".join(slaves), json.dumps([d.key_id for d in out]), pool))
        if not slaves:  # nobody left to claim it: the master's copy is the only one
            self._erase_sqlite(conn, [d.key_id for d in out])
        return out

    def _claim_sqlite(self, conn: sqlite3.Connection, slave: str, master: str, key_ids: list[str]) -> list[Delivery]:
        """:meth:`claim` as SQL on the writer's connection (inside its batch's transaction)."""
        ids = ", ".join("?" * len(key_ids))
        rows = conn.execute("SELECT d.key_id, d.pool, d.size_bits, c.claimed_at FROM deliveries d "
                            f"JOIN claims c ON c.key_id = d.key_id WHERE d.key_id IN ({ids}) "
                            "AND d.master_sae = ? AND c.slave_sae = ?", (*key_ids, master, slave)).fetchall()
        found = {r[0]: r for r in rows if r[3] is None}
        missing = [k for k in key_ids if k not in found]
        if missing:
            issued = {r[0] for r in rows}
            others = [k for k in missing if k not in issued]
            foreign = [r[0] for r in conn.execute(
                f"SELECT key_id FROM deliveries WHERE key_id IN ({', '.join('?' * len(others))}) AND master_sae = ?",
                (*others, master))] if others else []
            if foreign:
                raise KeysNotForCaller(foreign)
            raise KeysNotFound(missing)
        parts: dict[str, list] = {k: [] for k in key_ids}
        for delivery_id, nonce, ciphertext in conn.execute(
                f"SELECT delivery_id, nonce, ciphertext FROM key_units WHERE delivery_id IN ({ids}) ORDER BY unit_id",
                key_ids):
            parts[delivery_id].append((nonce, ciphertext))
        expired = [k for k in key_ids if any(ciphertext == ERASED for _, ciphertext in parts[k])]
        if expired:  # its lifetime is over: the material is gone
            raise KeysNotFound(expired)
        now = time.time()
        out = []
        for key_id in key_ids:
            _, pool, size_bits, _ = found[key_id]
            material = b"".join(self._decrypt(pool, nonce, ciphertext) for nonce, ciphertext in parts[key_id])
            out.append(Delivery(key_id, material[: size_bits // 8], size_bits))
        conn.execute(f"UPDATE claims SET claimed_at = ? WHERE key_id IN ({ids}) AND slave_sae = ?",
                     (now, *key_ids, slave))
        conn.execute("INSERT INTO audit (at, event, sae, peer, key_ids, detail) VALUES (?, 'dec_keys', ?, ?, ?, NULL)",
                     (now, slave, master, json.dumps(key_ids)))
        done = [r[0] for r in conn.execute(
            f"SELECT key_id FROM claims WHERE key_id IN ({ids}) GROUP BY key_id "
            "HAVING count(claimed_at) = count(*)", key_ids)]
        self._erase_sqlite(conn, done)  # the last slave has its copy: nobody needs the material any more
        return out

    @staticmethod
    def _erase_sqlite(conn: sqlite3.Connection, key_ids: Sequence[str]) -> None:
        if key_ids:
            conn.execute(f"UPDATE key_units SET nonce = ?, ciphertext = ? WHERE delivery_id IN "
                         f"({', '.join('?' * len(key_ids))})", (ERASED, ERASED, *key_ids))

    @staticmethod
    def _record_sqlite(conn: sqlite3.Connection, row: tuple) -> None:
        conn.execute("INSERT INTO audit (at, event, sae, peer, key_ids, detail) VALUES (?, ?, ?, ?, ?, ?)", row)

    # ---- issuing and claiming -------------------------------------------------------------------

    def reserve(self, pool: str, master: str, slaves: Sequence[str], number: int, size_bits: int) -> list[Delivery]:
        """Turn free units into ``number`` keys of ``size_bits`` for ``master`` and ``slaves``, atomically.

        Raises :class:`KeysExhausted` (and changes nothing) if the pool cannot cover the request.
        """
        writer = self.writer()
        if writer is not None:
            out = writer.submit(self._reserve_sqlite, pool, master, list(slaves), number, size_bits).result()
            self._maybe_expire()
            return out
        unit_bits = self.unit_bits(pool)
        if unit_bits is None:
            raise KeysExhausted(f"no keys in pool {pool!r}")
        per_key = -(-size_bits // unit_bits)
        with self.engine.begin() as conn:
            rows = conn.execute(self._q_free, {"pool": pool, "n": number * per_key}).all()
            if len(rows) < number * per_key:
                raise KeysExhausted(f"pool {pool!r} has {len(rows) // per_key} keys of {size_bits} bits, "
                                    f"{number} asked")
            now = time.time()
            out, unit_rows = [], []
            for k in range(number):
                chunk = rows[k * per_key : (k + 1) * per_key]
                key_id = str(uuid.uuid4())
                material = b"".join(self._decrypt(pool, r.nonce, r.ciphertext) for r in chunk)
                unit_rows += [{"uid": r.unit_id, "kid": key_id} for r in chunk]
                out.append(Delivery(key_id, material[: size_bits // 8], size_bits))
            conn.execute(self._q_deliver, [{"key_id": d.key_id, "pool": pool, "master_sae": master,
                                            "size_bits": size_bits, "created_at": now} for d in out])
            conn.execute(self._q_mark, unit_rows)
            conn.execute(self._q_claims, [{"key_id": d.key_id, "slave_sae": s, "claimed_at": None}
                                          for d in out for s in slaves])
            conn.execute(self._q_audit, {"at": now, "event": "enc_keys", "sae": master, "peer": ",".join(slaves),
                                         "key_ids": json.dumps([d.key_id for d in out]), "detail": pool})
            if not slaves:  # nobody left to claim it: the master's copy is the only one
                self._erase(conn, [d.key_id for d in out])
        self._maybe_expire()
        return out

    def claim(self, slave: str, master: str, key_ids: Sequence[str]) -> list[Delivery]:
        """Hand the keys ``key_ids`` to ``slave``, each once, all or none (:class:`KeysNotFound` otherwise)."""
        writer = self.writer()
        if writer is not None:
            out = writer.submit(self._claim_sqlite, slave, master, list(key_ids)).result()
            self._maybe_expire()
            return out
        with self.engine.begin() as conn:
            rows = conn.execute(self._q_issued, {"ids": list(key_ids), "master": master, "slave": slave}).all()
            found = {r.key_id: r for r in rows if r.claimed_at is None}
            missing = [k for k in key_ids if k not in found]
            if missing:
                issued = {r.key_id for r in rows}
                foreign = conn.execute(select(deliveries.c.key_id).where(
                    deliveries.c.key_id.in_([k for k in missing if k not in issued]),
                    deliveries.c.master_sae == master)).scalars().all()
                if foreign:
                    raise KeysNotForCaller(foreign)
                raise KeysNotFound(missing)
            now = time.time()
            parts: dict[str, list] = {k: [] for k in key_ids}
            for p in conn.execute(self._q_parts, {"ids": list(key_ids)}):
                parts[p.delivery_id].append(p)
            expired = [k for k in key_ids if any(p.ciphertext == ERASED for p in parts[k])]
            if expired:  # its lifetime is over: the material is gone
                raise KeysNotFound(expired)
            out = []
            for key_id in key_ids:
                r = found[key_id]
                material = b"".join(self._decrypt(r.pool, p.nonce, p.ciphertext) for p in parts[key_id])
                out.append(Delivery(key_id, material[: r.size_bits // 8], r.size_bits))
            conn.execute(self._q_claim, {"ids": list(key_ids), "slave": slave, "at": now})
            conn.execute(self._q_audit, {"at": now, "event": "dec_keys", "sae": slave, "peer": master,
                                         "key_ids": json.dumps(list(key_ids)), "detail": None})
            done = conn.execute(select(claims.c.key_id).where(claims.c.key_id.in_(list(key_ids)))
                                .group_by(claims.c.key_id)
                                .having(func.count(claims.c.claimed_at) == func.count())).scalars().all()
            self._erase(conn, done)  # the last slave has its copy: nobody needs the material any more
        self._maybe_expire()
        return out

    def _erase(self, conn, key_ids: Sequence[str]) -> None:
        """Erase the material of the units of deliveries ``key_ids`` (their rows, sizes and owners stay)."""
        if key_ids:
            conn.execute(update(units).where(units.c.delivery_id.in_(list(key_ids)))
                         .values(nonce=ERASED, ciphertext=ERASED))

    def _maybe_expire(self) -> None:
        if self.key_lifetime_s is not None and time.monotonic() >= self._next_expiry:
            self._next_expiry = time.monotonic() + min(60.0, self.key_lifetime_s / 10)
            self.expire()

    def expire(self, now: float | None = None) -> dict[str, int]:
        """Erase the material of free units and of deliveries older than ``key_lifetime_s`` (expired free units
        leave their pool, held by one ``expired`` pseudo-delivery per sweep); returns how many of each.

        Runs by itself at most every ``min(60 s, lifetime / 10)`` after writes; call it to sweep now."""
        if self.key_lifetime_s is None:
            return {"units": 0, "deliveries": 0}
        now = time.time() if now is None else now
        cutoff = now - self.key_lifetime_s
        with self.engine.begin() as conn:
            free_old = (units.c.delivery_id.is_(None), units.c.created_at < cutoff)
            per_pool = {pool: n for pool, n in conn.execute(
                select(units.c.pool, func.count()).where(*free_old).group_by(units.c.pool))}
            stale = sum(per_pool.values())
            if stale:
                sweep = str(uuid.uuid4())
                conn.execute(insert(deliveries).values(key_id=sweep, pool=EXPIRED, master_sae=EXPIRED, size_bits=0,
                                                       created_at=now))
                conn.execute(update(units).where(*free_old).values(delivery_id=sweep, nonce=ERASED, ciphertext=ERASED))
                conn.execute(insert(audit).values(at=now, event="expired_units", sae=None, peer=None,
                                                  key_ids=json.dumps([sweep]), detail=json.dumps(per_pool)))
            mark = conn.execute(select(store_meta.c.value).where(store_meta.c.name == "expired_through")).scalar()
            since = float(mark.decode()) if mark is not None else 0.0
            expired: list[str] = []
            if cutoff > since:  # deliveries made in [since, cutoff) have outlived their lifetime since the last sweep
                window = select(deliveries.c.key_id).where(deliveries.c.created_at >= since,
                                                           deliveries.c.created_at < cutoff,
                                                           deliveries.c.pool != EXPIRED)
                held = (units.c.delivery_id.in_(window), func.length(units.c.ciphertext) > 0)
                expired = list(conn.execute(select(units.c.delivery_id).distinct().where(*held)).scalars())
                if expired:
                    conn.execute(update(units).where(*held).values(nonce=ERASED, ciphertext=ERASED))
                    conn.execute(insert(audit).values(at=now, event="expired_keys", sae=None, peer=None,
                                                      key_ids=json.dumps(expired), detail=None))
                value = repr(cutoff).encode()
                if mark is None:
                    conn.execute(insert(store_meta).values(name="expired_through", value=value))
                else:
                    conn.execute(update(store_meta).where(store_meta.c.name == "expired_through").values(value=value))
        if stale or expired:
            log.info("erased the material of %d expired free units and %d unclaimed keys", stale, len(expired))
        return {"units": stale, "deliveries": len(expired)}

    def relay(self, hops: Sequence[tuple[str, str]], target: str, count: int) -> dict:
        """Carry ``count`` fresh end-to-end keys across trusted nodes into pool ``target``, all or nothing.

        ``hops[i]`` names the pools holding hop i's key at its two ends (each end's own copy, from the
        QKD link's Alice and Bob). For every key the source draws ``K``, sends ``K xor k_0`` over hop 0;
        node i+1 recovers ``K`` with its copy of ``k_i`` and sends ``K xor k_(i+1)`` on. Each hop spends
        exactly the key's length. If any hop lacks key, or the two ends disagree, nothing changes.
        """
        if count < 1 or not hops:
            raise QfabricError("relay needs at least one hop and one key")
        with self.engine.begin() as conn:
            copies: list[tuple[list, list]] = []
            unit_bits = None
            for left_pool, right_pool in hops:
                sides = []
                for pool in (left_pool, right_pool):
                    rows = conn.execute(select(units.c.unit_id, units.c.nonce, units.c.ciphertext, units.c.size_bits)
                                        .where(units.c.pool == pool, units.c.delivery_id.is_(None))
                                        .order_by(units.c.unit_id).limit(count)).all()
                    if len(rows) < count:
                        raise KeysExhausted(f"hop pool {pool!r} holds {len(rows)} keys, {count} needed")
                    bits = {r.size_bits for r in rows}
                    if unit_bits is None:
                        unit_bits = bits.pop()
                    if bits and bits != {unit_bits}:
                        raise QfabricError("relay hops must hold keys of one size")
                    sides.append(rows)
                copies.append((sides[0], sides[1]))

            def plain(pool: str, row) -> int:
                return int.from_bytes(self._decrypt(pool, row.nonce, row.ciphertext))

            keys = []
            for j in range(count):
                source_key = self.random_bytes(unit_bits // 8)
                carried = int.from_bytes(source_key)
                for (left_pool, right_pool), (left_rows, right_rows) in zip(hops, copies, strict=True):
                    ciphertext = carried ^ plain(left_pool, left_rows[j])  # sent over hop i
                    carried = ciphertext ^ plain(right_pool, right_rows[j])  # decrypted at node i+1
                if carried.to_bytes(unit_bits // 8) != source_key:
                    raise QfabricError("relay: the two copies of a hop key differ; nothing was consumed")
                keys.append(source_key)
            relay_id = str(uuid.uuid4())
            now = time.time()
            conn.execute(insert(deliveries).values(key_id=relay_id, pool="relay", master_sae="relay",
                                                   size_bits=unit_bits, created_at=now))
            spent = [r.unit_id for left_rows, right_rows in copies for r in (*left_rows, *right_rows)]
            conn.execute(update(units).where(units.c.unit_id.in_(spent))  # one-time pads, used: erased
                         .values(delivery_id=relay_id, nonce=ERASED, ciphertext=ERASED))
            conn.execute(insert(units), [self._unit_row(target, k, now) for k in keys])
            conn.execute(insert(audit).values(at=now, event="relay", sae=None, peer=target, key_ids=None,
                                              detail=json.dumps({"hops": [list(h) for h in hops], "keys": count})))
        return {"keys": count, "bits_per_hop": count * unit_bits, "relay_id": relay_id}

    def record(self, event_name: str, sae: str | None = None, peer: str | None = None, detail: str | None = None,
               key_ids: Sequence[str] | None = None) -> None:
        """Append an audit event (fallbacks, refusals): who, which key IDs, why; never key material."""
        writer = self.writer()
        if writer is not None:  # in the writer's next batch, rather than a transaction that waits for its lock
            writer.submit(self._record_sqlite, (time.time(), event_name, sae, peer,
                                                json.dumps(list(key_ids)) if key_ids else None, detail)).result()
            return
        with self.engine.begin() as conn:
            conn.execute(insert(audit).values(at=time.time(), event=event_name, sae=sae, peer=peer,
                                              key_ids=json.dumps(list(key_ids)) if key_ids else None, detail=detail))

    # ---- reading ------------------------------------------------------------------------------

    def available(self, pool: str, size_bits: int | None = None) -> int:
        """Free keys in ``pool`` (of ``size_bits``; default one unit each)."""
        with self.engine.connect() as conn:
            free, unit_bits = conn.execute(
                select(func.count(), func.max(units.c.size_bits))
                .where(units.c.pool == pool, units.c.delivery_id.is_(None))).one()
        if not free:
            return 0
        return free if size_bits is None else free // -(-size_bits // unit_bits)

    def unit_bits(self, pool: str) -> int | None:
        """The unit size of ``pool`` (fixed once the pool has keys; remembered)."""
        bits = self._unit_bits.get(pool)
        if bits is None:
            with self.engine.connect() as conn:
                bits = conn.execute(select(units.c.size_bits).where(units.c.pool == pool).limit(1)).scalar()
            if bits is not None:
                self._unit_bits[pool] = bits
        return bits

    def accounting(self, pool: str) -> dict[str, int]:
        """Units free and used, deliveries, and claims outstanding/done: what conservation checks read."""
        with self.engine.connect() as conn:
            free = conn.execute(select(func.count()).where(units.c.pool == pool,
                                                           units.c.delivery_id.is_(None))).scalar()
            used = conn.execute(select(func.count()).where(units.c.pool == pool,
                                                           units.c.delivery_id.is_not(None))).scalar()
            delivered = conn.execute(select(func.count()).select_from(deliveries)
                                     .where(deliveries.c.pool == pool)).scalar()
            claimed = conn.execute(select(func.count()).select_from(claims.join(deliveries))
                                   .where(deliveries.c.pool == pool, claims.c.claimed_at.is_not(None))).scalar()
        return {"units_free": free, "units_used": used, "keys_delivered": delivered, "claims_done": claimed}

    def material(self, pool: str) -> dict[str, int]:
        """Units of ``pool`` whose material is still held, erased (claimed, relayed or expired), and expired."""
        with self.engine.connect() as conn:
            held = conn.execute(select(func.count()).where(units.c.pool == pool,
                                                           func.length(units.c.ciphertext) > 0)).scalar()
            erased = conn.execute(select(func.count()).where(units.c.pool == pool,
                                                             func.length(units.c.ciphertext) == 0)).scalar()
            expired = conn.execute(select(func.count()).select_from(units.join(deliveries))
                                   .where(units.c.pool == pool, deliveries.c.pool == EXPIRED)).scalar()
        return {"units_holding_material": held, "units_erased": erased, "units_expired": expired}

    def claims_of(self, key_ids: Sequence[str]) -> dict[str, dict[str, float | None]]:
        """Per key ID, each named slave and when it claimed the key (``None``: not yet)."""
        out: dict[str, dict[str, float | None]] = {k: {} for k in key_ids}
        with self.engine.connect() as conn:
            for r in conn.execute(select(claims.c.key_id, claims.c.slave_sae, claims.c.claimed_at)
                                  .where(claims.c.key_id.in_(list(key_ids)))):
                out[r.key_id][r.slave_sae] = r.claimed_at
        return out

    def audit_log(self, limit: int = 1000) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(audit).order_by(audit.c.seq.desc()).limit(limit)).all()
        return [dict(r._mapping) for r in rows]
