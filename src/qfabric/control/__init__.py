"""The control plane: routing (path computation installed as forwarding state), the entanglement service
(requests served in time windows over their routes, rerouted around faults), faults and their detection,
service-level objectives and their monitors, tenants with credentials, quotas and a usage ledger."""

from qfabric.lazy import lazy_exports

_EXPORTS = {
    "faults": ["Condition", "Fault", "FaultInjector", "FaultKind", "FaultRecord", "Heartbeats", "central_node",
        "link_conditions", "random_faults"],
    "negotiation": ["LinkFacts", "Offer", "Plan", "Prediction", "facts_from_network", "negotiate", "predict"],
    "routing": ["Metric", "NoRouteError", "RoutingError", "compute_routes", "edge_cost", "k_shortest_paths",
        "path_cost", "shortest_path", "weight_function"],
    "service": ["EntanglementService", "Request", "RequestRecord"],
    "slo": ["SLO", "SloMonitor", "Violation", "evaluate"],
    "tenants": ["Quota", "QuotaBook", "QuotaExceeded", "Tenant", "TokenError", "UsageLedger", "issue_token",
        "preemption_victims", "verify_token"],
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
