"""The run report's JSON Schema, generated from pydantic models of what :func:`~qfabric.scenario.run_scenario` returns.

    python -m qfabric.observe.report_schema > docs/report.schema.json

Field meanings are documented by hand in ``docs/report.md``; these models say the same with types. Sections whose
keys are fixed forbid unknown keys, and JSON types are exact (an integer is not 1.0 nor "1"). A key a report may
leave out (e.g. in the row of a QKD service that could not run) must, when given, have its type: null only where
the field says so. A summary is ``{"count": 0}`` or complete. Events keep free details (the usual ones typed), and
the ``federated`` section is checked at its top level only. ``tests/observe/test_report_jsonschema.py`` fails when
the committed schema and the models drift apart, and validates real reports against both.

>>> try:
...     validate_report({"qfabric_version": 1})
... except ReportSchemaError as error:
...     print(error.problems[:2])
[('qfabric_version', 'Input should be a valid string (got 1)'), ('scenario', 'Field required')]
"""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError
from pydantic.json_schema import GenerateJsonSchema

from qfabric.control import faults, routing
from qfabric.errors import QfabricError
from qfabric.link import heralded
from qfabric.network import models

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_TITLE = "qfabric run report"
MAX_LISTED_PROBLEMS = 10


def _values_of(enum) -> Any:
    """The values of a string enum as a ``Literal`` (a plain ``enum`` in the JSON Schema)."""
    return Literal[tuple(member.value for member in enum)]


# the engine's enumerations, as the report repeats them
Metric = _values_of(routing.Metric)
MultiplexingMode = _values_of(models.Multiplexing)
QubitSelection = _values_of(models.QubitSelection)
SwapScheme = _values_of(models.SwapScheme)
LinkScheme = _values_of(heralded.Scheme)
FaultKind = _values_of(faults.FaultKind)


EventName = Literal[
    "arrived", "admitted", "refused", "started", "ended", "completed", "negotiated", "degraded", "preempted",
    "rerouted", "suspended", "resumed", "paused", "fault", "repair", "detected", "unreported",
]

Count = Annotated[int, Field(ge=0)]
Pair = Annotated[list[str], Field(min_length=2, max_length=2)]
Interval = Annotated[list[float], Field(min_length=2, max_length=2)]
Route = Annotated[list[str], Field(min_length=2)]


class ReportSchemaError(QfabricError, ValueError):
    """A report does not match the schema. ``problems`` lists ``(path, message)``, e.g.
    ``("requests[0].pairs_delivered", "Input should be a valid integer")``."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        lines = [f"the run report does not match its schema: {len(problems)} problem{'s' * (len(problems) != 1)}"]
        lines += [f"  {path or '<report>'}: {message}" for path, message in problems[:MAX_LISTED_PROBLEMS]]
        if len(problems) > MAX_LISTED_PROBLEMS:
            lines.append(f"  ... and {len(problems) - MAX_LISTED_PROBLEMS} more")
        super().__init__("\n".join(lines))


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def _may_be_missing(description: str | None = None, **constraints: Any) -> Any:
    """A key the report may leave out; when present it must have the field's type (null only if the type allows)."""
    return Field(default=None, description=description, json_schema_extra=_no_default, **constraints)


def _d(description: str, **constraints: Any) -> Any:
    return Field(description=description, **constraints)


_TAGS: set[str] = set()


def _one_of(choices: dict[str, Any], pick: Callable[[dict], str], expected: str) -> Any:
    """A union whose member ``pick`` chooses from a JSON object. Its tags name no field (they hold a space): error
    paths leave them out."""
    if not all(" " in name for name in choices):
        raise ValueError(f"union tags must hold a space (no field is named so): {list(choices)}")
    _TAGS.update(choices)

    def tag(value: Any) -> str | None:
        if isinstance(value, BaseModel):
            value = value.model_dump()
        return pick(value) if isinstance(value, dict) else None

    members = tuple(Annotated[model, Tag(name)] for name, model in choices.items())
    return Annotated[
        typing.Union[members],  # noqa: UP007 (members built at run time)
        Discriminator(tag, custom_error_type="report_choice", custom_error_message=f"expected {expected}"),
    ]


class _Fixed(BaseModel):
    """Keys fixed: unknown keys are errors; JSON types exact (no "1" for 1, no 1.0 for an integer)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class _Open(BaseModel):
    """Some keys fixed, more allowed."""

    model_config = ConfigDict(extra="allow", strict=True)


# ---- scenario, control, fairness, performance -----------------------------------------------------------------


class Routing(_Fixed):
    """How requests were routed (as in the scenario)."""

    metric: Metric = _d("path metric")
    paths: int = _d("k shortest paths per request, used at once", ge=1)


class Multiplexing(_Fixed):
    """How requests shared memories (as in the scenario)."""

    mode: MultiplexingMode = _d("statistical or buffer-space")
    qubit_selection: QubitSelection = _d("which stored qubit a swap takes")


class ScenarioMeta(_Fixed):
    """What ran."""

    name: str = _d("scenario name")
    file: str | None = _d("the scenario file, or null when run from data")
    seed: int = _d("the seed (same seed, same report but performance)", ge=0)
    duration_s: float = _d("simulated time, s")
    description: str = _d("the scenario's description")
    routing: Routing
    multiplexing: Multiplexing


class Fairness(_Fixed):
    """Jain's index (sum x)^2 / (n sum x^2) across the served requests (null with fewer than two)."""

    jain_index_rate: float | None = _d("over the served requests' rates (1: equal, 1/n: one takes all)")
    jain_index_share_of_target: float | None = _d("over their shares of target, when every request has one")


class Control(_Fixed):
    """The controller and its clocks."""

    controller: str | None = _d("its node; null without faults unless set")
    heartbeat_s: float = _d("heartbeat period across every link, s")
    heartbeat_misses: int = _d("missed heartbeats before a link is declared down", ge=1)
    slo_check_s: float = _d("step of the SLO checks, s")
    timeline_step_s: float = _d("bin of the request timelines, s")


class QkdStepSeconds(_Fixed):
    """Wall time of each post-processing step of one QKD service, s (empty when it made no run)."""

    sift_estimate: float = _may_be_missing("sifting and parameter estimation, s")
    reconcile: float = _may_be_missing("Cascade reconciliation, s")
    verify: float = _may_be_missing("verification, s")
    amplify: float = _may_be_missing("privacy amplification, s")


class Performance(_Fixed):
    """Wall times: the only part of the report that changes from run to run."""

    engine: Literal["compiled", "interpreted"] = _d("how the engine was built")
    events: Count = _d("events the kernel processed")
    setup_s: float = _d("building the network, wall s")
    wall_time_s: float = _d("simulating, wall s")
    wall_s_per_simulated_s: float = _d("wall seconds per simulated second")
    events_per_wall_s: float | None = _d("events per wall second (null when no wall time passed)")
    qkd_wall_time_s: float = _d("the QKD services, wall s")
    qkd_step_seconds: dict[str, QkdStepSeconds] = _d("per QKD service, wall s per post-processing step")


# ---- requests ---------------------------------------------------------------------------------------------------


class PairsTarget(_Fixed):
    pairs: int = _d("pairs to deliver", ge=1)


class RateTarget(_Fixed):
    rate_hz: float = _d("pairs per second to deliver")


Target = _one_of({"target (pairs)": PairsTarget, "target (rate_hz)": RateTarget},
                 lambda v: "target (pairs)" if "pairs" in v else "target (rate_hz)",
                 'an object {"pairs": n} or {"rate_hz": r}')


class Histogram(_Fixed):
    """Bin edges and counts (empty without values)."""

    edges: list[float]
    counts: list[Count]


class EmptySummary(_Fixed):
    """No values."""

    count: Literal[0]


class Summary(_Fixed):
    """Mean, standard deviation and percentiles."""

    count: int = _d("how many values", ge=1)
    mean: float
    std: float = _d("sample standard deviation (0 for one value)")
    min: float
    p5: float
    p50: float
    p90: float
    p95: float
    p99: float
    max: float


class EmptyFidelitySummary(EmptySummary):
    """No pair delivered."""

    histogram: Histogram


class FidelitySummary(Summary):
    """Delivered fidelities, with a histogram (20 bins from 0.25 to 1)."""

    histogram: Histogram


def _by_count(empty: str, full: str) -> Callable[[dict], str]:
    return lambda v: empty if v.get("count") == 0 else full


WaitSummary = _one_of({"summary (empty)": EmptySummary, "summary (full)": Summary},
                      _by_count("summary (empty)", "summary (full)"), 'a summary: {"count": 0}, or count, mean, ...')
FidelityStats = _one_of({"fidelity (empty)": EmptyFidelitySummary, "fidelity (full)": FidelitySummary},
                        _by_count("fidelity (empty)", "fidelity (full)"), "a fidelity summary with its histogram")


class Reroute(_Fixed):
    """A change of route after a fault or a repair."""

    t_s: float = _d("when, s")
    cause: str = _d("why, e.g. 'a-b down'")
    routes: list[Route] = _d("the new routes (empty: suspended, no route left)")
    pairs_lost: Count = _d("stored pairs discarded with the old circuits")


class Negotiated(_Fixed):
    """The negotiation's answer."""

    admitted: bool = _d("false: refused, or served on the best offer")
    plan: str = _d("the plan, in words")
    purification_rounds: Count
    cutoff_s: float | None = _d("the plan's cut-off, s, or null")
    predicted_rate_hz: float = _d("predicted pairs per second on an idle network")
    predicted_fidelity: float = _d("predicted mean fidelity on an idle network")
    reason: str


class SloObjectives(_Fixed):
    """The objectives as in the scenario (those not set are left out)."""

    window_s: float = _d("sliding window, s")
    rate_hz_min: float = _may_be_missing("pairs per second over the window, at least")
    fidelity_min: float = _may_be_missing("mean fidelity over the window, at least")
    first_pair_s_max: float = _may_be_missing("start to the first pair, s, at most")
    wait_p99_s_max: float = _may_be_missing("99th percentile of the waits, s, at most")
    availability_min: float = _may_be_missing("share of the service time with every objective met, at least")
    grace_s: float = _d("extra time after the first window before judging, s")


class SloViolation(_Fixed):
    start_s: float
    end_s: float | None = _d("null while still open")
    causes: list[str] = _d("each kind of cause at its worst reading")


class ErrorBudget(_Fixed):
    """Violation time against what availability_min allows (null without it)."""

    service_s: float
    allowed_s: float | None
    used_s: float
    left_s: float | None = _d("negative once overspent")
    left_fraction: float | None = _d("of the allowance (-Infinity when none was allowed and some used)")


class Slo(_Fixed):
    """Service levels of a request."""

    objectives: SloObjectives
    violations: list[SloViolation]
    availability: float = _d("share of its service time with every objective met")
    error_budget: ErrorBudget
    met: bool


class Timeline(_Fixed):
    """Per bin of control.timeline_step_s: the bin starts, pairs per second and mean fidelity (null without pairs)."""

    t_s: list[float]
    rate_hz: list[float]
    fidelity: list[float | None]


class RequestRow(_Fixed):
    """One request's service-level indicators."""

    name: str
    tenant: str = _d("who asked")
    between: Pair = _d("its two end nodes")
    refused: str | None = _d("why it was not admitted, or null")
    paths: list[Route] = _d("every route it was served over, in order (reroutes add routes)")
    hops: list[Count] = _d("their lengths in links")
    scheme: SwapScheme = _d("its swap scheme")
    window_s: Interval = _d("[start, end] of its service, s")
    active_s: float = _d("length of that window, s")
    target: Target | None = _d('{"pairs": n}, {"rate_hz": r} or null')
    fidelity_min: float | None = _d("its fidelity floor, or null")
    pairs_delivered: Count = _d("pairs delivered to it (above its floor)")
    pairs_per_path: list[Count] = _d("how many came over each path")
    rate_hz: float = _d("delivered pairs per second of its window")
    rate_ci95_hz: Interval = _d("95 % interval of the rate")
    share_of_target: float | None = _d("pairs over its pair target, or rate over its rate target")
    fidelity: FidelityStats = _d("delivered fidelities")
    qber_z_mean: float | None = _d("mean error rate of Z measurements on the delivered pairs")
    qber_x_mean: float | None = _d("mean error rate of X measurements on the delivered pairs")
    time_to_first_pair_s: float | None = _d("from its start to its first pair, s")
    waiting_time_s: WaitSummary = _d("times between pairs, the first from its start, s")
    swaps: Count = _d("Bell-state measurements its repeaters made")
    swaps_failed: Count
    cutoff_discards: Count = _d("pairs discarded after waiting longer than the cut-off")
    doomed_discards: Count = _d("pairs discarded when their ends learned of a failed swap in their history")
    below_fidelity_discards: Count = _d("end-to-end pairs discarded under fidelity_min")
    no_memory_share_on: list[str] = _d("links where, under buffer-space multiplexing, it had no qubit at the end")
    reroutes: list[Reroute]
    negotiated: Negotiated | None
    preempted_by: str | None = _d("the higher-priority request it was ended for, or null")
    slo: Slo | None
    timeline: Timeline | None = _d("null if never started")
    completed_s: float | None = _d("when its pair count was reached, s, or null")
    stalled_since_s: float | None = _d("when it deadlocked, s, or null")


# ---- links and nodes --------------------------------------------------------------------------------------------


class LinkCondition(_Fixed):
    """A link's state over [start_s, end_s) under the faults."""

    start_s: float
    end_s: float
    up: bool
    extra_loss_db: float
    detector_factor: float


class LinkRow(_Fixed):
    """One elementary link: its model and what the simulation did on it."""

    name: str
    between: Pair
    length_km: float
    scheme: LinkScheme
    profile: str = _d("hardware profile")
    capacity: Annotated[list[Count], Field(min_length=2, max_length=2)] = _d("memory qubits at each end for it")
    success_probability: float = _d("herald probability per attempt")
    attempt_period_s: float = _d("attempt duration, s")
    heralded_fidelity: float = _d("fidelity of a heralded pair")
    hashing_yield: float = _d("distillable ebits per heralded pair, by hashing")
    plob_bound_per_use: float = _d("repeaterless bound of the whole fibre")
    relay_bound_per_use: float = _d("repeaterless bound of the worse half (midpoint station as relay)")
    requests: list[str] = _d("requests whose paths cross it")
    idle: bool = _d("no attempt was made on it")
    attempts: Count
    successes: Count
    success_rate: float | None = _d("successes per attempt, null without attempts")
    pairs_per_s: float = _d("heralded pairs per second")
    utilisation: float | None = _d("share of its memory-pair time spent attempting")
    hashing_ebits_per_s: float
    plob_bound_ebits_per_s: float = _d("the PLOB bound at the attempt rate")
    fraction_of_plob: float | None
    relay_bound_ebits_per_s: float
    fraction_of_relay_bound: float | None
    purifications: Count
    purifications_failed: Count
    unbound_discards: Count = _d("shared pairs no request used before the cut-off")
    conditions: list[LinkCondition] = _d("its states over the run (one row without faults)")


class NodeRow(_Fixed):
    """One node's memories."""

    name: str
    memory_qubits: Count = _d("qubits over all its links")
    busy_qubit_s: float = _d("qubit-seconds in use")
    memory_utilisation: float | None = _d("busy_qubit_s / (memory_qubits * duration_s)")
    position_km: Annotated[list[float], Field(min_length=2, max_length=2)] | None = _d("map position, km, or null")


# ---- faults, tenants, events ------------------------------------------------------------------------------------


class MovedRequest(_Fixed):
    """A request rerouted or suspended because of a fault."""

    request: str
    t_s: float
    time_to_reroute_s: float = _d("from the fault, s")
    routes: list[Route]
    pairs_lost: Count


class FaultRow(_Fixed):
    """One fault, explicit or random."""

    kind: FaultKind = _d("cut, loss, detector (a link) or memory, node (a node)")
    target: str = _d("the link or node")
    start_s: float = _d("when it struck, s")
    end_s: float | None = _d("when it was repaired, s (null: not during the run)")
    extra_loss_db: float | None
    factor: float | None = _d("detector efficiency or memory coherence multiplier")
    detected_s: float | None = _d("when the controller was told; null for degradations")
    time_to_detect_s: float | None
    repair_detected_s: float | None
    pairs_lost: Count
    requests_moved: list[MovedRequest]


class Quota(_Fixed):
    """A tenant's quota as in the scenario (null: no limit)."""

    max_concurrent_requests: int | None
    max_rate_hz: float | None
    max_pairs_per_window: int | None
    window_s: float
    max_memory_qubits: int | None


class EmptyUsage(_Fixed):
    """No request of the tenant reached the ledger."""


class Usage(_Fixed):
    """From the usage ledger: counts per event, pairs delivered and service time."""

    submitted: Count
    admitted: Count
    refused: Count
    started: Count
    paused: Count
    resumed: Count
    ended: Count
    preempted: Count
    pairs_delivered: Count
    service_s: float = _d("time its requests were served, s")


TenantUsage = _one_of({"usage (empty)": EmptyUsage, "usage (full)": Usage},
                      lambda v: "usage (empty)" if not v else "usage (full)", "the tenant's usage totals, or {}")


class TenantRow(_Fixed):
    """One declared tenant."""

    name: str
    weight: float = _d("its share of contended memories")
    priority: int
    quota: Quota
    requests: Count = _d("how many requests it made")
    refused: Count = _d("how many were refused")
    usage: TenantUsage


class Event(_Open):
    """One entry of the event log: t_s and event, then the event's details (free; the usual ones typed)."""

    t_s: float
    event: EventName
    request: str = _may_be_missing("the request (the service's events)")
    kind: FaultKind = _may_be_missing("the fault's kind (the fault injector's events)")
    target: str = _may_be_missing("a fault's link or node, or an arriving request's far end")
    tenant: str = _may_be_missing("an arriving request's tenant")
    source: str = _may_be_missing("an arriving request's near end")
    detail: str = _may_be_missing("the fault injector's words")
    reason: str = _may_be_missing("why")
    cause: str = _may_be_missing("the fault or repair behind a reroute")
    routes: list[Route] = _may_be_missing("the routes taken")
    pairs_lost: Count = _may_be_missing("stored pairs discarded")
    pairs: Count = _may_be_missing("pairs delivered when it ended")
    plan: str = _may_be_missing("the negotiated plan, in words")
    rate_hz: float = _may_be_missing("the plan's predicted rate")
    fidelity: float = _may_be_missing("the plan's predicted fidelity")
    by: str = _may_be_missing("the request it was preempted for")


# ---- QKD --------------------------------------------------------------------------------------------------------


class QkdCondition(_Fixed):
    """A decoy-BB84 fibre's state over [start_s, end_s), each degraded state simulated again."""

    start_s: float
    end_s: float
    up: bool
    extra_loss_db: float
    detector_factor: float
    secret_key_rate_bps: float
    qber: float | None


class _QkdRow(_Fixed):
    name: str = _d("the QKD service")
    key_bits: Count = _d("secret key bits distilled")
    secret_key_rate_bps: float
    aborted_blocks: Count | None = _d("null when the service could not run at all")
    abort_reasons: list[str]
    key_bits_over_run: float = _may_be_missing("key bits over the whole run, at the simulated rates")
    # left out when the service could not run (abort_reasons says why)
    between: Pair = _may_be_missing("the nodes that share the key")
    distance_km: float | None = _may_be_missing("fibre length, km (null for bbm92)")
    pulses: Count = _may_be_missing("pulses sent (bbm92: pairs measured)")
    source_rate_hz: float = _may_be_missing("pulses (bbm92: pairs) per second")
    simulated_seconds: float = _may_be_missing("simulated time the pulses span, s")
    blocks: Count = _may_be_missing("post-processing blocks")
    sifted_bits: Count = _may_be_missing()
    leaked_bits: Count = _may_be_missing("bits disclosed by reconciliation")
    qber: float | None = _may_be_missing("measured error rate of the sifted key")
    qber_estimate: float | None = _may_be_missing("error rate estimated on the sample")
    reconciliation_efficiency: float | None = _may_be_missing("leaked bits over the Shannon limit")
    secret_bits_per_pulse: float = _may_be_missing()
    analytic_bits_per_pulse: float | None = _may_be_missing("finite-key rate of the model")
    asymptotic_bits_per_pulse: float | None = _may_be_missing("asymptotic rate of the model")
    plob_bits_per_pulse: float | None = _may_be_missing("repeaterless bound")
    fraction_of_plob: float | None = _may_be_missing()


class DecoyBb84QkdRow(_QkdRow):
    """A decoy-BB84 service over one fibre link."""

    protocol: Literal["decoy-bb84"]
    link: str = _d("its fibre link")
    conditions: list[QkdCondition] = _d("the fibre's states over the run (empty when it could not run)")
    key_bits_over_run: float = _d("their rates times their durations")


class Bbm92QkdRow(_QkdRow):
    """BBM92 on the pairs a request delivered."""

    protocol: Literal["bbm92"]
    request: str = _d("the request whose pairs it measures")


QkdRow = _one_of({"qkd (decoy-bb84)": DecoyBb84QkdRow, "qkd (bbm92)": Bbm92QkdRow},
                 lambda v: {"decoy-bb84": "qkd (decoy-bb84)", "bbm92": "qkd (bbm92)"}.get(v.get("protocol")),
                 'a QKD row with protocol "decoy-bb84" or "bbm92"')


# ---- satellites -------------------------------------------------------------------------------------------------


class SatellitePass(_Fixed):
    """One link window of a satellite service (docs/free-space.md); loss in dB from the source to detection."""

    start_s: float = _d("the window opens (elevation above the minimum; pairs: at both stations), s")
    end_s: float = _d("it closes, s")
    duration_s: float = _d("time the link is up in it, s")
    max_elevation_deg: float = _d("highest elevation (pairs: of the lower station)")
    loss_db_min: float = _d("least total loss (pairs: two-photon loss), dB")
    loss_db_max: float = _d("largest total loss, dB")
    culmination_s: float = _may_be_missing("decoy-bb84: when the elevation peaks, s")
    range_km_min: float = _may_be_missing("decoy-bb84: shortest slant range, km")
    range_km_max: float = _may_be_missing("decoy-bb84: longest slant range in the window, km")
    link_loss_db_min: float = _may_be_missing("decoy-bb84: least link loss (to the receive aperture), dB")
    link_loss_db_max: float = _may_be_missing("decoy-bb84: largest link loss, dB")
    sifted_bits: float = _may_be_missing("expected detections (pairs: coincidences) in matching bases")
    qber: float = _may_be_missing("expected key-basis error rate")
    key_bits: float = _may_be_missing("finite-key secret bits of the pass (pairs: BBM92 between the stations)")
    asymptotic_key_bits: float = _may_be_missing("the same without finite-size terms")
    summed_range_km_min: float = _may_be_missing("pairs: shortest sum of the two slant ranges, km")
    summed_range_km_max: float = _may_be_missing("pairs: longest sum, km")
    pairs: float = _may_be_missing("pairs: expected coincidences in the window")
    pair_rate_hz: float = _may_be_missing("pairs: their mean rate over the window, per s")
    accidentals: float = _may_be_missing("pairs: accidental coincidences (two unrelated clicks in one window)")
    coincidences: float = _may_be_missing("pairs: true and accidental coincidences")


class DistributedAccuracy(_Fixed):
    """Test accuracy of a support vector machine on each kernel."""

    distributed: float = _d("the kernel over the two processors, remote CNOTs on delivered pairs", ge=0, le=1)
    single_processor: float = _d("the exact kernel on one processor", ge=0, le=1)
    classical_rbf: float = _d("a classical RBF kernel on the same features", ge=0, le=1)


class Distributed(_Fixed):
    """A quantum kernel whose circuit spans two processors (docs/qml.md, Distributed kernel)."""

    request: str = _d("the request whose pairs the remote CNOTs used")
    processors: Pair = _d("its two ends")
    qubits: Count
    assignment: list[int] = _d("processor (0 or 1) of each qubit")
    feature_map: str
    reps: Count
    entanglement: str
    samples_train: Count
    samples_test: Count
    remote_cnots_per_sample: float = _d("teleported CNOTs in one sample's circuit", ge=0)
    pairs_delivered: Count
    pairs_used: Count = _d("pairs the one simulated preparation of every state used")
    pairs_reused: Count = _d("of them, pairs used a second time (the run delivered fewer)")
    mean_pair_fidelity: float = _d("fidelity of the pairs used", ge=0, le=1)
    remote_cnot_gate_fidelity: float = _d("the teleported CNOT's average gate fidelity (4F + 1)/5", ge=0, le=1)
    kernel_error_mean: float = _d("mean |K - K_exact| over the entries the machines use", ge=0)
    kernel_error_max: float = _d("largest such error", ge=0)
    accuracy: DistributedAccuracy
    classical_delay_s: float = _d("one-way classical delay between the processors, s", ge=0)
    pair_rate_hz: float = _d("pairs per simulated second the request got", ge=0)
    one_preparation_each_s: float | None = _d("when one preparation of every state was done, s")
    shots_per_entry: Count
    kernel_entries: Count
    pairs_needed: float = _d("pairs to measure the kernel with shots_per_entry swap-test shots per entry", ge=0)
    time_to_solution_s: float = _d("at the request's rate, with two classical delays per remote CNOT, s", ge=0)


class SatelliteRow(_Fixed):
    """A satellite service over the run: a decoy-BB84 downlink or an entangled-pair source."""

    satellite: str = _d("the satellite's name")
    kind: Literal["decoy-bb84", "pairs"]
    stations: list[str] = _d("its ground station node(s)")
    source_rate_hz: float = _d("pulses (pairs) per second at the satellite")
    passes: list[SatellitePass] = _d("its link windows over the run")
    key_bits: float = _may_be_missing("secret bits over the run (pairs: its passes as one BBM92 block)")
    asymptotic_key_bits: float = _may_be_missing("pairs: the same without finite-size terms")
    coincidences: float = _may_be_missing("pairs: coincidences over the run")
    qber: float = _may_be_missing("pairs: their error rate in matching bases")
    trusted_relay: bool = _may_be_missing("decoy-bb84: the satellite is a trusted node of the KMS (its keys feed "
                                          "the ground stations' KME, which relays through it)")
    pairs: float = _may_be_missing("pairs: coincidences over the run")


# ---- federation -------------------------------------------------------------------------------------------------


class Federated(_Fixed):
    """The federation's report (docs/federated.md): its top keys are fixed, their contents are not checked here."""

    rounds_requested: Count
    rounds_completed: Count
    organisations: list[dict[str, Any]] = _d("sae, data_share, examples")
    aggregator: str = _d("the aggregator's SAE")
    test_examples: Count
    model: dict[str, Any]
    training: dict[str, Any]
    policy: dict[str, Any] = _d("mode, fallback, qber_threshold")
    round_period_s: float
    warmup_s: float
    key_supply: dict[str, Any]
    per_round: list[dict[str, Any]]
    fallbacks: list[dict[str, Any]]
    curves: dict[str, Any]
    final: dict[str, Any]
    privacy: dict[str, Any] | None
    wall_time: dict[str, Any]
    wire: dict[str, Any]
    epsilon: float | None


# ---- the report -------------------------------------------------------------------------------------------------


class RunReport(_Fixed):
    """What `qfabric run SCENARIO --json report.json` writes (docs/report.md). Times in s, rates per simulated s."""

    qfabric_version: str = _d("the version that ran")
    scenario: ScenarioMeta
    requests: list[RequestRow] = _d("one row per request")
    links: list[LinkRow] = _d("one row per link, idle ones included")
    nodes: list[NodeRow] = _d("one row per node")
    fairness: Fairness
    control: Control
    faults: list[FaultRow] = _d("one row per fault, explicit or random")
    tenants: list[TenantRow] = _d("one row per declared tenant")
    events: list[Event] = _d("the event log in time order, at most the first 5000")
    events_total: Count = _d("how many events there were")
    warnings: list[str] = _d("stalled requests, requests without a memory share")
    qkd: list[QkdRow] = _d("one row per QKD service")
    federated: Federated = _may_be_missing("the federation's report, when the scenario has one")
    satellite: list[SatelliteRow] = _may_be_missing("satellite passes, when the scenario has satellites")
    distributed: Distributed = _may_be_missing("the kernel over two processors, when the scenario has one")
    performance: Performance


# ---- schema and validation --------------------------------------------------------------------------------------


class _Generator(GenerateJsonSchema):
    def field_title_should_be_set(self, schema) -> bool:  # property names are their own titles
        return False


def report_json_schema() -> dict[str, Any]:
    """The run report's JSON Schema (draft 2020-12)."""
    schema = RunReport.model_json_schema(schema_generator=_Generator)
    return {"$schema": SCHEMA_DIALECT, **schema, "title": SCHEMA_TITLE}


def report_schema_text() -> str:
    """``docs/report.schema.json``: the schema with sorted keys, indented by 2, with a trailing newline."""
    return json.dumps(report_json_schema(), indent=2, sort_keys=True) + "\n"


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _TAGS:  # which member of a union was checked: not part of the report's path
            continue
        elif _IDENTIFIER.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out


def validate_report(report: dict) -> None:
    """Check ``report`` (as :func:`~qfabric.scenario.run_scenario` returns it, or loaded from its JSON file)
    against the schema; raises :class:`ReportSchemaError` naming the path of every problem."""
    try:
        text = json.dumps(report)  # what the file holds: tuples become arrays, keys strings
    except (TypeError, ValueError) as error:
        raise ReportSchemaError([("", f"not JSON-serialisable: {error}")]) from error
    try:
        RunReport.model_validate_json(text)
    except ValidationError as error:
        problems = []
        for e in error.errors(include_url=False):
            message = e["msg"]
            if e["type"] not in ("missing", "report_choice") and "input" in e:
                message += f" (got {json.dumps(e['input'], default=repr)[:60]})"
            problems.append((_path(e["loc"]), message))
        raise ReportSchemaError(problems) from None


def main() -> None:
    print(report_schema_text(), end="")


if __name__ == "__main__":
    main()
