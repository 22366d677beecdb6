"""The live dashboard: a scenario run (or a finished run's report) served as a web page on 127.0.0.1.

``qfabric dashboard SCENARIO.yaml`` simulates the scenario at a chosen pace and shows its topology, request and
tenant SLIs, SLO states, QKD links, federation rounds and events as they happen; ``qfabric dashboard run.json``
replays a report. ``/metrics`` exports the same numbers for Prometheus. The page's libraries (cytoscape, uPlot)
are vendored under ``static/vendor`` (see its VERSIONS.md); nothing is fetched at run time.

    hub = Hub(scenario_topology(scenario), mode="live", speed=10.0)
    start_live(scenario, hub)
    server = DashboardServer(hub, port=8050).start()   # http://127.0.0.1:8050/
"""

from qfabric.dashboard.hub import Hub, built_topology, default_speed, scenario_topology, start_live, start_replay
from qfabric.dashboard.server import DashboardServer, create_app

__all__ = ["DashboardServer", "Hub", "built_topology", "create_app", "default_speed", "scenario_topology",
           "start_live", "start_replay"]
