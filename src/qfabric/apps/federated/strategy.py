"""The aggregator side of qfabric's protection: FedAvg over sealed, masked updates.

Per round, :class:`SecureFedAvg`

1. learns each new node's SAE ID and public keys (``query.qfabric_hello``, once per node);
2. has the participants set up pairwise keys for secure aggregation (``query.qfabric_pairs``: each node
   starts a session with the peers that sort after it; only key IDs and public values come back, and the
   aggregator forwards them);
3. derives the round's key with every participant under the crypto policy (a new session, or the next round
   of one kept for ``session_rounds``: :mod:`~qfabric.apps.federated.sessions`) and sends it the global model
   sealed under that key;
4. opens the sealed replies (still masked), asks the survivors for their masks with any organisation that
   dropped out and, under double masking, for their shares of the survivors' self-mask seeds (``unmask``), and
   adds the masked updates: only the sum appears.

A round with fewer than ``min_clients`` usable updates fails cleanly (the model stays as it was) and the
round log says why. Evaluation on the nodes is not protected; use ``evaluate_fn`` on held-out data.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from logging import INFO

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg
from flwr.serverapp.strategy.strategy_utils import sample_nodes

from qfabric.apps.federated import secagg
from qfabric.apps.federated.protect import decrypt_update, encrypt_update, unpack
from qfabric.apps.federated.sessions import Sessions, continues_session
from qfabric.apps.federated.wire import (
    HELLO,
    MESSAGE_TYPE,
    PAIRS,
    RECORD,
    STEP,
    TRAIN,
    UNMASK,
    TimedKme,
    arrays_to_record,
    model_aad,
    public_from_bytes,
    qfabric_record,
    read_record,
    record_to_arrays,
)
from qfabric.errors import QfabricError
from qfabric.kms.broker import SessionBroker
from qfabric.kms.hybrid import ResponderPublic
from qfabric.kms.identity import SaeIdentity
from qfabric.kms.policy import NoKeyAvailable, Policy


@dataclass
class Protection:
    """How the aggregator protects a federation."""

    aggregator: str  # its SAE ID
    kme: TimedKme  # its ETSI 014 client
    policy: Policy = field(default_factory=Policy)
    clip_norm: float = 1.0  # L2 bound on each organisation's update under differential privacy
    noise_multiplier: float = 0.0  # Gaussian noise on the sum, in units of clip_norm (0: no DP, no clipping)
    weight_cap_examples: float = 1000.0  # FedAvg weight min(examples / cap, 1); uniform weights under DP
    min_clients: int = 2
    value_bound: float = 16.0  # without DP: the largest |coordinate| of a weighted update (fixed point's range)
    pipeline_pairs: bool = True  # carry the next round's pairs step in the train message (one message a round)
    session_rounds: int = 10  # rounds one key agreement (ML-KEM + X25519) keys; a fresh QKD key enters every round
    identity: SaeIdentity | None = None  # the aggregator's certificate and key: signs its key agreements
    double_masking: bool = False  # self-masks with seeds shared among the peers: an extra message a round (secagg)
    seed_threshold: int | None = None  # shares that rebuild a seed (None: a majority of each organisation's peers)

    def __post_init__(self) -> None:
        if self.identity is not None and self.identity.sae != self.aggregator:
            raise QfabricError(f"the aggregator {self.aggregator!r} signs with {self.identity.sae!r}'s certificate")
        if self.seed_threshold is not None and self.seed_threshold < 1:
            raise QfabricError(f"seed_threshold {self.seed_threshold}: expected at least 1 share")

    def sign_agreement(self, hello: bytes, round_number: int, organisation: str) -> dict:
        """What a train message carries to authenticate the aggregator's round hello: a key agreement signed
        with the aggregator's certificate (the organisation checks it: no one between the two can stand in
        for the aggregator, nor downgrade the agreement to a fallback mode); nothing for a continued session,
        whose hello its round key confirms."""
        if continues_session(hello):
            return {}
        if self.identity is None:
            raise QfabricError(f"the aggregator {self.aggregator!r} has no certificate to sign its key agreement "
                               f"with {organisation!r}: give Protection its SaeIdentity")
        return {"hello-sig": self.identity.sign("aggregator-hello", round_number, self.aggregator, organisation,
                                                hello),
                "aggregator-cert": self.identity.cert_pem}

    @property
    def weighting(self) -> str:
        """How updates are averaged: uniformly under DP (one organisation's influence is bounded by the clip
        norm), else by examples (FedAvg's weights, capped, sent masked)."""
        return "uniform" if self.noise_multiplier > 0 else "examples"


@dataclass
class RoundLog:
    round: int
    participants: list[str] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)
    failed: str | None = None
    audit: list[dict] = field(default_factory=list)
    qkd_keys: int = 0
    kme_seconds: float = 0.0
    kme_requests: int = 0
    crypto_seconds: float = 0.0
    train_seconds: float = 0.0
    noise_std: float = 0.0

    def add_costs(self, record: dict) -> None:
        self.kme_seconds += float(record.get("kme-seconds", 0.0))
        self.crypto_seconds += float(record.get("crypto-seconds", 0.0))
        self.train_seconds += float(record.get("train-seconds", 0.0))
        self.qkd_keys += int(record.get("qkd-keys", 0))
        self.kme_requests += int(record.get("kme-requests", 0))
        self.audit.extend(record.get("audit", []))


def _left_out_for_missing_pair_keys(paired: dict[int, ConfigRecord], names: dict[int, str], log: RoundLog) -> list[int]:
    """Nodes to leave out so that every two remaining ones share a pairwise key: repeatedly the one missing
    the most keys (ties: the later SAE ID), each logged with the first reason it reported or was reported.

    >>> rec = lambda unpaired, why: ConfigRecord({"unpaired": unpaired, "unpaired-reasons": why})
    >>> log = RoundLog(1)
    >>> paired = {1: rec(["c"], ["pool dry"]), 2: rec(["c"], ["pool dry"]), 3: rec([], [])}
    >>> _left_out_for_missing_pair_keys(paired, {1: "a", 2: "b", 3: "c"}, log), log.dropped
    ([3], {'c': 'no pairwise key with a: pool dry'})
    """
    node_of = {names[n]: n for n in paired}
    missing: dict[frozenset, tuple[str, str]] = {}  # the pair -> (who reported it, why)
    for node, record in paired.items():
        for peer, why in zip(record.get("unpaired", []), record.get("unpaired-reasons", []), strict=True):
            if peer in node_of:
                missing.setdefault(frozenset((names[node], peer)), (names[node], why))
    out = []
    while missing:
        counts: dict[str, int] = {}
        for pair in missing:
            for sae in pair:
                counts[sae] = counts.get(sae, 0) + 1
        worst = max(counts, key=lambda s: (counts[s], s))
        pair = next(p for p in missing if worst in p)
        other = next(iter(pair - {worst}))
        log.dropped[worst] = f"no pairwise key with {other}: {missing[pair][1]}"
        missing = {p: v for p, v in missing.items() if worst not in p}
        out.append(node_of[worst])
    return out


@dataclass(frozen=True)
class _Member:
    """A node as its hello introduced it: SAE ID, public keys, and its certificate's signature on them."""

    sae: str
    public: ResponderPublic
    public_bytes: bytes
    cert: bytes
    public_sig: bytes


class SecureFedAvg(FedAvg):
    """Flower's FedAvg with qfabric's protection (see the module docstring); ``rounds`` logs every round."""

    def __init__(self, protection: Protection, before_round: Callable[[int], None] | None = None, **fedavg):
        fedavg.setdefault("min_train_nodes", protection.min_clients)
        fedavg.setdefault("min_available_nodes", protection.min_clients)
        super().__init__(**fedavg)
        self.protection = protection
        self.before_round = before_round
        self.rounds: list[RoundLog] = []
        self._directory: dict[int, _Member] = {}
        self._grid: Grid | None = None
        self._num_rounds: int | None = None
        self._next_paired: dict | None = None  # the next round's pairs step, done with this round's training
        self._current: dict = {}
        self._sessions = Sessions(protection.aggregator, protection.session_rounds)
        self._restart: set[str] = set()  # organisations whose sessions start over (they failed a round, or joined)
        self._pair_until: dict[frozenset, int] = {}  # per pair of organisations: the last round its session keys

    # --- helpers -------------------------------------------------------------------------------------
    def _policy_fields(self, server_round: int) -> dict:
        p = self.protection.policy
        return {"round": server_round, "policy-mode": p.mode, "policy-fallback": p.fallback,
                "qber-threshold": p.qber_threshold, "aggregator": self.protection.aggregator,
                "session-rounds": self.protection.session_rounds}

    def _query(self, grid: Grid, kind: str, records: dict[int, dict], log: RoundLog) -> dict[int, dict]:
        """Send one query per node; returns the good replies' qfabric records (:func:`read_record`), logs the
        failures."""
        messages = [Message(RecordDict({RECORD: qfabric_record(fields | {STEP: kind})}), dst_node_id=node,
                            message_type=MESSAGE_TYPE) for node, fields in records.items()]
        replies = {m.metadata.src_node_id: m for m in grid.send_and_receive(messages)}
        good = {}
        for node in records:
            name = self._directory[node].sae if node in self._directory else f"node {node}"
            reply = replies.get(node)
            if reply is None:
                log.dropped[name] = f"no reply to {kind}"
            elif reply.has_error():
                log.dropped[name] = f"{kind}: {reply.error.reason}"
            else:
                try:
                    good[node] = read_record(reply.content[RECORD])
                except QfabricError as err:
                    log.dropped[name] = f"{kind}: {err}"
                    continue
                log.add_costs(good[node])
        return good

    def _audit(self, log: RoundLog) -> Callable[[dict], None]:
        return lambda event: log.audit.append(event)

    def _pair_fields(self, members: list[_Member], round_number: int, prefix: str = "",
                     restart: Iterable[str] = ()) -> dict:
        """What the pairs step of ``round_number`` needs (under ``prefix``): the participants, keys per request,
        whose sessions start over (``restart``), and the participants' signed public keys when some pair needs
        a key agreement (else they stay out of the message: 6 KB a message here)."""
        fields = {"keys-per-request": self.protection.kme.keys_per_request,
                  "rounds-left": self._rounds_left(round_number),
                  prefix + "restart-sessions": sorted(restart), prefix + "participants": [m.sae for m in members]}
        names = [m.sae for m in members]
        if restart or any(self._pair_until.get(frozenset((a, b)), 0) < round_number
                          for i, a in enumerate(names) for b in names[i + 1 :]):
            fields |= {prefix + "publics": [m.public_bytes for m in members],
                       prefix + "certs": [m.cert for m in members],
                       prefix + "public-sigs": [m.public_sig for m in members]}
        return fields

    def _rounds_left(self, round_number: int) -> int:
        """The run's rounds from ``round_number`` on (0: not known): no batch of QKD keys fetches more."""
        return max(1, self._num_rounds - round_number + 1) if self._num_rounds is not None else 0

    def _note_pair_sessions(self, paired: dict[int, ConfigRecord | dict]) -> None:
        """Remember until which round each pair's session keys, from the hellos the aggregator relays."""
        for node, record in paired.items():
            for peer, hello in zip(record.get("to", []), record.get("hellos", []), strict=False):
                try:
                    until = int(json.loads(hello)["until"])
                except (ValueError, KeyError, TypeError):
                    until = 0
                self._pair_until[frozenset((self._directory[node].sae, peer))] = until

    def start(self, grid: Grid, initial_arrays: ArrayRecord, num_rounds: int = 3, *args, **kwargs):
        """Flower's ``start``; the number of rounds tells the last round not to prepare a next one."""
        self._num_rounds, self._next_paired = num_rounds, None
        return super().start(grid, initial_arrays, num_rounds, *args, **kwargs)

    def round_logs(self) -> list[dict]:
        """Every round's log as JSON-ready dicts (participants, dropped, sessions' audit, keys, times)."""
        return [dataclasses.asdict(r) for r in self.rounds]

    # --- Flower's Strategy API -----------------------------------------------------------------------
    def summary(self) -> None:
        """Flower logs this at the start: what this strategy really does (not FedAvg's settings)."""
        p = self.protection
        log(INFO, "\t├──> Sampling: every available organisation each round (at least %d)", self.min_train_nodes)
        log(INFO, "\t├──> Weighted by: %s", "uniform (differential privacy bounds each organisation's influence)"
            if p.weighting == "uniform" else f"'{self.weighted_by_key}', capped at {p.weight_cap_examples:g} (masked)")
        log(INFO, "\t├──> Protection: policy %s (fallback %s), secure aggregation, sealed updates", p.policy.mode,
            p.policy.fallback)
        log(INFO, "\t├──> Differential privacy: %s", f"noise multiplier {p.noise_multiplier:g}, clip norm "
            f"{p.clip_norm:g}" if p.noise_multiplier > 0 else "off")
        log(INFO, "\t└──> Federated evaluation: off (evaluate the global model on held-out data: evaluate_fn)")

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                           grid: Grid) -> Iterable[Message]:
        return []  # evaluation on the nodes would see the global model unprotected: use evaluate_fn

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        return None

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        self._grid = grid
        if self.before_round is not None:
            self.before_round(server_round)
        if self.rounds:  # whoever dropped out of the last round starts its sessions over
            self._restart |= set(self.rounds[-1].dropped)
        log = RoundLog(server_round)
        self.rounds.append(log)
        sample_size = max(int(len(list(grid.get_node_ids())) * self.fraction_train), self.min_train_nodes)
        node_ids, _ = sample_nodes(grid, self.min_available_nodes, sample_size)

        new = [n for n in node_ids if n not in self._directory]
        for node, record in self._query(grid, HELLO, {n: {"round": server_round} for n in new}, log).items():
            self._directory[node] = _Member(str(record["sae"]), public_from_bytes(record["public"]),
                                            record["public"], record["cert"], record["public-sig"])
            self._restart.add(self._directory[node].sae)
        ready = sorted((n for n in node_ids if n in self._directory), key=lambda n: self._directory[n].sae)
        members = [self._directory[n] for n in ready]
        pipelined, self._next_paired = self._next_paired, None
        if pipelined is not None and pipelined["round"] == server_round and pipelined["nodes"] == set(ready):
            paired = pipelined["records"]  # every ready node started its pairs with last round's training
        else:
            pair_fields = self._policy_fields(server_round) | self._pair_fields(members, server_round,
                                                                                restart=self._restart)
            paired = self._query(grid, PAIRS, {n: pair_fields for n in ready}, log)
            self._sessions.forget(self._restart)
            self._restart.clear()  # told: the nodes start those sessions over (the pipelined pairs never need to)
        self._note_pair_sessions(paired)
        for node in _left_out_for_missing_pair_keys(paired, {n: m.sae for n, m in self._directory.items()}, log):
            del paired[node]

        broker = SessionBroker(self.protection.aggregator, self.protection.kme, self.protection.policy,
                               self._audit(log))
        sessions: dict[int, tuple[bytes, bytes]] = {}
        kme = self.protection.kme
        kme.rounds_left = self._rounds_left(server_round) or None
        started, kme_before, requests_before, keys_before = time.perf_counter(), kme.seconds, kme.requests, kme.keys
        for node in ready:
            if node not in paired:
                continue
            sae, public = self._directory[node].sae, self._directory[node].public
            try:
                sessions[node] = self._sessions.initiate(broker, sae, lambda public=public: public, server_round)
            except (NoKeyAvailable, QfabricError) as err:
                log.dropped[sae] = f"no session key: {err}"
                continue
        participants = [n for n in ready if n in sessions]
        log.participants = [self._directory[n].sae for n in participants]
        if len(participants) < self.protection.min_clients:
            log.failed = (f"only {len(participants)} organisations ready (at least {self.protection.min_clients} "
                          f"needed): " + "; ".join(f"{k}: {v}" for k, v in log.dropped.items()))
            self._current = {}
            return []

        k = len(participants)
        p = self.protection
        threshold = p.seed_threshold or secagg.seed_threshold(k - 1)
        if p.double_masking and threshold > k - 1:
            log.failed = (f"double masking with seeds rebuilt from {threshold} shares needs at least {threshold + 1} "
                          f"organisations, {k} are ready")
            self._current = {}
            return []
        log.noise_std = p.noise_multiplier * p.clip_norm / np.sqrt(k)
        bound = max(p.clip_norm, 1.0) + 10 * log.noise_std if p.noise_multiplier > 0 else p.value_bound
        fb = secagg.fractional_bits_for(bound, k)
        global_model = record_to_arrays(arrays)
        shapes = [list(a.shape) for a in global_model]
        pipeline = (p.pipeline_pairs and participants == ready
                    and (self._num_rounds is None or server_round < self._num_rounds))
        next_pairs = ({"next-round": server_round + 1}
                      | self._pair_fields([self._directory[n] for n in participants], server_round + 1, prefix="next-")
                      if pipeline else {})
        messages = []
        for node in participants:
            sae = self._directory[node].sae
            hello, key = sessions[node]
            fields = self._policy_fields(server_round) | {
                "client": sae, "hello": hello, "shapes": shapes,
                "model": encrypt_update(global_model, key, *model_aad(server_round, p.aggregator, sae)),
                STEP: TRAIN, "participants": log.participants, "clip-norm": p.clip_norm, "noise-std": log.noise_std,
                "value-bound": p.value_bound, "weighting": p.weighting,
                "weight-cap-examples": p.weight_cap_examples, "max-clients": k, "fractional-bits": fb,
                "double-masking": p.double_masking, "seed-threshold": threshold,
                "qkd-ahead": kme.ahead(sae),  # keys fetched for the next rounds: the node fetches them at once
                "peer-from": [], "peer-hellos": [], "peer-hello-sigs": [], "peer-certs": [], "peer-ahead": []
            } | p.sign_agreement(hello, server_round, sae) | next_pairs
            for other in participants:
                record = paired[other]
                if sae in record.get("to", []):
                    i = list(record["to"]).index(sae)
                    fields["peer-from"].append(self._directory[other].sae)
                    fields["peer-hellos"].append(record["hellos"][i])
                    fields["peer-hello-sigs"].append(record["hello-sigs"][i])
                    fields["peer-certs"].append(b"" if continues_session(record["hellos"][i])  # no signature to check
                                                else self._directory[other].cert)
                    fields["peer-ahead"].append(record["ahead"][i] if "ahead" in record else "[]")
            content = RecordDict({RECORD: qfabric_record(fields), self.configrecord_key: config})
            messages.append(Message(content, dst_node_id=node, message_type=MESSAGE_TYPE))
        config["server-round"] = server_round
        server_kme = kme.seconds - kme_before  # sessions and sealing: the aggregator's own work
        log.kme_seconds += server_kme
        log.kme_requests += kme.requests - requests_before
        log.qkd_keys += kme.keys - keys_before
        log.crypto_seconds += time.perf_counter() - started - server_kme
        self._current = {"nodes": participants, "sessions": sessions, "model": global_model, "fb": fb,
                         "pipelined": pipeline, "threshold": threshold,
                         "size": sum(a.size for a in global_model) + 1}
        return messages

    def _unmask(self, server_round: int, survivors: list[int], dropped: list[str],
                seed_shares: dict[str, dict[str, bytes]], size: int, threshold: int,
                log: RoundLog) -> list[np.ndarray] | None:
        """The ``unmask`` step: what to take off the sum of the survivors' updates, i.e. the survivors' masks with
        the organisations that dropped out and (double masking) the survivors' self-masks, rebuilt from the seed
        shares the survivors open; None (the round failed, ``log`` says why) if some are missing."""
        names = [self._directory[n].sae for n in survivors]
        fields = self._policy_fields(server_round) | {"dropped": dropped, "survivors": names}
        asks = {}
        for node, holder in zip(survivors, names, strict=True):
            owners = [o for o in names if o != holder and holder in seed_shares.get(o, {})]
            asks[node] = fields | {"share-from": owners, "seed-shares": [seed_shares[o][holder] for o in owners]}
        got = self._query(self._grid, UNMASK, asks, log)
        if len(got) < len(survivors):
            log.failed = "a survivor did not unmask: " + "; ".join(f"{k}: {v}" for k, v in log.dropped.items())
            return None
        out = [unpack(r["share"])[0].view(np.uint32) for r in got.values()]
        if self.protection.double_masking:
            opened: dict[str, list[bytes]] = {o: [] for o in names}
            for node, r in got.items():
                owners, shares = list(r.get("share-from", [])), list(r.get("seed-shares", []))
                if owners != asks[node]["share-from"] or len(shares) != len(owners):
                    log.failed = (f"{self._directory[node].sae} opened seed shares of {owners} ({len(shares)}), asked "
                                  f"for {asks[node]['share-from']}: the round cannot be unmasked")
                    return None
                for owner, share in zip(owners, shares, strict=True):
                    opened[owner].append(share)
            for owner, shares in opened.items():
                if len(shares) < threshold:
                    log.failed = (f"{owner}'s self-mask seed has {len(shares)} of the {threshold} shares that rebuild "
                                  f"it (its peers that dropped out hold the others): the round cannot be unmasked")
                    return None
                out.append(secagg.self_mask(secagg.rebuild_seed(shares), server_round, size))
        return out

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None,
                                                                                       MetricRecord | None]:
        log = self.rounds[-1]
        if not self._current:
            return None, None
        cur, p = self._current, self.protection
        by_node = {m.metadata.src_node_id: m for m in replies}
        masked, contents, survivors = [], [], []
        seed_shares: dict[str, dict[str, bytes]] = {}  # owner -> holder -> its sealed share (double masking)
        for node in cur["nodes"]:
            sae = self._directory[node].sae
            reply = by_node.get(node)
            if reply is None:
                log.dropped[sae] = "no reply to train"
                continue
            if reply.has_error():
                log.dropped[sae] = f"train: {reply.error.reason}"
                continue
            t0 = time.perf_counter()
            try:
                record = read_record(reply.content[RECORD])
                log.add_costs(record)
                [update] = decrypt_update(record["update"], cur["sessions"][node][1], server_round, sae,
                                          [(cur["size"],)])
            except QfabricError as err:  # UpdateRejected (tampered, wrong round or sender) among them
                log.dropped[sae] = str(err)
                continue
            except KeyError as err:
                log.dropped[sae] = f"train: no {err} in the reply"
                continue
            finally:
                log.crypto_seconds += time.perf_counter() - t0
            share_to, sealed = list(record.get("share-to", [])), list(record.get("seed-shares", []))
            peers = sorted(self._directory[n].sae for n in cur["nodes"] if n != node)
            if p.double_masking and (share_to != peers or len(sealed) != len(peers)):
                log.dropped[sae] = f"its {len(sealed)} self-mask seed shares are for {share_to}, not its peers {peers}"
                continue
            masked.append(update.view(np.uint32))
            contents.append(reply.content)
            survivors.append(node)
            seed_shares[sae] = dict(zip(share_to, sealed, strict=True))
        self._current = {}
        if cur["pipelined"] and survivors == cur["nodes"]:  # everyone started the next round's pairs: keep them
            self._next_paired = {"round": server_round + 1, "nodes": set(survivors), "records": {
                node: {k[len("next-"):]: v for k, v in c[RECORD].items() if k.startswith("next-") and k != "next-round"}
                for node, c in zip(survivors, contents, strict=True)}}
        if len(survivors) < p.min_clients:
            log.failed = (f"only {len(survivors)} usable updates (at least {p.min_clients} needed): "
                          + "; ".join(f"{k}: {v}" for k, v in log.dropped.items()))
            return None, None
        dropped = [self._directory[n].sae for n in cur["nodes"] if n not in survivors]
        unmasks = []
        if dropped or p.double_masking:
            unmasks = self._unmask(server_round, survivors, dropped, seed_shares, cur["size"], cur["threshold"], log)
            if unmasks is None:
                return None, None
        started = time.perf_counter()
        total = secagg.aggregate(masked, unmasks, fractional_bits=cur["fb"])
        weight = total[-1]
        if not weight > 0:
            log.failed = f"the sum of the aggregation weights is {weight}: nothing to average"
            return None, None
        average, offset = [], 0
        for a in cur["model"]:
            average.append((a + total[offset : offset + a.size].reshape(a.shape) / weight).astype(np.float32))
            offset += a.size
        with_metrics = [c for c in contents if "metrics" in c]
        metrics = self.train_metrics_aggr_fn(with_metrics, self.weighted_by_key) if with_metrics else None
        log.crypto_seconds += time.perf_counter() - started
        return arrays_to_record(average), metrics
