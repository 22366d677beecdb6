"""Keys for SAEs of different KMEs: KME-to-KME key forwarding over mutual TLS, hop by hop, all or nothing.

An SAE asks its own KME for keys with an SAE of another KME as usual (ETSI GS QKD 014 ``enc_keys``); the
slave asks its own KME (``dec_keys``) with the key IDs. Between the two, the key travels from KME to KME
along the QKD links that join their domains (the *interconnects*), each hop under a one-time pad of that
link's key, each KME a trusted node:

    master's KME                          next KME                                slave's KME
    K (relayed from the master's node     K = C xor pad; relayed to its link      K = C xor pad; relayed to
    to the link, or drawn there)          to the next KME ...                     the slave's node; stored
    C = K xor pad(link) ----------------> C' = K xor pad(next link) -----------> under the key's ID
               POST /api/v1/kme/forward                POST /api/v1/kme/forward

A KME answers 200 only once the keys are stored at the slave's KME (each hop waits for the next), and the
master gets its keys only after that: all or nothing. Whatever fails, the pads and relayed keys a hop has
used are spent, never used again (a one-time pad used twice would leak). Both sides audit every forward
(``forward_out`` at the master's KME, ``forward_transit`` and ``forward_in`` on the way, ``forward_failed``).
A pad is named by an ID (``block.index`` of the link's key stream in the sender's direction) and a KME never
accepts a pad ID twice (:class:`~qfabric.kms.store.PadReused`).

The interface follows the shape of ETSI GS QKD 014 (JSON, ETSI-style error bodies, the peer's identity from
its certificate) for the KME-to-KME key forwarding that ETSI GS QKD 020 standardises; 020's text is not
public, so its message names are not followed. A forward request:

    {"master_SAE_ID": "alice", "slave_SAE_IDs": ["bob"], "size": 256, "link": "north-south",
     "keys": [{"key_ID": "<uuid>", "pad_IDs": ["0.17"], "key": "<base64 of K xor pad>"}]}

Where keys come from (the pools relaying them inside a domain, the interconnect's pads) is the key supply's
business: :class:`KeyPaths` (:class:`qfabric.scenario.keysupply.KeySupply` implements it).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import ssl
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from qfabric.errors import QfabricError
from qfabric.kms.naming import valid_sae_id
from qfabric.kms.store import Delivery, KeysExhausted, KeyStore, PadReused

log = logging.getLogger(__name__)
FORWARD_PATH = "/api/v1/kme/forward"


def gateway(kme_id: str) -> str:
    """The endpoint label of a neighbour KME's interconnect, inside a domain (SAE IDs cannot hold ``:``)."""
    return f"kme:{kme_id}"


class KeyPaths(Protocol):
    """What a KME's key supply provides for forwarding (endpoints are SAE IDs or :func:`gateway` labels)."""

    unit_bits: int

    def relay_pool(self, a: str, b: str) -> str | None:
        """The pool of keys relayed between endpoints ``a`` and ``b`` inside the domain (``None``: same node)."""

    def take_pads(self, neighbour: str, units: int) -> tuple[str, list[tuple[str, bytes]]]:
        """Spend ``units`` one-time pads of the link to ``neighbour``: the link's name and ``(pad ID, pad)``s.
        :class:`~qfabric.kms.store.KeysExhausted` if the link has not produced that much yet, or is down."""

    def pads_available(self, neighbour: str) -> int:
        """One-time pads the link to ``neighbour`` can give now."""

    def pads(self, neighbour: str, link: str, pad_ids: Sequence[str]) -> list[bytes]:
        """This end's copy of the pads ``pad_ids`` that ``neighbour`` used on ``link`` (QfabricError if the link
        does not join the two KMEs or an ID names no pad of ``neighbour``'s direction)."""


class ForwardRefused(QfabricError):
    """A forward was refused (here or further on): the HTTP status to answer and an ETSI-style message."""

    def __init__(self, status: int, message: str, details: list | None = None, reason: str = "forward"):
        super().__init__(message)
        self.status, self.message, self.details, self.reason = status, message, details or [], reason


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a) ^ int.from_bytes(b)).to_bytes(len(a))


@dataclass
class Forwarder:
    """One KME's side of KME-to-KME forwarding.

    ``saes``: every SAE ID -> its KME's ID; ``peers``: neighbour KME ID -> its URL; ``routes``: every other
    reachable KME ID -> the neighbour keys for it go through; ``tls``: a client context with this KME's
    certificate (:func:`~qfabric.kms.client.tls_context`)."""

    kme_id: str
    saes: dict[str, str]
    peers: dict[str, str]
    routes: dict[str, str]
    paths: KeyPaths
    store: KeyStore
    tls: ssl.SSLContext
    timeout_s: float = 10.0
    _clients: dict[int, httpx.AsyncClient] = field(default_factory=dict, repr=False)

    def next_hop(self, kme: str) -> str:
        hop = self.routes.get(kme, kme if kme in self.peers else None)
        if hop is None or hop not in self.peers:
            raise ForwardRefused(503, f"no route from KME {self.kme_id} to KME {kme}", reason="no_route")
        return hop

    def available(self, master: str, slave: str, size: int) -> int:
        """Keys of ``size`` bits ``master`` could get now for ``slave`` of another KME (the first hop's limit)."""
        try:
            hop = self.next_hop(self.saes[slave])
        except ForwardRefused:
            return 0
        per_key = self._per_key(size)
        pool = self.paths.relay_pool(master, gateway(hop))
        relayed = self.store.available(pool) // per_key if pool is not None else math.inf
        return int(min(relayed, self.paths.pads_available(hop) // per_key))

    def _per_key(self, size: int) -> int:
        return math.ceil(size / self.paths.unit_bits)

    def _client(self) -> httpx.AsyncClient:
        loop = id(asyncio.get_running_loop())
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = httpx.AsyncClient(verify=self.tls, timeout=self.timeout_s)
        return client

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    async def _spend(self, pool: str | None, count: int, peer: str) -> list[bytes] | None:
        if pool is None:
            return None
        try:
            return await asyncio.to_thread(self.store.take_units, pool, count, "relay_forwarded", peer)
        except KeysExhausted as err:
            raise ForwardRefused(503, "not enough keys available", [{"reason": str(err)}], reason="exhausted") \
                from None

    async def _post(self, hop: str, master: str, slaves: list[str], size: int,
                    keys: list[tuple[str, bytes]]) -> str:
        """Encrypt ``keys`` under fresh pads of the link to ``hop`` and forward them; the link's name once the
        slaves' KME has stored them. The pads are spent whatever the answer."""
        per_key = self._per_key(size)
        try:
            link, pads = await asyncio.to_thread(self.paths.take_pads, hop, len(keys) * per_key)
        except KeysExhausted as err:
            raise ForwardRefused(503, f"not enough key on the link to KME {hop}", [{"reason": str(err)}],
                                 reason="exhausted") from None
        body = {"master_SAE_ID": master, "slave_SAE_IDs": slaves, "size": size, "link": link, "keys": []}
        for i, (key_id, key) in enumerate(keys):
            mine = pads[i * per_key : (i + 1) * per_key]
            pad = b"".join(p for _, p in mine)[: len(key)]
            body["keys"].append({"key_ID": key_id, "pad_IDs": [p for p, _ in mine],
                                 "key": base64.b64encode(_xor(key, pad)).decode()})
        try:
            response = await self._client().post(self.peers[hop].rstrip("/") + FORWARD_PATH, json=body)
        except httpx.HTTPError as err:
            raise ForwardRefused(503, f"KME {hop} unreachable: {type(err).__name__}", reason="peer_unreachable") \
                from None
        if response.status_code != 200:
            try:
                message = response.json().get("message", "")
            except ValueError:
                message = response.text[:200]
            raise ForwardRefused(503, f"KME {hop} refused the keys: {response.status_code} {message}",
                                 [{"kme": hop, "status": response.status_code}], reason="peer_refused")
        return link

    def _audit_failure(self, master: str, slaves: list[str], key_ids: list[str], err: ForwardRefused,
                       direction: str) -> None:
        self.store.record("forward_failed", master, ",".join(slaves), f'{{"{direction}": true, '
                          f'"status": {err.status}, "reason": "{err.reason}"}}', key_ids)

    async def send(self, master: str, slaves: list[str], number: int, size: int) -> list[Delivery]:
        """At the master's KME: ``number`` keys of ``size`` bits for ``master`` and ``slaves`` (all of one other
        KME), stored at the slaves' KME before they are returned. Raises :class:`ForwardRefused`."""
        kmes = {self.saes[s] for s in slaves}
        if len(kmes) != 1:
            raise ForwardRefused(400, "the slave SAEs of a request shall be under one KME",
                                 [{"slave_KME_IDs": sorted(kmes)}], reason="slaves_split")
        hop = self.next_hop(kmes.pop())
        per_key = self._per_key(size)
        if await asyncio.to_thread(self.paths.pads_available, hop) < number * per_key:  # spend nothing in vain
            raise ForwardRefused(503, f"not enough key on the link to KME {hop}", reason="exhausted")
        relayed = await self._spend(self.paths.relay_pool(master, gateway(hop)), number * per_key, hop)
        keys = []
        for k in range(number):
            material = (b"".join(relayed[k * per_key : (k + 1) * per_key]) if relayed is not None
                        else self.store.random_bytes(per_key * self.paths.unit_bits // 8))  # drawn at the link's node
            keys.append((str(uuid.uuid4()), material[: size // 8]))
        key_ids = [k for k, _ in keys]
        try:
            link = await self._post(hop, master, slaves, size, keys)
        except ForwardRefused as err:
            await asyncio.to_thread(self._audit_failure, master, slaves, key_ids, err, "out")
            raise
        await asyncio.to_thread(self.store.record_forwarded, master, slaves, key_ids, size, hop, link)
        return [Delivery(k, m, size) for k, m in keys]

    async def receive(self, sender: str, body: dict) -> dict:
        """At the next KME: take the keys ``sender`` forwarded, store them for this KME's slaves or forward them on.
        Raises :class:`ForwardRefused` (400 for a malformed request, 503 if the keys cannot go on)."""
        if sender not in self.peers:
            raise ForwardRefused(401, "the client certificate names no neighbour KME of this KME", reason="unknown_kme")
        master, slaves, size, link, items = (body.get(k) for k in ("master_SAE_ID", "slave_SAE_IDs", "size", "link",
                                                                     "keys"))
        if not (isinstance(master, str) and valid_sae_id(master) and self.saes.get(master) not in (None, self.kme_id)):
            raise ForwardRefused(400, "master_SAE_ID shall be an SAE of another KME", [{"master_SAE_ID": master}])
        if not (isinstance(slaves, list) and slaves and all(isinstance(s, str) and s in self.saes for s in slaves)):
            raise ForwardRefused(400, "slave_SAE_IDs shall be a non-empty list of known SAEs",
                                 [{"slave_SAE_IDs": slaves}])
        kmes = {self.saes[s] for s in slaves}
        if len(kmes) != 1:
            raise ForwardRefused(400, "the slave SAEs shall be under one KME", [{"slave_KME_IDs": sorted(kmes)}])
        if not (isinstance(size, int) and not isinstance(size, bool) and size > 0 and size % 8 == 0):
            raise ForwardRefused(400, "size shall be a positive multiple of 8", [{"size": size}])
        if not (isinstance(link, str) and isinstance(items, list) and items):
            raise ForwardRefused(400, "link shall name the link and keys shall be a non-empty list")
        per_key = self._per_key(size)
        keys, pad_ids = [], []
        for item in items:
            try:
                key_id, ids, ciphertext = str(uuid.UUID(item["key_ID"])), item["pad_IDs"], base64.b64decode(
                    item["key"], validate=True)
            except (TypeError, KeyError, ValueError):
                raise ForwardRefused(400, "each key shall be {key_ID: UUID, pad_IDs: [...], key: base64}") from None
            if not (isinstance(ids, list) and len(ids) == per_key and all(isinstance(p, str) for p in ids)
                    and len(ciphertext) == size // 8):
                raise ForwardRefused(400, f"each key shall have {size // 8} bytes and {per_key} pad IDs",
                                     [{"key_ID": key_id}])
            keys.append((key_id, ciphertext, ids))
            pad_ids += ids
        if len(set(pad_ids)) != len(pad_ids) or len({k for k, _, _ in keys}) != len(keys):
            raise ForwardRefused(400, "pad_IDs and key_IDs shall be distinct")
        try:
            pads = await asyncio.to_thread(self.paths.pads, sender, link, pad_ids)
        except QfabricError as err:
            raise ForwardRefused(400, str(err), reason="bad_pad") from None
        plain = []
        for i, (key_id, ciphertext, _) in enumerate(keys):
            pad = b"".join(pads[i * per_key : (i + 1) * per_key])[: len(ciphertext)]
            plain.append((key_id, _xor(ciphertext, pad)))
        destination = kmes.pop()
        here = destination == self.kme_id
        hop = None if here else self.next_hop(destination)
        ends = slaves if here else [gateway(hop)]
        relays = [(pool, len(keys) * per_key) for pool in (self.paths.relay_pool(gateway(sender), e) for e in ends)
                  if pool is not None]
        try:
            await asyncio.to_thread(self.store.receive_forwarded, sender=sender, link=link, pad_ids=pad_ids,
                                    relays=relays, master=master, slaves=slaves, keys=plain, size_bits=size,
                                    deliver=here)
        except PadReused as err:
            raise ForwardRefused(400, str(err), reason="pad_reused") from None
        except KeysExhausted as err:
            raise ForwardRefused(503, "not enough keys available", [{"reason": str(err)}], reason="exhausted") \
                from None
        except QfabricError as err:
            raise ForwardRefused(400, str(err)) from None
        if not here:  # on to the next KME; this one's pads and relay keys are spent whatever happens
            try:
                await self._post(hop, master, slaves, size, plain)
            except ForwardRefused as err:
                await asyncio.to_thread(self._audit_failure, master, slaves, [k for k, _ in plain], err, "transit")
                raise
        return {"key_IDs": [{"key_ID": k} for k, _ in plain]}
