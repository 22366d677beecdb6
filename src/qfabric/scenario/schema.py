"""The scenario file's schema (pydantic): what a user writes, with units in every field name.

A minimal scenario::

    name: two-sites
    seed: 1
    duration_s: 5
    nodes: [{name: a}, {name: r}, {name: b}]
    links:
      - {name: a-r, between: [a, r], length_km: 20, profile: nv-diamond}
      - {name: r-b, between: [r, b], length_km: 25, profile: nv-diamond}
    chain: {from: a, to: b, scheme: swap-asap}

``chain`` is shorthand for one request on the shortest path; ``requests`` lists many, served at once over
the shared network (``routing`` chooses their paths, ``multiplexing`` how they share memories), and
``topology`` generates or imports the graph instead of listing every node and link.
"""

# No ``from __future__ import annotations`` here: pydantic would compile and evaluate every field's annotation from
# its text, about a fifth of the time this module takes to import (``qfabric validate``, benchmarks/bench_cli.py).
# A field whose type is a model defined further down needs its type in quotes, as do validators' ``-> "Model"``.

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from qfabric.kms.naming import SAE_ID_PATTERN, SAE_ID_RULE


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class MemorySpec(_Strict):
    t1_s: float | None = Field(default=None, gt=0, description="amplitude-damping time, s")
    t2_s: float | None = Field(default=None, gt=0, description="dephasing time, s")
    depolarising_time_s: float | None = Field(default=None, gt=0, description="depolarising time, s")
    efficiency: float | None = Field(default=None, gt=0, le=1, description="photon into fibre, 0-1")
    capacity: int | None = Field(default=None, ge=1, description="memory qubits per link side")


class SourceSpec(_Strict):
    attempt_rate_hz: float | None = Field(default=None, gt=0)
    bright_state_population: float | None = Field(default=None, gt=0, le=1)
    emission_fidelity: float | None = Field(default=None, ge=0.25, le=1)


class DetectorSpec(_Strict):
    efficiency: float | None = Field(default=None, gt=0, le=1)
    dark_count_probability: float | None = Field(default=None, ge=0, le=1)


class StationSpec(_Strict):
    detector: DetectorSpec | None = None
    visibility: float | None = Field(default=None, ge=0, le=1)


class HardwareSpec(_Strict):
    """Overrides of a hardware profile; a custom profile names the built-in one it starts from."""

    base: str | None = Field(default=None, description="built-in or earlier custom profile to start from")
    memory: MemorySpec | None = None
    source: SourceSpec | None = None
    station: StationSpec | None = None
    swap_success_probability: float | None = Field(default=None, gt=0, le=1)
    swap_depolarising: float | None = Field(default=None, ge=0, le=1)
    description: str | None = None

    def overrides(self) -> dict[str, Any]:
        """Only the fields the user wrote, nested: ready for ``HardwareProfile.with_overrides``."""
        data = self.model_dump(exclude_none=True, exclude={"base"})
        return data


class NodeSpec(_Strict):
    name: str = Field(min_length=1, max_length=48, description="key pools are named by their nodes")
    profile: str | None = Field(default=None, description="hardware of this node's swaps; default: its first link's")
    role: Literal["end", "repeater"] | None = None
    position_km: tuple[float, float] | None = Field(default=None, description="map position (x, y), km")
    memory_qubits: int | None = Field(
        default=None, ge=0, description="memory qubits of the node, split evenly over its links (default: each "
        "link's profile capacity)")
    memory_split: dict[str, int] | None = Field(
        default=None, description="memory qubits per link name (links not named keep the even split)")

    @field_validator("memory_split")
    @classmethod
    def _non_negative_split(cls, value):
        if value and any(not isinstance(v, int) or v < 0 for v in value.values()):
            raise ValueError(f"memory qubits per link must be whole numbers >= 0, got {value}")
        return value


class FreeSpaceSpec(_Strict):
    """A terrestrial free-space optical link (qfabric.link.freespace): apertures are diameters. The detector is the
    link profile's (entanglement) or the QKD service's."""

    wavelength_nm: float = Field(default=850.0, gt=100, lt=20_000, description="wavelength, nm")
    tx_aperture_m: float = Field(default=0.1, gt=0, le=20, description="transmit telescope diameter, m")
    rx_aperture_m: float = Field(default=0.1, gt=0, le=20, description="receive telescope diameter, m")
    beam_quality: float = Field(default=1.0, ge=1, description="M^2 of the beam (1: diffraction-limited)")
    divergence_urad: float | None = Field(default=None, gt=0, description="measured full 1/e^2 divergence, urad "
                                          "(default: from diffraction)")
    pointing_jitter_urad: float = Field(default=0.0, ge=0, description="rms pointing error per axis, urad")
    tx_efficiency: float = Field(default=1.0, gt=0, le=1, description="transmit optics, 0-1")
    rx_efficiency: float = Field(default=1.0, gt=0, le=1, description="receive optics, 0-1")
    visibility_km: float = Field(default=23.0, gt=0, description="horizontal extinction from the visibility (Kim)")
    extinction_db_per_km: float | None = Field(default=None, ge=0, description="horizontal extinction, dB/km "
                                               "(default: from visibility_km)")
    cn2_ground: float = Field(default=1.7e-14, ge=0, le=1e-11, description="turbulence Cn^2 at the ground, m^-2/3")
    end_heights_m: tuple[float, float] | None = Field(
        default=None, description="links: heights of the two ends above the ground, m (checks the line of sight)")

    @field_validator("end_heights_m")
    @classmethod
    def _non_negative_heights(cls, value):
        if value is not None and min(value) < 0:
            raise ValueError(f"heights must be >= 0 m, got {list(value)}")
        return value


class LinkSpec(_Strict):
    name: str | None = None
    between: tuple[str, str]
    length_km: float | None = Field(default=None, gt=0, description="fibre length, km (default: the distance "
                                     "between the two nodes' positions)")
    attenuation_db_per_km: float = Field(default=0.2, ge=0)
    refractive_index: float = Field(default=1.47, ge=1, le=3, description="fibre group index (c / speed in fibre)")
    profile: str = Field(default="nv-diamond")
    scheme: Literal["single-click", "double-click"] = "single-click"
    hardware: HardwareSpec | None = Field(default=None, description="overrides for this link only")
    classical_latency_s: float = Field(default=0.0, ge=0, description="processing latency per message, s")
    classical_jitter_s: float = Field(default=0.0, ge=0, description="extra uniform random delay per message, s")
    classical_loss_probability: float = Field(
        default=0.0, ge=0, lt=1, description="chance a message is lost on this hop (it is sent again)")
    retransmit_timeout_s: float = Field(default=1e-3, gt=0, description="time before a lost message is resent, s")
    herald_latency_s: float = Field(
        default=0.0, ge=0, description="extra time per attempt before the herald is known (protocol rounds), s"
    )
    kind: Literal["fibre", "free-space"] = Field(
        default="fibre", description="free-space: a line-of-sight optical link (optics); its transmissivity replaces "
        "the fibre's in entanglement generation and QKD")
    optics: FreeSpaceSpec | None = Field(default=None, description="free-space: telescopes, beam and air")

    @model_validator(mode="after")
    def _free_space(self) -> "LinkSpec":
        if self.optics is not None and self.kind != "free-space":
            raise ValueError("optics go with kind: free-space")
        heights = self.optics.end_heights_m if self.optics is not None else None
        if heights is not None and self.length_km is not None:
            from qfabric.link.freespace import horizon_range_km

            horizon = horizon_range_km(*heights)
            if self.length_km > horizon:
                raise ValueError(f"no line of sight: {self.length_km:g} km is beyond the horizon ({horizon:.3g} km) "
                                 f"for ends {heights[0]:g} m and {heights[1]:g} m high (optics.end_heights_m)")
        return self

    @field_validator("between")
    @classmethod
    def _distinct_ends(cls, value: tuple[str, str]) -> tuple[str, str]:
        if value[0] == value[1]:
            raise ValueError(f"a link needs two different nodes, got {list(value)}")
        return value


class PurificationSpec(_Strict):
    rounds: int = Field(default=1, ge=0, le=4)
    protocol: Literal["dejmps", "bbpssw"] = "dejmps"
    spans: list[int] = Field(
        default=[1], min_length=1,
        description="purify pairs spanning these many links: 1 elementary, N end-to-end, 2^k nested level k",
    )


class ProtocolSpec(_Strict):
    """How a request's circuit turns link pairs into end-to-end pairs."""

    scheme: Literal["swap-asap", "nested", "sequential"] = "swap-asap"
    cutoff_s: float | list[float] | None = Field(default=None, description="storage cut-off, s (nested: per level)")
    link_age: Literal["reset", "oldest"] = Field(
        default="reset", description="swap-asap/sequential: a swapped pair's cut-off counts from the swap (reset) or "
        "from its oldest part (oldest, the standard convention)")
    purification: PurificationSpec | None = None
    regenerate_covered: bool = Field(
        default=True, description="segments under a longer pair keep generating (pipelining)"
    )
    swap_handshake: bool = Field(
        default=False, description="repeaters confirm each swap with both far ends first (one round trip)"
    )
    classical_mesh_latency_s: float | None = Field(
        default=None, ge=0,
        description="every two nodes share a direct classical channel of this latency, s (default: messages "
        "follow the fibre path, hop by hop)",
    )

    @field_validator("cutoff_s")
    @classmethod
    def _positive_cutoffs(cls, value):
        values = value if isinstance(value, list) else [value] if value is not None else []
        if any(v < 0 for v in values):
            raise ValueError(f"cut-offs must be non-negative seconds, got {value}")
        return value


class ChainSpec(ProtocolSpec):
    """Shorthand for one request named ``chain`` between two nodes for the whole run, on the routed path."""

    source: str = Field(alias="from")
    target: str = Field(alias="to")


class SloSpec(_Strict):
    """Service-level objectives over a sliding window of simulated time (each left out is not judged)."""

    window_s: float = Field(default=10.0, gt=0, description="sliding window of the rate, fidelity and wait, s")
    rate_hz_min: float | None = Field(default=None, gt=0, description="pairs per second over the window, at least")
    fidelity_min: float | None = Field(default=None, gt=0, le=1, description="mean fidelity over the window")
    first_pair_s_max: float | None = Field(default=None, ge=0, description="start to the first pair, s, at most")
    wait_p99_s_max: float | None = Field(default=None, gt=0, description="99th percentile of the waits, s")
    availability_min: float | None = Field(default=None, gt=0, le=1, description="share of the service time "
                                           "with every objective met (sets the error budget)")
    grace_s: float = Field(default=0.0, ge=0, description="extra time after the first window before judging, s")

    @model_validator(mode="after")
    def _some_objective(self) -> "SloSpec":
        if all(v is None for v in (self.rate_hz_min, self.fidelity_min, self.first_pair_s_max, self.wait_p99_s_max,
                                   self.availability_min)):
            raise ValueError("name at least one objective: rate_hz_min, fidelity_min, first_pair_s_max, "
                             "wait_p99_s_max or availability_min")
        return self


Credential = Literal["valid", "expired", "forged", "none"]


class RequestSpec(ProtocolSpec):
    """An entanglement request: pairs between two nodes for a tenant, in a time window."""

    name: str = Field(min_length=1)
    source: str = Field(alias="from")
    target: str = Field(alias="to")
    tenant: str = Field(default="default", min_length=1, description="who asks: one of tenants (a label when the "
                        "scenario declares none)")
    start_s: float = Field(default=0.0, ge=0, description="when the request starts, s")
    end_s: float | None = Field(default=None, gt=0, description="when it ends, s (default: end of the run)")
    fidelity_min: float | None = Field(
        default=None, ge=0.25, le=1, description="pairs below this fidelity at delivery are discarded")
    pairs: int | None = Field(default=None, ge=1, description="stop after this many pairs")
    rate_hz: float | None = Field(default=None, gt=0, description="target pairs per second (an SLI target)")
    path: list[str] | None = Field(default=None, min_length=2, description="explicit path (default: routing)")
    paths: int | None = Field(default=None, ge=1, description="paths to use at once (default: routing.paths)")
    slo: SloSpec | None = Field(default=None, description="service levels (default: the tenant's)")
    negotiate: bool = Field(default=False, description="the controller chooses the path (among routing.paths "
                            "candidates), purification rounds and cut-off that meet fidelity_min (and rate_hz) at "
                            "the highest predicted rate, on the capacity admitted requests leave")
    if_refused: Literal["refuse", "best-offer"] = Field(
        default="refuse", description="negotiated and refused: refuse, or serve the best plan offered")
    credential: Credential = Field(
        default="valid", description="the token the simulated client sends when its tenant has a secret: valid, "
        "expired, forged (signed with a wrong key) or none")

    @model_validator(mode="after")
    def _one_target(self) -> "RequestSpec":
        if self.pairs is not None and self.rate_hz is not None:
            raise ValueError("give either pairs (a count) or rate_hz (a target rate), not both")
        if self.end_s is not None and self.end_s <= self.start_s:
            raise ValueError(f"end_s ({self.end_s:g}) must be after start_s ({self.start_s:g})")
        if self.credential == "expired" and self.start_s <= 0:
            raise ValueError("an expired credential needs a request that starts after 0 s (its token expires "
                             "before the start)")
        return self


class ArrivalSpec(ProtocolSpec):
    """Requests of one tenant arriving as a Poisson process, each between one of ``ends`` (chosen uniformly)
    and held for an exponential time of mean ``hold_s``."""

    tenant: str = Field(default="default", min_length=1)
    rate_per_s: float = Field(gt=0, description="mean arrivals per second")
    ends: list[tuple[str, str]] = Field(min_length=1, description="node pairs the requests are between")
    hold_s: float = Field(gt=0, description="mean holding time of a request, s")
    start_s: float = Field(default=0.0, ge=0, description="first possible arrival, s")
    end_s: float | None = Field(default=None, gt=0, description="last possible arrival, s (default: end of run)")
    fidelity_min: float | None = Field(default=None, ge=0.25, le=1)
    rate_hz: float | None = Field(default=None, gt=0, description="each request's target pairs per second")
    paths: int | None = Field(default=None, ge=1)
    slo: SloSpec | None = None
    negotiate: bool = False
    if_refused: Literal["refuse", "best-offer"] = "refuse"
    credential: Credential = "valid"


class FaultSpec(_Strict):
    """A fault of the physical plane: a fibre cut, extra loss, a weaker detector (on a link), a memory
    coherence drop or a node down (at a node), from ``at_s`` until ``until_s`` (default: the end of the run)."""

    kind: Literal["cut", "loss", "detector", "memory", "node"]
    link: str | None = Field(default=None, description="cut, loss, detector: the link (by name)")
    node: str | None = Field(default=None, description="memory, node: the node")
    at_s: float = Field(ge=0, description="when it strikes, s")
    until_s: float | None = Field(default=None, gt=0, description="when it is repaired, s")
    extra_loss_db: float | None = Field(default=None, gt=0, description="loss: extra attenuation, dB")
    factor: float | None = Field(default=None, gt=0, le=1, description="detector, memory: efficiency or "
                                 "coherence times multiplied by this")

    @model_validator(mode="after")
    def _consistent(self) -> "FaultSpec":
        on_link = self.kind in ("cut", "loss", "detector")
        if on_link and (self.link is None or self.node is not None):
            raise ValueError(f"a {self.kind} fault names a link (and no node)")
        if not on_link and (self.node is None or self.link is not None):
            raise ValueError(f"a {self.kind} fault names a node (and no link)")
        if self.until_s is not None and self.until_s <= self.at_s:
            raise ValueError(f"until_s ({self.until_s:g}) must be after at_s ({self.at_s:g}): the repair comes "
                             "after the fault")
        if (self.kind == "loss") != (self.extra_loss_db is not None):
            raise ValueError("extra_loss_db goes with (and only with) a loss fault")
        if (self.kind in ("detector", "memory")) != (self.factor is not None):
            raise ValueError("factor goes with (and only with) a detector or memory fault")
        return self

    @property
    def target(self) -> str:
        return self.link if self.link is not None else self.node


class RandomFaultsSpec(_Strict):
    """Fibre cuts drawn per link: up for an exponential time of mean ``mtbf_s``, down for one of mean ``mttr_s``."""

    links: list[str] | Literal["all"] = Field(default="all", description="the links that fail (names), or all")
    mtbf_s: float = Field(gt=0, description="mean time between failures of a link, s")
    mttr_s: float = Field(gt=0, description="mean time to repair, s")


class QuotaSpec(_Strict):
    """What a tenant may hold at once (each left out: no limit)."""

    max_concurrent_requests: int | None = Field(default=None, ge=1)
    max_rate_hz: float | None = Field(default=None, gt=0, description="sum of its requests' target rates")
    max_pairs_per_window: int | None = Field(default=None, ge=1, description="pairs delivered per window")
    window_s: float = Field(default=60.0, gt=0, description="the pairs window, s")
    max_memory_qubits: int | None = Field(default=None, ge=1, description="qubits its requests reserve (one at "
                                          "each end of each link of their paths)")


class TenantSpec(_Strict):
    name: str = Field(min_length=1)
    weight: float = Field(default=1.0, gt=0, description="share of contended memories against other tenants")
    priority: int = Field(default=0, description="a higher priority may preempt a lower one")
    quota: QuotaSpec = Field(default_factory=QuotaSpec)
    secret: str | None = Field(default=None, min_length=8, description="HMAC key its requests' tokens are signed "
                               "with (none: no token needed)")
    slo: SloSpec | None = Field(default=None, description="service levels of its requests that name none")


class ControlSpec(_Strict):
    """The controller: where it sits, how it learns of faults, how often it judges service levels."""

    controller: str | None = Field(default=None, description="its node (default: the one with the least total "
                                   "classical delay to all others)")
    heartbeat_s: float = Field(default=0.01, gt=0, description="period of the heartbeats across every link, s")
    heartbeat_misses: int = Field(default=3, ge=1, description="missed heartbeats before a link is declared down")
    check_s: float | None = Field(default=None, gt=0, description="step of the SLO checks and of the timelines, s "
                                  "(default: a 200th of the run)")


class RoutingSpec(_Strict):
    """Proactive, centralised path computation for every request at the start."""

    metric: Literal["hops", "length", "expected-time", "fidelity"] = "hops"
    paths: int = Field(default=1, ge=1, le=16, description="k shortest paths per request (Yen), used at once")


class MultiplexingSpec(_Strict):
    """How requests whose paths share a link share its memories."""

    mode: Literal["statistical", "buffer-space"] = "statistical"
    qubit_selection: Literal["oldest", "youngest", "random"] = "oldest"


class TopologyLinkSpec(_Strict):
    """What every generated or imported link gets (fields as in ``links``)."""

    length_km: float | None = Field(default=None, gt=0, description="override every link's length, km")
    attenuation_db_per_km: float = Field(default=0.2, ge=0)
    refractive_index: float = Field(default=1.47, ge=1, le=3)
    profile: str = "nv-diamond"
    scheme: Literal["single-click", "double-click"] = "single-click"
    hardware: HardwareSpec | None = None
    classical_latency_s: float = Field(default=0.0, ge=0)
    herald_latency_s: float = Field(default=0.0, ge=0)


class TopologySpec(_Strict):
    """A generated graph (line, ring, star, grid, waxman, random) or one read from a GML/GraphML file."""

    generator: Literal["line", "ring", "star", "grid", "waxman", "random"] | None = None
    file: str | None = Field(default=None, description="GML or GraphML file, relative to the scenario")
    nodes: int | None = Field(default=None, ge=2, description="number of nodes (star: leaves)")
    edges: int | None = Field(default=None, ge=1, description="random: number of links")
    rows: int | None = Field(default=None, ge=1)
    cols: int | None = Field(default=None, ge=1)
    seed: int | None = Field(default=None, ge=0, description="default: the scenario seed")
    size_km: float | None = Field(default=None, gt=0, description="waxman: side of the square, km")
    alpha: float | None = Field(default=None, gt=0)
    beta: float | None = Field(default=None, gt=0, le=1)
    spacing_km: float | None = Field(default=None, gt=0, description="line/ring/star/grid/random: link length, km")
    prefix: str = "n"
    link: TopologyLinkSpec = Field(default_factory=TopologyLinkSpec)

    @model_validator(mode="after")
    def _one_source(self) -> "TopologySpec":
        if (self.generator is None) == (self.file is None):
            raise ValueError("give either generator or file")
        return self


class Etsi014End(_Strict):
    url: str = Field(pattern=r"^https://", description="the QKD device's ETSI GS QKD 014 base URL at this end")
    cert: str = Field(min_length=1, description="the KME's client certificate at this device (PEM file; its "
                      "common name is the SAE ID the device knows it by), relative to the scenario file")
    key: str = Field(min_length=1, description="its private key (PEM file)")


class Etsi014Supply(_Strict):
    """A QKD link whose keys come from real devices: each end's device serves ETSI GS QKD 014, the KME takes
    keys from the first end (enc_keys) and the same keys from the second (dec_keys, by key ID)."""

    kind: Literal["etsi014"]
    ca: str = Field(min_length=1, description="the CA that signed the devices' certificates (PEM file)")
    ends: list[Etsi014End] = Field(min_length=2, max_length=2,
                                   description="the devices at the link's two ends, in the order of its between")
    keys_per_request: int = Field(default=32, ge=1, le=1024, description="keys fetched per ETSI 014 request")
    timeout_s: float = Field(default=10.0, gt=0, le=300)


class QkdSpec(_Strict):
    """A QKD service: decoy BB84 over one of the scenario's fibre links, or BBM92 on a request's pairs."""

    name: str = Field(min_length=1)
    protocol: Literal["decoy-bb84", "bbm92"] = "decoy-bb84"
    link: str | None = Field(default=None, description="decoy-bb84: the fibre link it runs over (by name)")
    request: str | None = Field(default=None, description="bbm92: the request whose pairs it measures "
                                "(default: the only one)")
    source_rate_hz: float = Field(default=1e9, gt=0, le=1e11, description="decoy-bb84: pulses per second")
    detector_efficiency: float = Field(default=0.1, gt=0, le=1)
    dark_count_yield: float = Field(default=1e-6, ge=0, lt=0.5, description="clicks per pulse with no light")
    misalignment: float = Field(default=0.01, ge=0, lt=0.5, description="optical error e_det")
    afterpulse_probability: float = Field(
        default=0.0, ge=0, lt=1, description="decoy-bb84: chance a detection is followed by an after-pulse click "
        "(Lim et al. 2014 use 0.04)")
    max_simulated_pulses: float = Field(
        default=1e9, ge=1e5, le=1e11,
        description="simulate at most this many pulses; the rate is measured on them and reported per second",
    )
    eps_sec: float = Field(default=1e-10, gt=0, lt=1)
    eps_cor: float = Field(default=1e-15, gt=0, lt=1)
    cascade: Literal["original", "option7", "option8"] = "option8"
    supply: Etsi014Supply | None = Field(
        default=None, description="decoy-bb84, for the KMS: where the link's keys come from (default: this "
        "simulated service; etsi014: the QKD devices at its ends)")
    block_pairs: int | None = Field(
        default=None, ge=1000, description="bbm92: pairs per post-processing block (default: all of the run's in "
        "one); a KMS gets a block's key once its last pair has been delivered")


class SaeSpec(_Strict):
    id: str = Field(pattern=SAE_ID_PATTERN, description=SAE_ID_RULE)
    node: str = Field(min_length=1)


class KmeSpec(_Strict):
    id: str = Field(pattern=SAE_ID_PATTERN, description=SAE_ID_RULE)
    nodes: list[str] = Field(min_length=1, description="nodes whose keys this KME manages (trusted nodes)")


class KmsSpec(_Strict):
    """Key management: KMEs, the SAEs attached at nodes, and the key size they hand out."""

    kmes: list[KmeSpec] = Field(min_length=1)
    saes: list[SaeSpec] = Field(min_length=2)
    key_size_bits: int = Field(default=256, ge=64, le=8192, multiple_of=8)
    max_key_count: int = Field(default=100_000, ge=1)
    trusted_nodes: list[str] | None = Field(
        default=None, description="nodes trusted to relay keys between others (default: every node of the KME); "
        "SAE pairs with no chain of trusted nodes need a bbm92 service on the pairs a request delivers between "
        "them (keys end to end)")


class OrganisationSpec(_Strict):
    sae: str = Field(min_length=1, description="the organisation's SAE (in the kms section)")
    data_share: float = Field(gt=0, le=1, description="its share of the training data, 0-1")


class PrivacySpec(_Strict):
    """Differential privacy, per record (each patient: DP-SGD in every organisation's training) or per
    organisation (each organisation's whole update clipped and noised, the noise shared over the secure sum)."""

    unit: Literal["record", "organisation"] = Field(
        default="record", description="what one guarantee protects: one record (DP-SGD: per-record clipping and "
        "noise on every training step's gradient) or one organisation's whole data (its update clipped, noise on "
        "the secure sum; needs many organisations to leave a model any signal)")
    clip_norm: float = Field(default=1.0, gt=0, description="L2 bound on each record's gradient (record) or each "
                             "organisation's update (organisation)")
    noise_multiplier: float = Field(default=0.0, ge=0, description="Gaussian noise standard deviation / clip_norm, "
                                    "on each step's gradient sum (record) or on the secure sum (organisation); "
                                    "0: off")
    delta: float = Field(default=1e-5, gt=0, lt=1, description="the delta of the reported (epsilon, delta)")
    epsilon_budget: float | None = Field(default=None, gt=0, description="refuse to start when the rounds would "
                                         "spend more epsilon than this (at delta)")


class SupplyCutSpec(_Strict):
    qkd: str = Field(description="a decoy-bb84 service of the qkd section: its link stops producing keys")
    from_round: int = Field(ge=1)


class DropoutSpec(_Strict):
    sae: str = Field(description="an organisation that crashes while training in this round (no update)")
    round: int = Field(ge=1)


class RandomnessSpec(_Strict):
    """Where the federation's differential-privacy noise and the KMS's relayed keys get their randomness: the
    default generators, or the simulated quantum random number generator (qfabric.apps.qrng: vacuum homodyne,
    SP 800-90B health tests that stop output, Toeplitz extraction), seeded from the scenario."""

    dp_noise: Literal["seeded", "qrng"] = Field(
        default="seeded", description="seeded: numpy's PCG64 from the scenario seed; qrng: the QRNG's generator")
    relay_keys: Literal["os", "qrng"] = Field(
        default="os", description="os: the operating system's generator; qrng: the QRNG's extracted bytes")


class VqcSpec(_Strict):
    """The federation's variational classifier (model: vqc): the features projected onto ``qubits`` fixed
    directions, ``layers`` entangling layers (qfabric.apps.qml.VariationalClassifier)."""

    qubits: int = Field(default=4, ge=1, le=12, description="qubits (projected features)")
    layers: int = Field(default=2, ge=1, le=8, description="entangling layers")


class FederatedSpec(_Strict):
    """Federated training between organisations (SAEs of the kms section) on Flower, keyed by the network."""

    aggregator: str = Field(min_length=1, description="the aggregator's SAE")
    organisations: list[OrganisationSpec] = Field(min_length=2)
    dataset: Literal["breast-cancer", "digits"] = Field(
        default="breast-cancer", description="scikit-learn's breast-cancer (569 patients, 30 features, 2 classes) or "
        "digits (1,797 images, 64 features, 10 classes)")
    test_fraction: float = Field(default=0.2, gt=0, lt=1, description="held out for evaluation, 0-1")
    hidden_layers: list[int] = Field(default=[384, 256], description="MLP hidden layer sizes ([]: logistic "
                                     "regression)")
    model: Literal["classical", "vqc"] = Field(default="classical", description="classical: the MLP (or logistic "
                                               "regression); vqc: a variational quantum classifier (vqc section)")
    vqc: VqcSpec = Field(default_factory=VqcSpec, description="the variational classifier, when model is vqc")
    rounds: int = Field(default=20, ge=1, le=10_000)
    local_epochs: int = Field(default=2, ge=1)
    batch_size: int = Field(default=32, ge=1)
    learning_rate: float = Field(default=1e-3, gt=0)
    round_period_s: float = Field(default=60.0, gt=0, description="simulated time per round: keys accrue")
    warmup_s: float = Field(default=60.0, ge=0, description="simulated key supply before the first round, s")
    policy: Literal["qkd-only", "hybrid", "pq-only"] = "hybrid"
    fallback: Literal["pq-only", "none", "wait"] = Field(
        default="pq-only", description="when a pool is dry: post-quantum only (audited), refuse, or wait for keys")
    max_wait_s: float = Field(default=600.0, ge=0, description="fallback wait: give up after this long, s")
    qber_threshold: float = Field(default=0.11, gt=0, lt=0.5)
    min_clients: int = Field(default=2, ge=2)
    keys_per_request: int = Field(default=1, ge=1, le=1000, description="QKD keys an ETSI 014 request fetches: "
                                  "more than 1 fetches keys for the next rounds at once (fewer requests)")
    session_rounds: int = Field(default=10, ge=1, le=1000, description="rounds one ML-KEM + X25519 key agreement "
                                "keys (a fresh QKD key still enters every round's key); 1: a new one every round")
    secure_aggregation: Literal["pairwise", "double-masking"] = Field(
        default="pairwise", description="pairwise masks (the survivors reveal their masks with organisations that "
        "drop out), or double masking: also a self-mask whose seed is shared among the peers, so an aggregator that "
        "fakes a dropout cannot unmask an update (one more message a round)")
    seed_threshold: int | None = Field(default=None, ge=1, description="double masking: shares that rebuild a "
                                       "self-mask seed (default: a majority of each organisation's peers)")
    privacy: PrivacySpec = Field(default_factory=PrivacySpec)
    supply_cuts: list[SupplyCutSpec] = Field(default_factory=list, description="chaos: QKD links that fail")
    dropouts: list[DropoutSpec] = Field(default_factory=list, description="chaos: organisations silent in a round")
    compare_plain: bool = Field(default=True, description="also run unprotected FedAvg and centralised training")


class OrbitSpec(_Strict):
    """A circular orbit: elements, or ``over`` a node (or the midpoint of two) at ``at_s`` (culmination)."""

    altitude_km: float = Field(ge=160, le=50_000, description="orbit altitude, km")
    inclination_deg: float = Field(default=97.4, ge=0, le=180, description="97.4: sun-synchronous at 500 km")
    raan_deg: float = Field(default=0.0, description="right ascension of the ascending node, deg (elements)")
    phase_deg: float = Field(default=0.0, description="argument of latitude at t = 0, deg (elements)")
    over: list[str] | None = Field(default=None, min_length=1, max_length=2, description="ground station node(s) "
                                   "the satellite culminates over (the midpoint of two) instead of the elements")
    at_s: float = Field(default=0.0, description="over: when it culminates, s from the start of the run")
    offset_deg: float = Field(default=0.0, ge=-30, le=30, description="over: orbit plane turned about the pole by "
                              "this much (a lower pass)")
    ascending: bool = Field(default=False, description="over: moving north (night passes of a dawn-dusk orbit "
                            "descend)")
    earth_rotation: bool = True


class GroundStationSpec(_Strict):
    node: str = Field(min_length=1, description="the scenario node at this telescope")
    latitude_deg: float = Field(ge=-90, le=90)
    longitude_deg: float = Field(ge=-180, le=360)
    rx_aperture_m: float = Field(default=1.0, gt=0, le=20, description="receive telescope diameter, m")
    rx_efficiency: float = Field(default=0.25, gt=0, le=1, description="receive optics after the aperture, 0-1")
    detector_efficiency: float = Field(default=0.5, gt=0, le=1)
    zenith_transmittance: float = Field(default=0.8, gt=0, le=1, description="air straight up at the wavelength")
    cn2_ground: float = Field(default=1.7e-14, ge=0, le=1e-11, description="turbulence Cn^2 at the ground, m^-2/3")


class TransmitterSpec(_Strict):
    wavelength_nm: float = Field(default=850.0, gt=100, lt=20_000)
    aperture_m: float = Field(default=0.3, gt=0, le=5, description="transmit telescope diameter, m")
    beam_quality: float = Field(default=1.0, ge=1, description="M^2")
    divergence_urad: float | None = Field(default=None, gt=0, description="full 1/e^2 divergence, urad")
    pointing_jitter_urad: float = Field(default=0.0, ge=0, description="rms per axis, urad")
    efficiency: float = Field(default=1.0, gt=0, le=1, description="transmit optics, 0-1")


class SatelliteQkdSpec(_Strict):
    """Decoy BB84 from the satellite to one ground station (defaults: Liao et al. 2017)."""

    station: str = Field(description="the ground station's node")
    source_rate_hz: float = Field(default=1e8, gt=0, le=1e11)
    intensities: tuple[float, float, float] = Field(default=(0.8, 0.1, 0.0), description="signal, decoy, vacuum")
    probabilities: tuple[float, float] = Field(default=(0.5, 0.25), description="of signal and decoy (vacuum: rest)")
    p_z: float = Field(default=0.5, gt=0, lt=1, description="key-basis probability (each side)")
    dark_count_yield: float = Field(default=1e-6, ge=0, lt=0.5, description="background clicks per pulse")
    misalignment: float = Field(default=0.01, ge=0, lt=0.5)
    eps_sec: float = Field(default=1e-10, gt=0, lt=1)
    eps_cor: float = Field(default=1e-15, gt=0, lt=1)


class PairSourceSpec(_Strict):
    """An entangled-pair source on the satellite sending one photon to each of two ground stations."""

    stations: tuple[str, str] = Field(description="the two ground stations' nodes")
    pair_rate_hz: float = Field(gt=0, le=1e10, description="pairs per second at the source")
    background_hz: tuple[float, float] = Field(default=(500.0, 500.0), description="dark counts and stray light at "
                                               "each station's detectors, counts/s (assumed default)")
    coincidence_window_ns: float = Field(default=2.5, gt=0, le=1000, description="clicks at the two stations "
                                         "within this much count as a coincidence, ns")
    intrinsic_qber: float = Field(default=0.03, ge=0, lt=0.5, description="errors of true pairs: the source's "
                                  "visibility and polarisation drift in the optics (assumed default)")
    p_z: float = Field(default=0.5, gt=0, lt=1, description="BBM92: key-basis probability at each station")
    f_ec: float = Field(default=1.16, ge=1, le=2, description="BBM92: error correction's leak over the Shannon limit")
    eps_sec: float = Field(default=1e-10, gt=0, lt=1)
    eps_cor: float = Field(default=1e-15, gt=0, lt=1)


class SatelliteSpec(_Strict):
    """A satellite: its orbit, transmitter, the ground stations it serves and what it sends them."""

    name: str = Field(min_length=1)
    orbit: OrbitSpec
    transmitter: TransmitterSpec = Field(default_factory=TransmitterSpec)
    ground_stations: list[GroundStationSpec] = Field(min_length=1)
    min_elevation_deg: float = Field(default=10.0, gt=0, lt=90, description="link windows: above this elevation")
    time_step_s: float = Field(default=1.0, gt=0, le=60, description="loss sampled every this many s")
    qkd: list[SatelliteQkdSpec] = Field(default_factory=list, description="decoy-BB84 downlinks")
    pairs: list[PairSourceSpec] = Field(default_factory=list, description="entangled-pair downlinks")
    trusted_relay: bool = Field(default=False, description="a trusted node of the KMS: each pass's decoy-BB84 key "
                                "goes into the pools of the link between the satellite and the station, and the "
                                "stations' KME relays keys through the satellite (Liao et al. 2018)")

    @model_validator(mode="after")
    def _stations_known(self) -> "SatelliteSpec":
        nodes = [g.node for g in self.ground_stations]
        used = [("qkd", i, q.station) for i, q in enumerate(self.qkd)]
        used += [("pairs", i, s) for i, p in enumerate(self.pairs) for s in p.stations]
        used += [("orbit.over", i, s) for i, s in enumerate(self.orbit.over or [])]
        for where, i, station in used:
            if station not in nodes:
                raise ValueError(f"{where}[{i}]: {station!r} is not one of this satellite's ground_stations {nodes}")
        if not self.qkd and not self.pairs:
            raise ValueError("give at least one qkd downlink or pairs source")
        return self


class DistributedSpec(_Strict):
    """A quantum kernel whose circuit spans two processors: the two ends of ``request`` (docs/qml.md). Its
    qubits are split in half over them; each CNOT between the halves is teleported on a pair the request got."""

    request: str = Field(min_length=1, description="the request delivering pairs between the two processors")
    dataset: Literal["ad-hoc"] = Field(default="ad-hoc", description="Havlicek et al.'s ad hoc dataset")
    qubits: int = Field(default=3, ge=2, le=10, description="feature-map qubits (and features)")
    samples: int = Field(default=40, ge=4, le=400, description="samples, half for training, half for testing")
    feature_map: Literal["zz", "iqp", "angle"] = "zz"
    reps: int = Field(default=2, ge=1, le=4, description="feature-map layers")
    entanglement: Literal["full", "linear", "circular"] = "full"
    shots: int = Field(default=100, ge=1, le=10**6, description="swap-test shots per kernel entry (for the time "
                       "to solution: each shot prepares both states)")

    @field_validator("samples")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 4:
            raise ValueError(f"a multiple of 4 (two classes, half training), got {value}")
        return value


class Scenario(_Strict):
    name: str = Field(min_length=1, description="the scenario's name (in the report)")
    description: str = Field(default="", description="one line for the report")
    seed: int = Field(default=0, ge=0, description="every random stream derives from it and its own name")
    duration_s: float = Field(gt=0, le=1e6, description="simulated time, s")
    hardware: dict[str, HardwareSpec] = Field(default_factory=dict, description="custom hardware profiles")
    topology: TopologySpec | None = Field(default=None, description="generate or import nodes and links")
    nodes: list[NodeSpec] = Field(default_factory=list, description="the nodes (with topology: added or overriding)")
    links: list[LinkSpec] = Field(default_factory=list, description="the fibre links (with topology: added or "
                                  "overriding)")
    chain: ChainSpec | None = Field(default=None, description="one request between two nodes for the whole run")
    requests: list[RequestSpec] = Field(default_factory=list, description="entanglement requests served at once")
    routing: RoutingSpec = Field(default_factory=RoutingSpec, description="how requests' paths are chosen")
    multiplexing: MultiplexingSpec = Field(default_factory=MultiplexingSpec,
                                           description="how requests sharing a link share its memories")
    qkd: list[QkdSpec] = Field(default_factory=list, description="QKD services whose keys the report shows")
    kms: KmsSpec | None = Field(default=None, description="key management: KMEs and SAEs")
    federated: FederatedSpec | None = Field(default=None, description="federated training keyed by the network")
    tenants: list[TenantSpec] = Field(default_factory=list, description="who may ask, with quotas and credentials")
    arrivals: list[ArrivalSpec] = Field(default_factory=list, description="requests arriving at random")
    faults: list[FaultSpec] = Field(default_factory=list, description="chaos: faults at given times")
    random_faults: RandomFaultsSpec | None = Field(default=None, description="chaos: fibre cuts at random")
    control: ControlSpec = Field(default_factory=ControlSpec, description="the controller: heartbeats, SLO checks")
    satellites: list[SatelliteSpec] = Field(default_factory=list, description="satellite passes over ground "
                                            "stations (nodes): decoy-BB84 and entangled-pair downlinks")
    distributed: DistributedSpec | None = Field(default=None, description="a quantum kernel over two processors "
                                                "linked by a request's pairs")
    randomness: RandomnessSpec = Field(default_factory=RandomnessSpec, description="randomness of DP noise and "
                                       "relayed keys: default generators or the QRNG")

    @model_validator(mode="after")
    def _one_kind_of_request(self) -> "Scenario":
        if self.chain is not None and self.requests:
            raise ValueError("give either chain (one request) or requests, not both")
        return self

    @model_validator(mode="after")
    def _ground_stations_are_nodes(self) -> "Scenario":
        names = {node.name for node in self.nodes}
        if self.topology is None:
            for i, sat in enumerate(self.satellites):
                for j, station in enumerate(sat.ground_stations):
                    if station.node not in names:
                        raise ValueError(f"satellites[{i}].ground_stations[{j}].node: {station.node!r} is not a node "
                                         f"of the scenario (nodes: {sorted(names)})")
        return self

    def all_requests(self) -> list[RequestSpec]:
        """The requests, with ``chain`` as the one request named ``chain``."""
        if self.chain is None:
            return list(self.requests)
        fields = self.chain.model_dump(exclude={"source", "target"})
        return [RequestSpec(name="chain", source=self.chain.source, target=self.chain.target, **fields)]
