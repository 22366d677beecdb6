"""Run a scenario's federation: hospitals train on Flower while the simulated network keys their updates.

The pieces, all real: a KME (ETSI GS QKD 014 over mutual TLS on 127.0.0.1, keys in SQLite) fed by the
scenario's QKD links at their simulated secret-key rates, relayed over trusted nodes (one KME per key-management
domain when the SAEs sit in several, forwarding keys to each other: :mod:`qfabric.scenario.keydomains`);
Flower's ServerApp with :class:`~qfabric.apps.federated.strategy.SecureFedAvg`; one ClientApp per organisation with
qfabric's mod, each a separate SAE with its own certificate. Network time is simulated: each round
advances it by ``round_period_s``, and the links' keys accrue over that time. The same federation without
protection (Flower's FedAvg) and centralised training on the pooled data give the baselines.

>>> # report = run_federation(load_scenario("scenarios/three-hospitals.yaml"), workdir="run")
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from flwr.app import Context, RecordDict
from flwr.serverapp.strategy import FedAvg

from qfabric.apps.federated import model
from qfabric.apps.federated.grid import FIRST_NODE_ID, LocalGrid
from qfabric.apps.federated.hospital import Study, plain_app, protected_app, server_app
from qfabric.apps.federated.mod import close_kme_clients
from qfabric.apps.federated.privacy import DpSgd, organisation_epsilon_curve, record_epsilon_curve
from qfabric.apps.federated.quantum import learner_for
from qfabric.apps.federated.strategy import Protection, SecureFedAvg
from qfabric.apps.federated.wire import CA, CERT, KEY, KME_URL, NOISE_SEED, NOISE_SOURCE, SAE_ID, TimedKme
from qfabric.errors import QfabricError
from qfabric.kms.identity import SaeIdentity
from qfabric.kms.policy import Policy
from qfabric.scenario.keydomains import KeyDomains, Way
from qfabric.scenario.schema import FederatedSpec, Scenario
from qfabric.sim.kernel import stream_seed

Progress = Callable[[float, str], None]
TOP_UP_AT = 0.05  # the KMS moves keys into a pool in batches, once 5 % of it is used (not one commit per key)


class KeyBudgetError(QfabricError):
    """The QKD links cannot supply the keys a QKD-only federation needs, and the policy allows no fallback."""


class PrivacyBudgetError(QfabricError):
    """The configured rounds would spend more epsilon than the scenario's ``epsilon_budget``."""


@dataclass(frozen=True)
class PairDemand:
    a: str
    b: str
    path: list[str]
    keys_per_round: int
    supply_keys_per_round: float  # at the simulated rate, the slowest link's share
    links: list[str]
    way: Way | None = None  # its domains, relays and interconnects


def wanted_ways(spec: FederatedSpec, domains: KeyDomains) -> list[Way]:
    """The ways of the SAE pairs a round keys (each organisation with the aggregator, each pair of organisations),
    in the order of the scenario's SAEs; a pair at one node of one domain has none (no pool joins it)."""
    orgs = [o.sae for o in spec.organisations]
    wanted = {tuple(sorted((spec.aggregator, o))) for o in orgs} | {tuple(sorted(p)) for p in
                                                                   itertools.combinations(orgs, 2)}
    order = [s.id for s in domains.scenario.kms.saes if s.id in {spec.aggregator, *orgs}]
    ways = [domains.way(a, b) for a, b in itertools.combinations(order, 2) if tuple(sorted((a, b))) in wanted]
    return [w for w in ways if w is not None]


def key_demand(spec: FederatedSpec, domains: KeyDomains) -> list[PairDemand]:
    """Keys each SAE pair consumes per round (one session key per organisation with the aggregator, one
    pairwise key per pair of organisations) and what its usual chain of links supplies in a round now.

    A link's key rate is shared among the SAE pairs whose path crosses it; across domains, the slowest part of
    the way (a relay inside a domain or an interconnect, :meth:`KeyDomains.limits`) bounds the pair."""
    ways = wanted_ways(spec, domains)
    out = []
    for w in ways:
        parts = domains.limits(w, ways, domains.supplies[0].now_s, period_s=spec.round_period_s)
        out.append(PairDemand(w.a, w.b, w.path, 1, min(coming for _, coming, _ in parts), domains.links_of(w), w))
    return out


def check_budget(spec: FederatedSpec, domains: KeyDomains, demand: list[PairDemand], rounds: int) -> None:
    """Before starting: under a QKD-only policy with no fallback, every pair must be covered for every round by
    its pool and what its usual chain of links will supply until the last round, faults included (a reroute
    over other links may add more: the check is conservative). Across domains every part of the way must: each
    relay pool and interconnect, with what it holds and supplies shared among the pairs that use it."""
    if spec.policy != "qkd-only" or spec.fallback == "pq-only":
        return
    t0 = domains.supplies[0].now_s
    t1 = t0 + (rounds - 1) * spec.round_period_s
    short = []
    for d in demand:
        stock, coming, links = min(domains.limits(d.way, [x.way for x in demand], t0, t1), key=lambda p: p[0] + p[1])
        available = stock + coming
        needed = d.keys_per_round * rounds
        if available < needed:
            where = "in the pool" if len(d.way.segments) == 1 else f"in stock on {', '.join(links)}"
            short.append(f"{d.a}-{d.b} needs {needed} keys ({d.keys_per_round}/round x {rounds} rounds), the links "
                         f"({', '.join(d.links)}) supply {available:.0f} ({stock:.0f} {where} "
                         f"+ {coming:.1f} over the next {rounds - 1} rounds)")
    if short:
        raise KeyBudgetError(f"not enough QKD keys for {rounds} rounds under the qkd-only policy with fallback "
                             f"{spec.fallback!r}: " + "; ".join(short) + ". Use fewer rounds, a longer "
                             "round_period_s, policy hybrid with fallback pq-only, or fix the links.")


def centralised_baseline(split, params: list[np.ndarray], rounds: int, epochs: int, batch_size: int,
                         learning_rate: float, seed: int, learner=model) -> list[dict]:
    """The same model, from the same initial ``params``, trained on the pooled data, ``epochs`` per round,
    evaluated after each round."""
    rng = np.random.default_rng([seed, 7])
    pooled = split.pooled
    curve = [{"round": 0, **learner.evaluate(params, split.test.X, split.test.y)}]
    for r in range(1, rounds + 1):
        params, _ = learner.train(params, pooled.X, pooled.y, epochs, batch_size, learning_rate, rng)
        curve.append({"round": r, **learner.evaluate(params, split.test.X, split.test.y)})
    return curve


@dataclass
class _Setup:
    study: Study
    train_config: dict
    run_config: dict


def _setup(scenario: Scenario, spec: FederatedSpec, private: bool = True) -> _Setup:
    """The run's data, model and configs; ``private``: with the spec's record-level DP (DP-SGD) in training."""
    shares = [o.data_share for o in spec.organisations]
    kind = "classical" if spec.model == "classical" else f"vqc:{spec.vqc.qubits}:{spec.vqc.layers}"
    train_config = {"local-epochs": spec.local_epochs, "batch-size": spec.batch_size,
                    "learning-rate": spec.learning_rate}
    dp = spec.privacy
    if private and dp.unit == "record" and dp.noise_multiplier > 0:
        train_config |= {"dp-clip-norm": dp.clip_norm, "dp-noise-multiplier": dp.noise_multiplier}
    return _Setup(Study.create(shares, scenario.seed, spec.hidden_layers, spec.test_fraction, spec.dataset, kind),
                  train_config,
                  {"dataset": spec.dataset, "data-shares": ",".join(repr(s) for s in shares),
                   "data-seed": scenario.seed, "test-fraction": spec.test_fraction, "model": kind})


FINAL_WINDOW = 5  # the final accuracy is the mean (and spread) over the last rounds, not one round
WEAK_EPSILON = 10.0  # above this, say in plain words that the privacy guarantee is weak


def final_accuracy(curve: list[dict] | None, window: int = FINAL_WINDOW) -> dict | None:
    """Test accuracy over the last ``window`` rounds of a curve: mean, standard deviation, range, and the last.

    >>> final_accuracy([{"round": 0, "accuracy": 0.4}, {"round": 1, "accuracy": 0.8}, {"round": 2, "accuracy": 0.9}], 2)
    {'mean': 0.85, 'std': 0.05, 'min': 0.8, 'max': 0.9, 'last': 0.9, 'rounds': [1, 2]}
    """
    if not curve:
        return None
    tail = [c for c in curve if c["round"] > 0][-window:] or curve[-1:]
    acc = np.array([c["accuracy"] for c in tail])
    return {"mean": round(float(acc.mean()), 12), "std": round(float(acc.std()), 12), "min": float(acc.min()),
            "max": float(acc.max()), "last": float(acc[-1]), "rounds": [c["round"] for c in tail]}


def privacy_warning(epsilon: float | None, unit: str = "organisation") -> str | None:
    """Plain words for a weak guarantee (epsilon above 10), None otherwise.

    >>> privacy_warning(3.0) is None, privacy_warning(30.0)[:23]
    (True, 'epsilon 30 is weak: an ')
    """
    if epsilon is None or epsilon <= WEAK_EPSILON:
        return None
    subject, remedy = (("whether one patient's record was in the training data or what it says", "fewer rounds or "
                        "local epochs, or a smaller batch_size") if unit == "record" else
                       ("whether one organisation took part or what its data says", "fewer rounds, or more "
                        "organisations per round"))
    return (f"epsilon {epsilon:.3g} is weak: an observer of the models may become up to e^{epsilon:.3g} "
            f"(~{math.exp(min(epsilon, 700)):.1g}) times more confident about {subject}. Protection this weak is "
            f"mostly nominal: use more noise (noise_multiplier), {remedy}.")


def epsilon_curve(spec: FederatedSpec, examples: list[int], rounds: int) -> list[float] | None:
    """Epsilon spent after each round (None without DP), at the spec's unit of privacy; ``examples``: each
    organisation's records (record-level DP is accounted per organisation, the largest reported)."""
    dp = spec.privacy
    if dp.noise_multiplier <= 0:
        return None
    if dp.unit == "record":
        return record_epsilon_curve(DpSgd(dp.clip_norm, dp.noise_multiplier), examples, spec.batch_size,
                                    spec.local_epochs, rounds, dp.delta)
    return organisation_epsilon_curve(dp.noise_multiplier, rounds, dp.delta)


def check_privacy_budget(spec: FederatedSpec, examples: list[int], rounds: int) -> list[float] | None:
    """:func:`epsilon_curve`; raises when its last epsilon exceeds ``epsilon_budget``."""
    dp = spec.privacy
    curve = epsilon_curve(spec, examples, rounds)
    if curve and dp.epsilon_budget is not None and curve[-1] > dp.epsilon_budget:
        knobs = ("fewer rounds or local_epochs, a smaller batch_size" if dp.unit == "record" else "fewer rounds")
        raise PrivacyBudgetError(f"federated.privacy.epsilon_budget: {rounds} rounds at noise_multiplier "
                                 f"{dp.noise_multiplier:g} ({dp.unit}-level DP) spend epsilon {curve[-1]:.3g} (delta "
                                 f"{dp.delta:g}), more than the budget {dp.epsilon_budget:g}. Use {knobs} or a "
                                 "larger noise_multiplier, or raise the budget.")
    return curve


def run_plain(scenario: Scenario, spec: FederatedSpec, rounds: int) -> dict:
    """The same federation on Flower's FedAvg without any protection (the comparison run)."""
    s = _setup(scenario, spec, private=False)
    grid = LocalGrid(plain_app, [{"partition-id": i} for i in range(len(spec.organisations))], s.run_config)
    _silence_flower()
    strategy = FedAvg(fraction_evaluate=0.0, min_train_nodes=spec.min_clients,
                      min_available_nodes=spec.min_clients)
    results: dict = {}
    t0 = time.perf_counter()
    with _seeded_python_random(scenario.seed):
        server_app(strategy, s.study.initial, rounds, s.train_config, s.study.evaluate, results)(grid,
                                                                                                _server_context(s))
    return {"curve": s.study.history, "wall_s": time.perf_counter() - t0,
            "client_seconds": grid.stats.client_seconds,
            "bytes": grid.stats.bytes_to_nodes + grid.stats.bytes_from_nodes}


@contextlib.contextmanager
def _seeded_python_random(seed: int):
    """Python's global ``random`` seeded from the scenario, restored after: Flower's FedAvg samples the nodes of
    a round with it, and the order of the replies is the order of its float32 sum, whose last bits Adam turns
    into different models over rounds (an unseeded plain run varied by 0.001 in accuracy from run to run)."""
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)


def _server_context(s: _Setup) -> Context:
    return Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config=dict(s.run_config))


def _silence_flower() -> None:
    import logging

    logging.getLogger("flwr").setLevel(logging.ERROR)  # its INFO lines would bury the progress display


def run_federation(scenario: Scenario, *, rounds: int | None = None, policy: str | None = None,
                   fallback: str | None = None, workdir: str | Path | None = None, rate_scale: float = 1.0,
                   progress: Progress | None = None, client_app=None, node_overrides: dict | None = None,
                   entanglement: dict | None = None) -> dict:
    """Run the scenario's ``federated`` section end to end; returns the JSON-ready report section.

    ``client_app`` replaces the hospitals' protected ClientApp and ``node_overrides`` (SAE -> node config
    entries) change a node's configuration: both for fault injection in tests. ``entanglement``: the pairs the
    network delivered (:func:`~qfabric.scenario.build.delivered_pairs`), when the caller has simulated it already."""
    if scenario.federated is None or scenario.kms is None:
        raise QfabricError(f"scenario {scenario.name!r} has no federated section (and kms section)")
    spec = scenario.federated
    updates = {k: v for k, v in (("rounds", rounds), ("policy", policy), ("fallback", fallback)) if v is not None}
    if updates:
        spec = spec.model_copy(update=updates)
    rounds = spec.rounds
    setup = _setup(scenario, spec)  # the protected run's data and model
    epsilons = check_privacy_budget(spec, [len(p.y) for p in setup.study.split.partitions], rounds)
    progress = progress or (lambda fraction, label: None)
    with model.one_blas_thread(), contextlib.ExitStack() as stack:  # small matrices: one BLAS thread is faster
        if workdir is None:
            workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="qfabric-fl-"))
        Path(workdir).mkdir(parents=True, exist_ok=True)
        return _run(scenario, spec, rounds, Path(workdir), rate_scale, progress, client_app, node_overrides or {},
                    entanglement, setup, epsilons)


def _run(scenario: Scenario, spec: FederatedSpec, rounds: int, workdir: Path, rate_scale: float,
         progress: Progress, client_app, node_overrides: dict, entanglement: dict | None, s: _Setup,
         epsilons: list[float] | None) -> dict:
    t_start = time.perf_counter()
    orgs = [o.sae for o in spec.organisations]
    saes = [spec.aggregator, *orgs]
    qrng = None
    if scenario.randomness.relay_keys == "qrng":  # relayed keys from the simulated QRNG, seeded from the scenario
        from qfabric.apps.qrng import Qrng

        qrng = Qrng(seed=int(stream_seed(scenario.seed, "qrng/relay-keys").generate_state(1)[0]))
    # one KME per domain with an SAE of the federation or on the way between two (one in all, mostly)
    domains = KeyDomains(scenario, saes, workdir, rate_scale=rate_scale, entanglement=entanglement,
                         top_up_at=TOP_UP_AT, relay_random=qrng.random_bytes if qrng is not None else None)
    pki = domains.pki
    progress(0.02, "distilling the QKD links' first keys")
    t_qkd = time.perf_counter()
    link_rates = domains.prime()
    domains.tick(spec.warmup_s)
    qkd_supply_s = time.perf_counter() - t_qkd
    demand = key_demand(spec, domains)
    check_budget(spec, domains, demand, rounds)

    organisation_dp = spec.privacy.unit == "organisation"  # the mod clips and noises updates; record: DP-SGD
    progress(0.1, "centralised baseline")
    centralised = centralised_baseline(s.study.split, s.study.initial, rounds, spec.local_epochs, spec.batch_size,
                                       spec.learning_rate, scenario.seed, learner_for(s.study.kind)) \
        if spec.compare_plain else None
    plain = run_plain(scenario, spec, rounds) if spec.compare_plain else None
    progress(0.12, "protected federation")

    domains.start()
    clients = {sae: domains.client(sae) for sae in saes}
    try:  # each organisation (and the aggregator) at its own KME
        node_configs = [{"partition-id": i, SAE_ID: sae, KME_URL: domains.url_of(sae), CERT: str(pki[sae]),
                         KEY: str(pki[f"{sae}.key"]), CA: str(pki["ca"]), NOISE_SEED: scenario.seed * 1000 + i,
                         NOISE_SOURCE: scenario.randomness.dp_noise}
                        | node_overrides.get(sae, {}) for i, sae in enumerate(orgs)]
        grid = LocalGrid(client_app or protected_app, node_configs, s.run_config)
        node_of = {sae: FIRST_NODE_ID + i for i, sae in enumerate(orgs)}
        wait_policy = spec.fallback == "wait"
        policy = Policy(mode=spec.policy, fallback="none" if wait_policy else spec.fallback,
                        qber_threshold=spec.qber_threshold)
        protection = Protection(spec.aggregator, TimedKme(clients[spec.aggregator],
                                                          keys_per_request=spec.keys_per_request), policy,
                                clip_norm=spec.privacy.clip_norm,
                                noise_multiplier=spec.privacy.noise_multiplier if organisation_dp else 0.0,
                                weight_cap_examples=float(max(len(p.y) for p in s.study.split.partitions)),
                                min_clients=spec.min_clients, session_rounds=spec.session_rounds,
                                double_masking=spec.secure_aggregation == "double-masking",
                                seed_threshold=spec.seed_threshold,
                                identity=SaeIdentity.load(pki[spec.aggregator], pki[f"{spec.aggregator}.key"],
                                                          pki["ca"]))
        timeline: list[dict] = []
        clock = {"simulated_s": spec.warmup_s, "last": None}

        def pools() -> dict[str, int]:  # across domains: the scarcest stock on the pair's way
            return {f"{d.a}|{d.b}": domains.stock(d.way) for d in demand}

        def before_round(server_round: int) -> None:
            now = t_supply = time.perf_counter()  # the network's simulation and its record: not the rounds' time
            if clock["last"] is not None:
                timeline[-1]["wall_s"] = now - clock["last"]
                timeline[-1]["pools_after"] = pools()
            clock["last"] = now
            before = pools()
            if server_round > 1:
                domains.tick(spec.round_period_s)
                clock["simulated_s"] += spec.round_period_s
            waited = 0.0
            if wait_policy:
                while min(pools().values()) < 1 and waited < spec.max_wait_s:
                    step = min(spec.round_period_s / 10, spec.max_wait_s - waited)
                    domains.tick(step)
                    waited += step
                clock["simulated_s"] += waited
            grid.silent_in_training = {node_of[d.sae] for d in spec.dropouts if d.round == server_round}
            after = pools()
            timeline.append({"round": server_round, "simulated_s": clock["simulated_s"], "pools_before": before,
                             "supplied": {k: after[k] - before[k] for k in after}, "pools_start": after,
                             "links": domains.links_now(),
                             "relay_paths": {f"{d.a}|{d.b}": domains.path_now(d.way) for d in demand},
                             "waited_s": waited,
                             "offline": sorted(d.sae for d in spec.dropouts if d.round == server_round)})
            if domains.multi:  # what each KME holds: its relay pools and its ends of the interconnects' pads
                timeline[-1]["domains"] = domains.domain_state()
            progress(0.15 + 0.8 * (server_round - 1) / rounds, f"round {server_round}/{rounds}")
            timeline[-1]["supply_simulation_s"] = time.perf_counter() - t_supply

        _silence_flower()
        strategy = SecureFedAvg(protection, before_round=before_round)
        results: dict = {}
        t_fl = time.perf_counter()
        app = server_app(strategy, s.study.initial, rounds, s.train_config, s.study.evaluate, results)
        app(grid, _server_context(s))
        fl_wall = time.perf_counter() - t_fl
        if timeline:
            timeline[-1]["wall_s"] = time.perf_counter() - clock["last"]
            timeline[-1]["pools_after"] = pools()
        accounting = {f"{d.a}|{d.b}": domains.accounting(d.way) for d in demand}
        forwarding = domains.forwarding()  # the federation's run only: before the comparison run below
        no_dp = None
        if spec.compare_plain and spec.privacy.noise_multiplier > 0:  # the third run: protected, without DP
            progress(0.95, "protected federation without differential privacy")
            no_dp = _setup(scenario, spec, private=False)
            no_dp_grid = LocalGrid(client_app or protected_app, node_configs, s.run_config)
            unnoised = dataclasses.replace(protection, noise_multiplier=0.0, kme=TimedKme(
                clients[spec.aggregator], keys_per_request=spec.keys_per_request))
            server_app(SecureFedAvg(unnoised), no_dp.study.initial, rounds, no_dp.train_config, no_dp.study.evaluate,
                       {})(no_dp_grid, _server_context(no_dp))
    finally:
        for c in clients.values():
            c.close()
        close_kme_clients()
        domains.stop()
    progress(1.0, "done")
    return _report(scenario, spec, rounds, s, strategy, timeline, link_rates, domains, demand, plain, centralised,
                   grid, fl_wall, qkd_supply_s, time.perf_counter() - t_start, accounting, forwarding,
                   no_dp.study.history if no_dp else None, qrng.blocks if qrng is not None else None, epsilons)


def _sources(domains: KeyDomains, d: PairDemand, accounting: dict) -> dict[str, int]:
    """Where a pair's keys came from: end to end (BBM92) or relayed inside its domain; across domains, relayed and
    forwarded between the KMEs (every key the masters' KMEs handed out)."""
    if len(d.way.segments) == 1:
        supply = domains.domains[d.way.kmes[0]].supply
        return dict(supply.sources.get((d.a, d.b)) or supply.sources[(d.b, d.a)])
    return {"bbm92_end_to_end": 0, "trusted_relay": accounting["keys_delivered"],
            "forwarded": accounting["keys_delivered"]}


PRIVACY_MODELS = {
    "record": "record-level DP (DP-SGD): each organisation trains on Poisson samples of its records, clips every "
              "record's gradient and adds Gaussian noise to each step's sum; protects any one patient's record, "
              "against the aggregator, the other organisations and anyone who sees a model; accounted per "
              "organisation, the largest epsilon reported",
    "organisation": "organisation-level DP: each organisation clips its whole update and adds its share of Gaussian "
                    "noise, so the secure sum carries noise z C (distributed DP, relying on secure aggregation); "
                    "all organisations sampled every round; protects whether one organisation took part and what "
                    "its data says, against the aggregator and other observers of the aggregates",
}


def _privacy_report(scenario: Scenario, spec: FederatedSpec, s: _Setup, epsilons: list[float]) -> dict:
    dp = spec.privacy
    report = {"noise_multiplier": dp.noise_multiplier, "clip_norm": dp.clip_norm,
              "noise_source": scenario.randomness.dp_noise, "delta": dp.delta, "epsilon_budget": dp.epsilon_budget,
              "epsilon_by_round": [{"round": r, "epsilon": e} for r, e in enumerate(epsilons, start=1)],
              "level": dp.unit, "warning": privacy_warning(epsilons[-1], dp.unit), "model": PRIVACY_MODELS[dp.unit]}
    if dp.unit == "record":
        report["dp_sgd"] = [{"sae": o.sae, "examples": len(p.y),
                             "sampling_rate": DpSgd.sampling_rate(len(p.y), spec.batch_size),
                             "steps_per_round": DpSgd.steps(len(p.y), spec.batch_size, spec.local_epochs)}
                            for o, p in zip(spec.organisations, s.study.split.partitions, strict=True)]
    return report


def _report(scenario, spec, rounds, s, strategy, timeline, link_rates, domains, demand, plain, centralised, grid,
            fl_wall, qkd_supply_s, total_wall, accounting, forwarding, no_dp_curve, qrng_blocks, epsilons) -> dict:
    supply = domains.supplies[0]
    per_round = []
    for log, tl in zip(strategy.rounds, timeline, strict=False):
        fallbacks = [e for e in log.audit if e.get("event") == "fallback"]
        modes, handshakes = {}, 0
        for e in log.audit:
            if e.get("event") == "session":
                modes[e["mode"]] = modes.get(e["mode"], 0) + 1
                handshakes += e.get("handshake", True)  # a key agreement, not a kept session's next round
        per_round.append({
            "round": log.round, "participants": log.participants, "dropped": log.dropped, "failed": log.failed,
            "sessions_by_mode": modes, "key_agreements": handshakes, "fallbacks": fallbacks,
            "qkd_keys_fetched": log.qkd_keys,
            "kme_seconds": log.kme_seconds, "kme_requests": log.kme_requests, "crypto_seconds": log.crypto_seconds,
            "train_seconds": log.train_seconds, "noise_std": log.noise_std, **tl,
        })
    secure_curve = s.study.history
    privacy = _privacy_report(scenario, spec, s, epsilons) if epsilons else None
    wall = {k: sum(r[k] for r in per_round) for k in ("kme_seconds", "crypto_seconds", "train_seconds",
                                                      "supply_simulation_s")}
    rounds_s = fl_wall - wall["supply_simulation_s"]  # what the organisations would see: no network simulation
    completed = [r for r in per_round if not r["failed"]]
    dp_on = spec.privacy.noise_multiplier > 0
    runs = {"plain": final_accuracy(plain["curve"] if plain else None),
            "secure_no_dp": final_accuracy(no_dp_curve if dp_on else secure_curve),
            "secure_dp": final_accuracy(secure_curve) if dp_on else None,
            "centralised": final_accuracy(centralised)}
    return {
        "rounds_requested": rounds, "rounds_completed": len(completed),
        "organisations": [{"sae": o.sae, "data_share": o.data_share, "examples": len(p.y)}
                          for o, p in zip(spec.organisations, s.study.split.partitions, strict=True)],
        "aggregator": spec.aggregator, "test_examples": len(s.study.split.test.y),
        "model": {"kind": (f"variational classifier ({spec.vqc.qubits} qubits, {spec.vqc.layers} layers)"
                           if spec.model == "vqc" else "MLP" if len(s.study.layers) > 2 else "logistic regression"),
                  "layers": s.study.layers, "parameters": learner_for(s.study.kind).n_params(s.study.initial)},
        "training": {"dataset": spec.dataset, "local_epochs": spec.local_epochs, "batch_size": spec.batch_size,
                     "learning_rate": spec.learning_rate},
        "policy": {"mode": spec.policy, "fallback": spec.fallback, "qber_threshold": spec.qber_threshold},
        "secure_aggregation": {"mode": spec.secure_aggregation, "seed_threshold": spec.seed_threshold},
        "round_period_s": spec.round_period_s, "warmup_s": spec.warmup_s,
        "key_supply": {
            "link_rates_bps": link_rates, "rate_scale": supply.rate_scale, "unit_bits": supply.unit_bits,
            "relay_key_source": scenario.randomness.relay_keys,
            "qrng_relay_blocks": qrng_blocks,  # extracted QRNG blocks the relayed keys drew, or None
            "pairs": [{"pair": f"{d.a}|{d.b}", "path": d.path, "links": d.links, "keys_per_round": d.keys_per_round,
                       "supply_keys_per_round": d.supply_keys_per_round,
                       "hops": len(d.path) - 1, "kmes": d.way.kmes} for d in demand],
            "accounting": accounting,  # the run on the network's timeline (not the comparison runs)
            "sources": {f"{d.a}|{d.b}": _sources(domains, d, accounting[f"{d.a}|{d.b}"]) for d in demand},
            "end_to_end": [{"between": [f.a, f.b], "service": f.name, "request": f.request, "pairs": f.pairs,
                            "qber": f.qber, "blocks": len(f.blocks), "key_units": f.released_units,
                            "first_key_s": f.blocks[0][0] if f.blocks else None}
                           for x in domains.supplies for f in x.e2e.values()],
            # each KME of the run, and the keys its audit log records forwarded to, from and through it
            "domains": [{"kme": kme, "nodes": next(k.nodes for k in scenario.kms.kmes if k.id == kme),
                         "saes": [x for x in [spec.aggregator, *(o.sae for o in spec.organisations)]
                                  if domains.kme_of[x] == kme],
                         "neighbours": {n: c.spec.name for n, c in d.supply.neighbours.items() if n in domains.domains},
                         **forwarding[kme]} for kme, d in domains.domains.items()],
            "forwarded_keys": sum(f["forward_out"] for f in forwarding.values()),  # between domains, by the masters'
        },
        "per_round": per_round,
        "fallbacks": [f | {"round": r["round"]} for r in per_round for f in r["fallbacks"]],
        "curves": {"secure": secure_curve, "secure_no_dp": no_dp_curve, "plain": plain["curve"] if plain else None,
                   "centralised": centralised},
        # each run's test accuracy over its last rounds (mean, spread); *_accuracy: those means
        "final": {"window_rounds": FINAL_WINDOW, "runs": runs,
                  "secure_accuracy": runs["secure_dp" if dp_on else "secure_no_dp"]["mean"] if secure_curve else None,
                  "plain_accuracy": runs["plain"]["mean"] if plain else None,
                  "centralised_accuracy": runs["centralised"]["mean"] if centralised else None},
        "privacy": privacy,
        "wall_time": {"federation_s": fl_wall, "protected_rounds_s": rounds_s, "total_s": total_wall,
                      "qkd_first_distillation_s": qkd_supply_s, **wall,
                      "plain_federation_s": plain["wall_s"] if plain else None,
                      "protection_share_of_rounds": (wall["kme_seconds"] + wall["crypto_seconds"]) / rounds_s
                      if rounds_s > 0 else None},
        "wire": {"messages": grid.stats.messages, "bytes_to_nodes": grid.stats.bytes_to_nodes,
                 "bytes_from_nodes": grid.stats.bytes_from_nodes, "by_type": grid.stats.by_type},
        "epsilon": privacy["epsilon_by_round"][-1]["epsilon"] if privacy else None,
    }
