"""The control plane: routing (path computation installed as forwarding state), the entanglement service
(requests served in time windows over their routes, rerouted around faults), faults and their detection,
service-level objectives and their monitors, tenants with credentials, quotas and a usage ledger."""

from qfabric.control.faults import Fault, FaultInjector, FaultKind, FaultRecord, Heartbeats, central_node, random_faults
from qfabric.control.routing import (
    Metric,
    NoRouteError,
    RoutingError,
    compute_routes,
    edge_cost,
    k_shortest_paths,
    path_cost,
    shortest_path,
    weight_function,
)
from qfabric.control.service import EntanglementService, Request, RequestRecord
from qfabric.control.slo import SLO, SloMonitor, Violation, evaluate
from qfabric.control.tenants import (
    Quota,
    QuotaBook,
    QuotaExceeded,
    Tenant,
    TokenError,
    UsageLedger,
    issue_token,
    preemption_victims,
    verify_token,
)

__all__ = [
    "SLO",
    "EntanglementService",
    "Fault",
    "FaultInjector",
    "FaultKind",
    "FaultRecord",
    "Heartbeats",
    "Metric",
    "NoRouteError",
    "Quota",
    "QuotaBook",
    "QuotaExceeded",
    "Request",
    "RequestRecord",
    "RoutingError",
    "SloMonitor",
    "Tenant",
    "TokenError",
    "UsageLedger",
    "Violation",
    "central_node",
    "compute_routes",
    "edge_cost",
    "evaluate",
    "issue_token",
    "k_shortest_paths",
    "path_cost",
    "preemption_victims",
    "random_faults",
    "shortest_path",
    "verify_token",
    "weight_function",
]
