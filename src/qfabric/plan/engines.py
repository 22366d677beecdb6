"""Run one sweep point: the event engine (``run_scenario``) or, for a homogeneous chain, the batch engine; either
way a flat row of SLIs.

The batch engine (:mod:`qfabric.network.batch`) runs the standard discrete chain model. A scenario maps onto it
(:func:`batch_model`) when it is one ``chain`` request over identical links and repeaters, one memory qubit per
link end, no purification, swap handshake, faults, tenants, arrivals, federation or BBM92, and
``regenerate_covered: false``. Then one step is a link's attempt period, ``p_gen`` its success probability,
the cut-off ``floor(cutoff_s / period)`` steps, and the delivered state is exact for Bell-diagonal pairs with
Pauli memory noise: swaps and storage multiply the pair's Fourier components, so the heralded state, the swaps'
depolarising noise and the memories' decay rates give each trial's fidelity from its storage time. What the
batch model leaves out: classical messages (a pair is delivered in the step its last swap happens, and failures
are known at once) and the pipelining of a running chain (each trial starts from an empty chain). The rate is
``1 / (mean steps x period)``; ``pairs_delivered`` is that rate times the duration (an expectation) and
``time_to_first_pair_s`` the mean wait.

>>> flatten_report({"requests": [{"name": "r", "rate_hz": 2.0, "pairs_delivered": 4}], "qkd": []})["r.rate_hz"]
2.0
"""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REQUEST_FIELDS = ("pairs_delivered", "rate_hz", "time_to_first_pair_s", "qber_z_mean", "qber_x_mean", "swaps",
                  "swaps_failed", "cutoff_discards", "below_fidelity_discards", "share_of_target")
QKD_FIELDS = ("secret_key_rate_bps", "qber", "key_bits", "key_bits_over_run", "aborted_blocks")
DISTRIBUTED_FIELDS = ("mean_pair_fidelity", "remote_cnot_gate_fidelity", "pair_rate_hz", "kernel_error_mean",
                      "kernel_error_max", "time_to_solution_s")


def flatten_report(report: dict) -> dict[str, Any]:
    """Every SLI of a run report as ``{column: number}``: per request ``<request>.<sli>`` (rate, fidelity,
    waiting time, SLO state...), per QKD service ``qkd.<service>.<sli>`` (key rate, QBER), and a kernel over two
    processors' ``distributed.<sli>`` (pair and gate fidelity, kernel error, accuracies, time to solution)."""
    row: dict[str, Any] = {}
    for req in report.get("requests", []):
        name = req["name"]
        for field in REQUEST_FIELDS:
            if field in req:
                row[f"{name}.{field}"] = req[field]
        fid = req.get("fidelity") or {}
        for stat in ("mean", "p5", "p50"):
            row[f"{name}.fidelity_{stat}"] = fid.get(stat)
        wait = req.get("waiting_time_s") or {}
        for stat in ("mean", "p50", "p99"):
            row[f"{name}.waiting_time_{stat}_s"] = wait.get(stat)
        refused = req.get("refused")
        row[f"{name}.refused"] = bool(refused) if refused is not None else False
        slo = req.get("slo")
        if slo is not None:
            row[f"{name}.slo_met"] = bool(slo.get("met"))
            row[f"{name}.slo_availability"] = slo.get("availability")
            row[f"{name}.slo_violations"] = len(slo.get("violations") or [])
        row[f"{name}.stalled"] = req.get("stalled_since_s") is not None
    for q in report.get("qkd", []):
        for field in QKD_FIELDS:
            if field in q:
                row[f"qkd.{q['name']}.{field}"] = q[field]
    distributed = report.get("distributed")
    if distributed:  # the kernel over two processors: its quality against the pairs' rate and fidelity
        for field in DISTRIBUTED_FIELDS:
            row[f"distributed.{field}"] = distributed[field]
        for kernel, accuracy in distributed["accuracy"].items():
            row[f"distributed.accuracy_{kernel}"] = accuracy
    return row


# ---- the batch engine's view of a scenario ------------------------------------------------------------------


@dataclass(frozen=True)
class ChainModel:
    """A scenario's request as the standard discrete chain model (times in steps of ``period_s``)."""

    segments: int
    p_gen: float
    p_swap: float
    period_s: float
    cutoff: int | list[int | None] | None
    scheme: str
    link_age: str
    heralded: tuple[float, float, float, float]  # Bell-diagonal weights of a fresh pair (Phi+, Psi+, Phi-, Psi-)
    herald_delay_s: float  # stored before its herald arrives
    memory_rates: tuple[float, float, float]  # per pair (both halves), 1/s, on the Fourier components
    swap_depolarising: float


def _fourier(w) -> tuple[float, float, float]:
    return (w[0] - w[1] + w[2] - w[3], w[0] + w[1] - w[2] - w[3], w[0] - w[1] - w[2] + w[3])


def batch_model(scenario) -> ChainModel | str:
    """The scenario's chain as a :class:`ChainModel`, or the reason the batch engine does not apply."""
    from qfabric.scenario.graph import heralded_link, link_profile, resolve_profiles, side_capacities

    if scenario.chain is None:
        return "not a chain scenario (requests or arrivals)"
    blockers = [(scenario.faults or scenario.random_faults, "faults"), (scenario.tenants, "tenants"),
                (scenario.arrivals, "arrivals"), (scenario.federated, "a federation"),
                (any(q.protocol == "bbm92" for q in scenario.qkd), "BBM92 on the pairs")]
    chain = scenario.chain
    blockers += [(chain.purification and chain.purification.rounds, "purification"),
                 (chain.swap_handshake, "swap handshakes"), (chain.regenerate_covered, "regenerate_covered (the "
                                                                                        "batch model restarts empty)"),
                 (chain.scheme not in ("swap-asap", "nested"), f"the {chain.scheme} scheme")]
    for present, what in blockers:
        if present:
            return f"the batch engine does not model {what}"
    request = scenario.all_requests()[0]
    from qfabric.control.routing import compute_routes
    from qfabric.scenario.graph import routing_graph

    profiles = resolve_profiles(scenario)
    links = {spec.name: heralded_link(spec, link_profile(profiles, spec)) for spec in scenario.links}
    path = compute_routes(routing_graph(scenario, links), [(request.name, request.source, request.target)],
                          scenario.routing.metric, 1, {request.name: request.path} if request.path else None)
    path = path[request.name][0]
    specs = [next(s for s in scenario.links if set(s.between) == {a, b}) for a, b in zip(path, path[1:], strict=False)]
    if chain.scheme == "nested" and len(specs) & (len(specs) - 1):
        return f"the batch engine's nested scheme needs a power of two links, the path has {len(specs)}"
    heralded = [links[s.name] for s in specs]
    first = heralded[0]
    keys = {(h.success_probability, h.attempt_period_s, h.heralded_state.weights, h.herald_delay_s,
             link_profile(profiles, s).memory) for h, s in zip(heralded, specs, strict=True)}
    if len(keys) > 1:
        return "the links of the path differ (the batch engine runs homogeneous chains)"
    capacity = side_capacities(scenario, profiles)
    if any(capacity[(end, s.name)] != 1 for s in specs for end in s.between):
        return "more than one memory qubit per link end (the batch model has one)"
    by_name = {n.name: n for n in scenario.nodes}
    swaps = set()
    for node in path[1:-1]:
        spec = by_name[node]
        prof = profiles[spec.profile] if spec.profile else link_profile(
            profiles, next(s for s in scenario.links if node in s.between))
        swaps.add((prof.swap_success_probability, prof.swap_depolarising))
    if len(swaps) > 1:
        return "the repeaters differ (the batch engine runs homogeneous chains)"
    p_swap, depol = swaps.pop() if swaps else (1.0, 0.0)
    period = first.attempt_period_s
    cutoff: Any = None
    if chain.cutoff_s is not None:
        levels = max(len(specs).bit_length() - 1, 1) if chain.scheme == "nested" else 1
        cutoffs = chain.cutoff_s if isinstance(chain.cutoff_s, list) else [chain.cutoff_s] * levels  # as the engine
        cutoff = [int(math.floor(c / period + 1e-9)) for c in cutoffs]
        cutoff = cutoff if chain.scheme == "nested" else cutoff[0]
    memory = link_profile(profiles, specs[0]).memory
    return ChainModel(segments=len(specs), p_gen=first.success_probability, p_swap=p_swap, period_s=period,
                      cutoff=cutoff, scheme=chain.scheme, link_age=chain.link_age,
                      heralded=tuple(first.heralded_state.weights), herald_delay_s=first.herald_delay_s,
                      memory_rates=tuple(2.0 * r for r in memory.decay_rates), swap_depolarising=depol)


def batch_fidelities(model: ChainModel, stored) -> Any:
    """Fidelity of each delivered pair from the steps its parts were stored (Bell-diagonal, exact)."""
    import numpy as np

    from qfabric.states.bell import depolarising_probabilities

    n = model.segments
    fresh = _fourier(model.heralded)
    swap = _fourier(depolarising_probabilities(model.swap_depolarising))
    stored_s = np.asarray(stored, dtype=float) * model.period_s + n * model.herald_delay_s
    total = np.ones_like(stored_s)
    for k in range(3):
        total = total + fresh[k] ** n * swap[k] ** (n - 1) * np.exp(-model.memory_rates[k] * stored_s)
    return total / 4.0


def run_batch(scenario, model: ChainModel, trials: int, seed: int) -> dict[str, Any]:
    """The batch engine's SLIs of the scenario's chain, named as :func:`flatten_report` names them."""
    import numpy as np

    from qfabric.network.batch import chain_trials
    from qfabric.sim.kernel import stream_seed

    run = chain_trials(model.segments, model.p_gen, model.p_swap, model.cutoff, model.scheme, trials,
                       stream_seed(seed, "batch/chain"), link_age=model.link_age)
    fidelity = batch_fidelities(model, run.stored)
    waits_s = run.waits * model.period_s
    mean_wait = float(waits_s.mean())
    rate = 1.0 / mean_wait
    name = "chain"
    row: dict[str, Any] = {
        f"{name}.pairs_delivered": rate * scenario.duration_s,
        f"{name}.rate_hz": rate,
        f"{name}.time_to_first_pair_s": mean_wait,
        f"{name}.fidelity_mean": float(fidelity.mean()),
        f"{name}.fidelity_p5": float(np.percentile(fidelity, 5)),
        f"{name}.fidelity_p50": float(np.percentile(fidelity, 50)),
        f"{name}.waiting_time_mean_s": mean_wait,
        f"{name}.waiting_time_p50_s": float(np.percentile(waits_s, 50)),
        f"{name}.waiting_time_p99_s": float(np.percentile(waits_s, 99)),
        f"{name}.refused": False,
        f"{name}.stalled": False,
        "trials": trials,
    }
    return row


# ---- one task -----------------------------------------------------------------------------------------------


def run_point(task: dict) -> dict[str, Any]:
    """Run one point and replicate (what a worker process or Dask worker executes); never raises: a failure is
    a row with ``status = 'error'`` and the error's text."""
    from qfabric.errors import QfabricError
    from qfabric.scenario import parse_scenario, run_scenario
    from qfabric.scenario.build import run_qkd

    start = time.perf_counter()
    row: dict[str, Any] = {"point": task["point"], "replicate": task["replicate"], "seed": task["seed"]}
    try:
        base = Path(task["base_dir"]) if task.get("base_dir") else None
        scenario = parse_scenario(task["data"], task.get("file") or "<sweep point>", base)
        model = batch_model(scenario) if task["engine"] in ("auto", "batch") else "event engine requested"
        if isinstance(model, ChainModel):
            row["engine"] = "batch"
            row |= run_batch(scenario, model, task["trials"], task["seed"])
            for spec in scenario.qkd:  # decoy-BB84 over the fibre does not depend on the pairs
                q = run_qkd(scenario, spec, {})
                row |= {f"qkd.{spec.name}.{f}": q.get(f) for f in QKD_FIELDS if f in q}
        elif task["engine"] == "batch":
            raise QfabricError(f"--engine batch: {model}")
        else:
            row["engine"] = "event"
            row |= flatten_report(run_scenario(scenario))
        row["status"], row["error"] = "ok", None
    except QfabricError as error:
        row["engine"] = row.get("engine")
        row["status"], row["error"] = "error", str(error)
    except Exception as error:  # a bug or a resource problem: keep the traceback's last line for the table
        row["status"] = "error"
        row["error"] = f"{type(error).__name__}: {error} ({traceback.format_exc().splitlines()[-3].strip()})"
    row["wall_s"] = time.perf_counter() - start
    return row
