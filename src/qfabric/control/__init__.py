"""The control plane: routing (path computation installed as forwarding state) and the entanglement service
(requests served in time windows over their routes), to be joined by tenants and quotas, SLO monitors, fault
schedules, detection and rerouting."""

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

__all__ = [
    "EntanglementService",
    "Metric",
    "Request",
    "RequestRecord",
    "NoRouteError",
    "RoutingError",
    "compute_routes",
    "edge_cost",
    "k_shortest_paths",
    "path_cost",
    "shortest_path",
    "weight_function",
]
