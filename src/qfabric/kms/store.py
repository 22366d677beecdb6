"""The key store: QKD key material in a real database, encrypted at rest, moved between states in transactions.

Material arrives in fixed-size *units* per pool (a pool is the key shared by one pair of SAEs, or by
two neighbouring KMEs for relaying). A master's ``enc_keys`` request turns units into *deliveries*:
each delivery has a fresh key ID, the units it consumed, its master and slaves, and per-slave claims.
A slave's ``dec_keys`` claims deliveries by ID. Every change is one transaction, so concurrent
requests never get the same unit, a failed request changes nothing, and a crash (even ``kill -9``)
leaves each unit either available or in exactly one delivery.

>>> store = KeyStore("sqlite://", secret=b"k" * 32)
>>> store.add_units("alice|bob", [bytes([i]) * 32 for i in range(4)])
4
>>> [d] = store.reserve("alice|bob", master="alice", slaves=["bob"], number=1, size_bits=512)
>>> len(d.material), store.available("alice|bob")
(64, 2)
>>> store.claim(slave="bob", master="alice", key_ids=[d.key_id])[0].material == d.material
True
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool

from qfabric.errors import QfabricError

metadata = MetaData()

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
)
deliveries = Table(
    "deliveries", metadata,
    Column("key_id", String(36), primary_key=True),
    Column("pool", String(200), nullable=False),
    Column("master_sae", String(200), nullable=False),
    Column("size_bits", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
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


class KeysExhausted(QfabricError):
    """The pool holds fewer keys than asked."""


class KeysNotFound(QfabricError):
    """One or more key IDs are unknown to this KME (or already claimed by the caller)."""


class KeysNotForCaller(QfabricError):
    """The keys exist, but the caller was not named as a slave when they were issued."""


@dataclass(frozen=True)
class Delivery:
    key_id: str
    material: bytes
    size_bits: int


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer; durable across kill -9
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _sqlite_begin_immediate(conn) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")  # take the write lock up front: no lost updates between readers


class KeyStore:
    """Key units, deliveries, claims and the audit log in one database (``sqlite:///file.db`` or a PostgreSQL URL).

    ``secret`` (32 bytes) encrypts key material at rest with AES-256-GCM; the audit log never holds material.
    """

    def __init__(self, url: str, secret: bytes):
        if len(secret) != 32:
            raise QfabricError("the key-encryption secret must be 32 bytes")
        self.url = url
        self._aead = AESGCM(secret)
        self._unit_bits: dict[str, int] = {}
        in_memory = url in ("sqlite://", "sqlite:///:memory:")
        # an in-memory database exists per connection: share one across threads (tests, demos)
        options = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}} if in_memory else {}
        self.engine: Engine = create_engine(url, future=True, **options)
        self._sqlite = self.engine.dialect.name == "sqlite"
        if self._sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin_immediate)
        metadata.create_all(self.engine)
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
        return len(rows)

    def reserve(self, pool: str, master: str, slaves: Sequence[str], number: int, size_bits: int) -> list[Delivery]:
        """Turn free units into ``number`` keys of ``size_bits`` for ``master`` and ``slaves``, atomically.

        Raises :class:`KeysExhausted` (and changes nothing) if the pool cannot cover the request.
        """
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
                material = b"".join(self._aead.decrypt(r.nonce, r.ciphertext, pool.encode()) for r in chunk)
                unit_rows += [{"uid": r.unit_id, "kid": key_id} for r in chunk]
                out.append(Delivery(key_id, material[: size_bits // 8], size_bits))
            conn.execute(self._q_deliver, [{"key_id": d.key_id, "pool": pool, "master_sae": master,
                                            "size_bits": size_bits, "created_at": now} for d in out])
            conn.execute(self._q_mark, unit_rows)
            conn.execute(self._q_claims, [{"key_id": d.key_id, "slave_sae": s, "claimed_at": None}
                                          for d in out for s in slaves])
            conn.execute(self._q_audit, {"at": now, "event": "enc_keys", "sae": master, "peer": ",".join(slaves),
                                         "key_ids": json.dumps([d.key_id for d in out]), "detail": pool})
            return out

    def claim(self, slave: str, master: str, key_ids: Sequence[str]) -> list[Delivery]:
        """Hand the keys ``key_ids`` to ``slave``, each once, all or none (:class:`KeysNotFound` otherwise)."""
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
            out = []
            for key_id in key_ids:
                r = found[key_id]
                material = b"".join(self._aead.decrypt(p.nonce, p.ciphertext, r.pool.encode()) for p in parts[key_id])
                out.append(Delivery(key_id, material[: r.size_bits // 8], r.size_bits))
            conn.execute(self._q_claim, {"ids": list(key_ids), "slave": slave, "at": now})
            conn.execute(self._q_audit, {"at": now, "event": "dec_keys", "sae": slave, "peer": master,
                                         "key_ids": json.dumps(list(key_ids)), "detail": None})
            return out

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
                return int.from_bytes(self._aead.decrypt(row.nonce, row.ciphertext, pool.encode()))

            keys = []
            for j in range(count):
                source_key = os.urandom(unit_bits // 8)
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
            conn.execute(update(units).where(units.c.unit_id.in_(spent)).values(delivery_id=relay_id))
            conn.execute(insert(units), [self._unit_row(target, k, now) for k in keys])
            conn.execute(insert(audit).values(at=now, event="relay", sae=None, peer=target, key_ids=None,
                                              detail=json.dumps({"hops": [list(h) for h in hops], "keys": count})))
        return {"keys": count, "bits_per_hop": count * unit_bits, "relay_id": relay_id}

    def record(self, event_name: str, sae: str | None = None, peer: str | None = None, detail: str | None = None,
               key_ids: Sequence[str] | None = None) -> None:
        """Append an audit event (fallbacks, refusals): who, which key IDs, why; never key material."""
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
