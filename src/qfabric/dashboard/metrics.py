"""The simulation's metrics for Prometheus, read from the dashboard's latest frame at each scrape.

Names follow Prometheus conventions: a ``qfabric_`` prefix, base units in the name (``_seconds``, ``_ratio``,
``_bits_per_second``), ``_total`` on counters. ``METRICS`` lists them all (the docs and the Grafana dashboard
test read it); a value the run does not have yet (no pair delivered, a replay's link counters) is left out
rather than reported as 0.

>>> from prometheus_client import generate_latest
>>> from qfabric.dashboard.hub import Hub
>>> hub = Hub({"name": "x", "duration_s": 1.0}, mode="replay", speed=1.0)
>>> b"qfabric_simulated_time_seconds 0.0" in generate_latest(registry(hub))
True
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

# name (as exposed), type, help, labels
METRICS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("qfabric_simulated_time_seconds", "gauge", "Simulated time the run has reached", ()),
    ("qfabric_simulated_duration_seconds", "gauge", "Simulated time the run lasts", ()),
    ("qfabric_simulation_speed_ratio", "gauge", "Simulated seconds per wall-clock second", ()),
    ("qfabric_simulation_paused", "gauge", "1 while the dashboard holds the run", ()),
    ("qfabric_link_up", "gauge", "1 if the link can make pairs (up or degraded), 0 if cut", ("link",)),
    ("qfabric_link_degraded", "gauge", "1 if the link has extra loss or a weaker detector", ("link",)),
    ("qfabric_link_attempt_success_ratio", "gauge",
     "Heralded successes per attempt over the last step (a replay: the run's)", ("link",)),
    ("qfabric_link_pairs_per_second", "gauge",
     "Elementary pairs heralded per second over the last step (a replay: the run's average while up)", ("link",)),
    ("qfabric_link_attempts_total", "counter", "Generation attempts so far (live runs)", ("link",)),
    ("qfabric_link_pairs_total", "counter", "Elementary pairs heralded so far (live runs)", ("link",)),
    ("qfabric_node_up", "gauge", "1 unless a node fault has it down", ("node",)),
    ("qfabric_request_pairs_delivered_total", "counter", "End-to-end pairs delivered to the request",
     ("request", "tenant")),
    ("qfabric_request_pairs_per_second", "gauge", "Pairs delivered per second over the last timeline step",
     ("request", "tenant")),
    ("qfabric_request_fidelity", "gauge", "Mean delivered fidelity over the last timeline step",
     ("request", "tenant")),
    ("qfabric_request_slo_violated", "gauge", "1 while the request's SLO is violated", ("request", "tenant")),
    ("qfabric_slo_violations_total", "counter", "SLO violations begun (per request)", ("request", "tenant")),
    ("qfabric_tenant_pairs_delivered_total", "counter", "End-to-end pairs delivered to the tenant's requests",
     ("tenant",)),
    ("qfabric_qkd_secret_key_rate_bits_per_second", "gauge", "Secret-key rate of the QKD link now",
     ("qkd", "link")),
    ("qfabric_qkd_qber_ratio", "gauge", "Quantum bit error rate of the QKD link now", ("qkd", "link")),
    ("qfabric_qkd_secret_key_bits_total", "counter", "Secret key made by the QKD link so far, bits", ("qkd", "link")),
    ("qfabric_federation_rounds_total", "counter", "Federated training rounds done", ()),
    ("qfabric_federation_key_pool_keys", "gauge", "Keys in the pool of an organisation pair after the last round",
     ("pair",)),
    ("qfabric_events_total", "counter", "Control-plane events so far by kind (faults, reroutes, refusals...)",
     ("event",)),
)
NAMES = tuple(name for name, *_ in METRICS)


class FrameCollector:
    """A ``prometheus_client`` collector over a :class:`~qfabric.dashboard.hub.Hub`'s latest frame."""

    def __init__(self, hub):
        self.hub = hub

    def describe(self):
        return []  # no fixed samples to check at registration: the frame decides

    def collect(self):
        hub = self.hub
        frame = hub.frames[-1] if hub.frames else None
        family = {}
        for name, kind, text, labels in METRICS:
            if kind == "counter":
                family[name] = CounterMetricFamily(name.removesuffix("_total"), text, labels=list(labels))
            else:
                family[name] = GaugeMetricFamily(name, text, labels=list(labels))

        def put(name: str, labels: list[str], value) -> None:
            if value is not None:
                family[name].add_metric(labels, float(value))

        put("qfabric_simulated_time_seconds", [], frame["t_s"] if frame else 0.0)
        put("qfabric_simulated_duration_seconds", [], hub.topology["duration_s"])
        put("qfabric_simulation_speed_ratio", [], hub.speed)
        put("qfabric_simulation_paused", [], hub.paused)
        if frame is not None:
            for link, row in frame["links"].items():
                put("qfabric_link_up", [link], row["state"] != "cut")
                put("qfabric_link_degraded", [link], row["state"] == "degraded")
                put("qfabric_link_attempt_success_ratio", [link], row["success_ratio"])
                put("qfabric_link_pairs_per_second", [link], row["pairs_per_s"])
                put("qfabric_link_attempts_total", [link], row["attempts"])
                put("qfabric_link_pairs_total", [link], row["successes"])
            for node, row in frame["nodes"].items():
                put("qfabric_node_up", [node], row["state"] != "down")
            for request, row in frame["requests"].items():
                labels = [request, row["tenant"] or "default"]
                put("qfabric_request_pairs_delivered_total", labels, row["pairs_delivered"])
                put("qfabric_request_pairs_per_second", labels, row["rate_hz"])
                put("qfabric_request_fidelity", labels, row["fidelity"])
                if row["slo"] in ("met", "violated"):
                    put("qfabric_request_slo_violated", labels, row["slo"] == "violated")
                    put("qfabric_slo_violations_total", labels, row["violations"])
            for tenant, row in frame["tenants"].items():
                put("qfabric_tenant_pairs_delivered_total", [tenant], row["pairs_delivered"])
            for name, row in frame["qkd"].items():
                labels = [name, row["link"] or ""]
                put("qfabric_qkd_secret_key_rate_bits_per_second", labels, row["key_rate_bps"])
                put("qfabric_qkd_qber_ratio", labels, row["qber"])
                put("qfabric_qkd_secret_key_bits_total", labels, row["key_bits"])
            if hub.topology.get("federation"):
                put("qfabric_federation_rounds_total", [], len(frame["rounds"]))
            for pair, keys in frame["pools"].items():
                put("qfabric_federation_key_pool_keys", [pair], keys)
        counts: dict[str, int] = {}
        for f in list(hub.frames):
            for event in f["events"]:
                counts[event["event"]] = counts.get(event["event"], 0) + 1
        for event, n in sorted(counts.items()):
            put("qfabric_events_total", [event], n)
        yield from family.values()


def registry(hub) -> CollectorRegistry:
    """A registry of its own (not the process-wide default) with the hub's metrics."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(FrameCollector(hub))
    return reg
