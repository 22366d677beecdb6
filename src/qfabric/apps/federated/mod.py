"""The client side of qfabric's protection, as a Flower mod: one line in a ClientApp.

    app = ClientApp(mods=[qfabric_protection_mod()])   # then @app.train() as usual

The node is started with its SAE identity and KME (``node_config``: ``qfabric-sae-id``,
``qfabric-kme-url``, ``qfabric-cert``, ``qfabric-key``, ``qfabric-ca``). For a ``train`` message the mod
derives the round's key with the aggregator (the policy's mode: a QKD key fetched by ID over ETSI 014 from
the node's KME, combined with ML-KEM-768 and X25519; the key agreement, signed by the aggregator, is kept for
``session-rounds`` rounds, each round with a fresh QKD key: :mod:`~qfabric.apps.federated.sessions`), decrypts
the global model into the ``arrays`` record, calls the user's train function, and turns its reply into an
update an honest-but-curious aggregator cannot read (docs/federated.md, "Who it protects against"): the change
to the model (under differential privacy: clipped and noised), weighted, masked with pairwise keys shared with
the other organisations (secure aggregation), and sealed with
AES-256-GCM bound to the round and the sender. Key material never leaves the node; only key IDs and public
values do. The protocol's other steps (``hello``, ``pairs``, ``unmask``) also come as ``train`` messages
(the kind every ClientApp registers) and the mod answers them itself. Other messages (``evaluate``, the
user's own ``query``) pass through untouched, and so do mods stacked after it (they see the plain model and
reply) or before it (they see what crosses the network).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.clientapp.typing import Mod

from qfabric.apps.federated import secagg
from qfabric.apps.federated.privacy import add_noise, clip, noise_generator
from qfabric.apps.federated.protect import (
    UpdateRejected,
    decrypt_update,
    encrypt_update,
    open_seed_share,
    pack,
    seal_seed_share,
)
from qfabric.apps.federated.sessions import Sessions, continues_session
from qfabric.apps.federated.wire import (
    CA,
    CERT,
    HELLO,
    KEY,
    KME_URL,
    NOISE_SEED,
    NOISE_SOURCE,
    PAIRS,
    RECORD,
    SAE_ID,
    STEP,
    TRAIN,
    UNMASK,
    TimedKme,
    arrays_to_record,
    model_aad,
    public_from_bytes,
    public_to_bytes,
    qfabric_record,
    read_record,
    record_to_arrays,
)
from qfabric.errors import QfabricError
from qfabric.kms.broker import SessionBroker
from qfabric.kms.client import SaeClient
from qfabric.kms.hybrid import ResponderKeys
from qfabric.kms.identity import SaeIdentity
from qfabric.kms.policy import Policy

_KME_CLIENTS: dict[tuple, TimedKme] = {}  # one HTTPS connection pool per node and process
_IDENTITIES: dict[tuple, SaeIdentity] = {}
_KEY_PAIRS: dict[tuple, ResponderKeys] = {}  # the node's key pairs, expanded from its state's seeds once per process
_WRITTEN: dict[tuple, tuple[str, Sessions]] = {}  # per node: the mark of the state it wrote last, and its sessions


@dataclass
class _Node:
    ident: tuple  # (SAE ID, KME URL, certificate): the node as this process's caches know it
    sae: str
    kme: TimedKme
    keys: ResponderKeys
    identity: SaeIdentity  # signs the public keys and pairwise hellos the aggregator relays
    sessions: Sessions  # key agreements kept over rounds, with the aggregator and the peers


def _node(context: Context) -> _Node:
    cfg = context.node_config
    missing = [k for k in (SAE_ID, KME_URL, CERT, KEY, CA) if k not in cfg]
    if missing:
        raise QfabricError(f"node {context.node_id} has no {', '.join(missing)} in its node config: start the "
                           "SuperNode with its SAE identity and KME to use qfabric_protection")
    ident = (cfg[SAE_ID], cfg[KME_URL], cfg[CERT])
    if ident not in _KME_CLIENTS:
        _KME_CLIENTS[ident] = TimedKme(SaeClient(str(cfg[KME_URL]), str(cfg[CERT]), str(cfg[KEY]), str(cfg[CA])))
    if ident not in _IDENTITIES:
        identity = SaeIdentity.load(str(cfg[CERT]), str(cfg[KEY]), str(cfg[CA]))
        if identity.sae != cfg[SAE_ID]:
            raise QfabricError(f"node {context.node_id}: its certificate names {identity.sae!r}, its node config "
                               f"{SAE_ID} {cfg[SAE_ID]!r}")
        _IDENTITIES[ident] = identity
    state = context.state.get("qfabric-node")
    if state is None:  # the node's long-term ML-KEM and X25519 key pairs, kept in Flower's node state
        fresh = ResponderKeys.generate()
        state = ConfigRecord({"mlkem": fresh.mlkem.private_bytes_raw(), "x25519": fresh.x25519.private_bytes_raw()})
        context.state["qfabric-node"] = state
    seeds = (*ident, state["mlkem"], state["x25519"])
    if seeds not in _KEY_PAIRS:  # expanding an ML-KEM key from its seed takes ~0.2 ms: once per process
        _KEY_PAIRS[seeds] = ResponderKeys(MLKEM768PrivateKey.from_seed_bytes(state["mlkem"]),
                                          X25519PrivateKey.from_private_bytes(state["x25519"]))
    kme = _KME_CLIENTS[ident]
    written = _WRITTEN.get(ident)
    if written is not None and state.get("written") == written[0]:  # this process wrote the state: no need to parse
        sessions = written[1]
        kme.import_keys(None, keep=True)
    else:  # a new process, or another run's state
        kme.import_keys(state.get("kme-keys"))  # QKD keys fetched ahead in an earlier message of this run
        sessions = Sessions(str(cfg[SAE_ID]))
        sessions.load_json(state.get("sessions"))  # key agreements made in earlier messages of this run
    return _Node(ident, str(cfg[SAE_ID]), kme, _KEY_PAIRS[seeds], _IDENTITIES[ident], sessions)


def _write_state(context: Context, node: _Node) -> None:
    """Keep the node's QKD keys fetched ahead and its sessions in its Flower state (a SuperNode may start a
    process per message), marked so that this process, if it serves the node's next message, uses its objects
    instead of parsing them back."""
    state = context.state["qfabric-node"]
    state["kme-keys"] = node.kme.export_keys()
    if node.sessions.changed or "sessions" not in state:  # a continued session's round changes none
        state["sessions"] = node.sessions.to_json()
    state["written"] = mark = os.urandom(8).hex()
    _WRITTEN[node.ident] = (mark, node.sessions)


def close_kme_clients() -> None:
    """Close the nodes' KME connections in this process (a runner that hosts the nodes calls it at the end)."""
    while _KME_CLIENTS:
        _KME_CLIENTS.popitem()[1].client.close()
    _IDENTITIES.clear()
    _KEY_PAIRS.clear()
    _WRITTEN.clear()


def _broker(node: _Node, record: dict, audit: list[dict]) -> SessionBroker:
    policy = Policy(mode=record["policy-mode"], fallback=record["policy-fallback"],
                    qber_threshold=record["qber-threshold"])
    return SessionBroker(node.sae, node.kme, policy, audit.append)


def _reply(msg: Message, fields: dict, started: float, node: _Node, audit: list[dict], train_s: float = 0.0) -> Message:
    """The qfabric record of a reply, with the audit events and where the time since ``started`` went."""
    kme_s, requests, keys = node.kme.take()
    fields |= {"audit": audit, "kme-seconds": kme_s, "kme-requests": requests, "qkd-keys": keys,
               "train-seconds": train_s, "crypto-seconds": max(0.0, time.perf_counter() - started - kme_s - train_s)}
    return Message(RecordDict({RECORD: qfabric_record(fields)}), reply_to=msg)


def _hello(msg: Message, node: _Node) -> Message:
    public = public_to_bytes(node.keys.public())
    return Message(RecordDict({RECORD: qfabric_record({
        "sae": node.sae, "public": public, "cert": node.identity.cert_pem,
        "public-sig": node.identity.sign("public", node.sae, public)})}), reply_to=msg)


def _start_pairs(record: dict, context: Context, node: _Node, broker: SessionBroker, round_number: int,
                 prefix: str = "") -> dict:
    """Start a session with every participant that sorts after this node for ``round_number`` and keep the
    keys; returns the reply's fields (``prefix`` + ``to``, ``hellos``, ...). The participants come in
    ``record`` under ``prefix`` + ``participants``, with their signed public values (``publics``, ``certs``,
    ``public-sigs``) when some pair needs a key agreement.

    A peer the policy gives no key for (its pool is dry and no fallback is allowed, or the KME refuses) is
    reported in ``unpaired`` with the reason: the aggregator then leaves one of the two out of the round.

    A pair's session continues (a fresh QKD key, no key agreement) while it covers ``round_number``; a new key
    agreement is signed with this node's certificate, a continued round's hello carries a key confirmation."""
    node.kme.keys_per_request = int(record.get("keys-per-request", 1))  # the federation's settings
    node.kme.rounds_left = int(record.get("rounds-left", 0)) or None  # no keys for rounds after the run's last
    restart = set(record.get(prefix + "restart-sessions", []))  # organisations that failed or joined: start over
    if node.sae in restart:  # this node starts over with every peer (its session with the aggregator: that one's call)
        restart = (set(node.sessions.initiated) | set(node.sessions.responded)) - {record["aggregator"]}
    node.sessions.forget(restart)
    peers, hellos, signatures, keys, unpaired, reasons, ahead = [], [], [], [], [], [], []
    participants = list(record[prefix + "participants"])
    none = [None] * len(participants)  # the aggregator sends public keys only when some pair needs an agreement
    for peer, public, cert, signature in zip(participants, record.get(prefix + "publics", none),
                                             record.get(prefix + "certs", none),
                                             record.get(prefix + "public-sigs", none), strict=True):
        if peer > node.sae:
            def checked_public(peer=peer, public=public, cert=cert, signature=signature):
                if public is None:
                    raise QfabricError(f"no public keys of {peer!r} came with the pairs step, and its session with "
                                       f"{node.sae!r} has ended")
                node.identity.verify(cert, peer, signature, "public", peer, public)
                return public_from_bytes(public)

            try:
                hello, key = node.sessions.initiate(broker, peer, checked_public, round_number)
            except QfabricError as err:
                unpaired.append(peer)
                reasons.append(str(err))
                continue
            peers.append(peer)
            hellos.append(hello)
            signatures.append(b"" if continues_session(hello)
                              else node.identity.sign("pair-hello", round_number, node.sae, peer, hello))
            keys.append(key)
            ahead.append(json.dumps(node.kme.ahead(peer)))  # key IDs this node holds for the next rounds
    context.state["qfabric-pairs"] = ConfigRecord({"round": round_number, "peers": peers or [""],
                                                   "keys": keys or [b""]})
    fields = {"to": peers, "hellos": hellos, "hello-sigs": signatures, "unpaired": unpaired,
              "unpaired-reasons": reasons, "ahead": ahead}
    return {prefix + k: v for k, v in fields.items()}


def _pairs(msg: Message, record: dict, context: Context, node: _Node) -> Message:
    """The ``pairs`` step: :func:`_start_pairs` for this round."""
    started, audit = time.perf_counter(), []
    fields = _start_pairs(record, context, node, _broker(node, record, audit), int(record["round"]))
    return _reply(msg, fields, started, node, audit)


def _pair_keys(context: Context, node: _Node, record: dict, broker: SessionBroker) -> dict:
    initiated = context.state.get("qfabric-pairs")
    if initiated is None or initiated["round"] != record["round"]:
        raise UpdateRejected(f"no pairwise keys for round {record['round']}: the pairs step did not reach this node")
    keys = {}
    for peer, key in zip(initiated["peers"], initiated["keys"], strict=True):
        if peer:
            keys[(node.sae, peer)] = key
    for peer, hello, signature, cert, ahead in zip(record.get("peer-from", []), record.get("peer-hellos", []),
                                                   record.get("peer-hello-sigs", []), record.get("peer-certs", []),
                                                   record.get("peer-ahead", []), strict=True):
        if not continues_session(hello):  # a key agreement, signed; a kept session's hello is confirmed by its key
            node.identity.verify(cert, peer, signature, "pair-hello", record["round"], peer, node.sae, hello)
        node.kme.announce(peer, json.loads(ahead))
        keys[(peer, node.sae)] = node.sessions.respond(broker, peer, hello, node.keys, int(record["round"]))
    participants = set(record["participants"]) - {node.sae}
    return {pair: key for pair, key in keys.items() if (set(pair) - {node.sae}) <= participants}


def _train(msg: Message, record: dict, context: Context, call_next, node: _Node) -> Message:
    started, audit = time.perf_counter(), []
    if record["client"] != node.sae:
        raise UpdateRejected(f"a model sealed for {record['client']!r} reached {node.sae!r}")
    round_number, aggregator = int(record["round"]), str(record["aggregator"])
    broker = _broker(node, record, audit)
    node.kme.announce(aggregator, list(record.get("qkd-ahead", [])))
    hello = record["hello"]
    if not continues_session(hello):  # a new key agreement is signed; a kept session's hello, its round key confirms
        if "hello-sig" not in record or "aggregator-cert" not in record:
            raise UpdateRejected(f"{aggregator!r}'s key agreement for round {round_number} is not signed: refused")
        node.identity.verify(record["aggregator-cert"], aggregator, record["hello-sig"], "aggregator-hello",
                             round_number, aggregator, node.sae, hello)
    session = node.sessions.respond(broker, aggregator, hello, node.keys, round_number)
    shapes = [tuple(s) for s in record["shapes"]]
    global_model = decrypt_update(record["model"], session, *model_aad(round_number, aggregator, node.sae), shapes)
    pair_keys = _pair_keys(context, node, record, broker)

    content = RecordDict({k: v for k, v in msg.content.items() if k != RECORD})
    content["arrays"] = arrays_to_record(global_model)
    t_train = time.perf_counter()
    reply = call_next(Message(content=content, metadata=msg.metadata), context)
    train_s = time.perf_counter() - t_train
    if reply.has_error():
        return reply
    trained = record_to_arrays(reply.content["arrays"])
    if [a.shape for a in trained] != [a.shape for a in global_model]:
        raise UpdateRejected(f"the ClientApp returned shapes {[a.shape for a in trained]}, the model has {shapes}")
    metrics = reply.content.get("metrics")
    examples = float(metrics["num-examples"]) if metrics is not None and "num-examples" in metrics else 1.0
    delta = [t.astype(np.float64) - g for t, g in zip(trained, global_model, strict=True)]
    weight = 1.0 if record["weighting"] == "uniform" else min(examples / float(record["weight-cap-examples"]), 1.0)
    if record["noise-std"] > 0:  # differential privacy: clip, then this node's share of the noise on the sum
        delta, norm = clip(delta, float(record["clip-norm"]))
        node_seed = context.node_config.get(NOISE_SEED)  # reproducible runs; OS entropy otherwise
        seed = np.random.SeedSequence([int(node_seed), round_number] if node_seed is not None else None)
        noise = noise_generator(context.node_config.get(NOISE_SOURCE), seed)  # seeded, or the simulated QRNG
        delta = add_noise(delta, float(record["noise-std"]), noise)
    else:  # no clipping: the sum is FedAvg's, up to the fixed point's resolution
        norm = float(np.sqrt(sum(float(np.sum(np.square(d))) for d in delta)))
        largest = max(float(np.max(np.abs(d), initial=0.0)) for d in delta)
        if largest * weight >= float(record["value-bound"]):
            raise UpdateRejected(f"an update coordinate of {largest * weight:.3g} exceeds the fixed point's range "
                                 f"+-{record['value-bound']:g}: lower the learning rate, or use differential "
                                 "privacy (which clips)")
    flat = np.concatenate([d.ravel() * weight for d in delta] + [np.array([weight])])
    masked = secagg.mask_update(flat, node.sae, pair_keys, round_number, max_clients=int(record["max-clients"]),
                                fractional_bits=int(record["fractional-bits"]))
    fields = {"sae": node.sae, "update-norm": norm}
    double_masking = bool(record.get("double-masking", False))
    if double_masking:  # a self-mask from a fresh seed, the seed's shares sealed for the peers (secagg)
        seed_peers = sorted({p for pair in pair_keys for p in pair} - {node.sae})
        seed = os.urandom(secagg.SEED_BYTES)
        masked = masked + secagg.self_mask(seed, round_number, masked.size)
        shares = secagg.share_seed(seed, seed_peers, int(record["seed-threshold"]))
        fields |= {"share-to": seed_peers, "seed-shares": [
            seal_seed_share(secagg.pair_key(pair_keys, node.sae, peer), shares[peer], round_number, node.sae, peer)
            for peer in seed_peers]}
    fields["update"] = encrypt_update([masked.view(np.float32)], session, round_number, node.sae)
    pairs = sorted(pair_keys)  # kept for this round's unmasking: a QKD key can be fetched only once
    context.state["qfabric-round"] = ConfigRecord({
        "round": round_number, "size": flat.size, "pairs": [json.dumps(p) for p in pairs] or [""],
        "keys": [pair_keys[p] for p in pairs] or [b""], "double-masking": double_masking, "unmasked": False})
    if "next-round" in record:  # the next round's pairs step, carried by this message (one message a round)
        fields |= _start_pairs(record, context, node, broker, int(record["next-round"]), prefix="next-")
        fields["next-round"] = int(record["next-round"])
    out = _reply(msg, fields, started, node, audit, train_s)
    if metrics is not None:
        out.content["metrics"] = metrics
    return out


def _unmask(msg: Message, record: dict, context: Context, node: _Node) -> Message:
    """After the round's updates are in: reveal this node's masks with the organisations that dropped out and,
    under double masking, its shares of the survivors' self-mask seeds. For each peer one or the other, never
    both, and once a round: an aggregator that claims a dropout to some and a survival to others, or asks twice,
    is refused."""
    started, audit = time.perf_counter(), []
    kept = context.state.get("qfabric-round")
    round_number = int(record["round"])
    if kept is None or kept["round"] != round_number:
        raise UpdateRejected(f"this node sent no update in round {round_number}: nothing to unmask")
    if kept.get("unmasked", False):
        raise UpdateRejected(f"round {round_number} was unmasked already: a second request is refused")
    keys = {tuple(json.loads(p)): k for p, k in zip(kept["pairs"], kept["keys"], strict=True) if p}
    peers = {p for pair in keys for p in pair} - {node.sae}
    dropped, survivors = set(record.get("dropped", [])), set(record.get("survivors", [])) - {node.sae}
    owners, blobs = list(record.get("share-from", [])), list(record.get("seed-shares", []))
    if node.sae in dropped or dropped & survivors or not dropped | survivors <= peers or not set(owners) <= survivors:
        raise UpdateRejected(f"round {round_number}'s unmask names dropped {sorted(dropped)}, survivors "
                             f"{sorted(survivors | {node.sae})} and seed shares of {owners}: not one story of this "
                             f"node's peers {sorted(peers)}, refused")
    size = int(kept["size"])
    share = np.zeros(size, dtype=np.uint32)
    for gone in sorted(dropped):
        share = share + secagg.recovery_share(node.sae, gone, keys, round_number, size)
    fields = {"share": pack([share.view(np.float32)])}
    if kept.get("double-masking", False):
        fields |= {"share-from": owners, "seed-shares": [
            open_seed_share(secagg.pair_key(keys, node.sae, owner), blob, round_number, owner, node.sae)
            for owner, blob in zip(owners, blobs, strict=True)]}
    kept["unmasked"] = True
    return _reply(msg, fields, started, node, audit)


def qfabric_protection(msg: Message, context: Context, call_next) -> Message:
    """The Flower mod (see the module docstring): :func:`qfabric_protection_mod` returns it."""
    if msg.metadata.message_type.split(".")[0] != "train":
        return call_next(msg, context)
    if RECORD not in msg.content:
        raise UpdateRejected("a train message without qfabric protection reached a protected node: refused")
    record = read_record(msg.content[RECORD])
    step = record.get(STEP, TRAIN)
    node = _node(context)
    node.sessions.rounds = int(record.get("session-rounds", 1))  # the federation's session lifetime
    try:
        if step == HELLO:
            return _hello(msg, node)
        if step == PAIRS:
            return _pairs(msg, record, context, node)
        if step == UNMASK:
            return _unmask(msg, record, context, node)
        if step == TRAIN:
            return _train(msg, record, context, call_next, node)
        raise UpdateRejected(f"unknown qfabric step {step!r}: is this node's qfabric older than the aggregator's?")
    finally:  # QKD keys fetched ahead and sessions outlive this message
        _write_state(context, node)


def qfabric_protection_mod() -> Mod:
    """qfabric's protection as a Flower mod: ``ClientApp(mods=[qfabric_protection_mod()])``, then register the
    train function as usual (``@app.train()``). The node's SAE identity and KME come from its node config
    (``qfabric-sae-id``, ``qfabric-kme-url``, ``qfabric-cert``, ``qfabric-key``, ``qfabric-ca``).

    Mods listed after it see the plain global model and the plain reply; mods before it see only what crosses
    the network (sealed, masked).

    >>> from flwr.clientapp import ClientApp
    >>> app = ClientApp(mods=[qfabric_protection_mod()])
    >>> app._mods[0].__name__
    'qfabric_protection'
    """
    return qfabric_protection
