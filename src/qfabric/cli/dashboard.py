"""``qfabric dashboard``: a scenario run live (or a finished run replayed) as a web page on 127.0.0.1.

    qfabric dashboard scenarios/metro-tenants.yaml            simulate it, open http://127.0.0.1:8050/
    qfabric dashboard run.json --speed 100 --no-open          replay a report written by qfabric run --json
"""

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from qfabric.cli.common import err, fail, out
from qfabric.errors import QfabricError

REPORT_KEYS = ("scenario", "nodes", "links", "requests")


def load_report(path: Path) -> dict:
    """A run report (``qfabric run --json``) to replay; a clear error when it is not one."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise QfabricError(f"{path}: cannot read a JSON run report ({error})") from None
    missing = [k for k in REPORT_KEYS if not isinstance(report, dict) or k not in report]
    if missing:
        raise QfabricError(f"{path}: not a qfabric run report (no {', '.join(missing)}); write one with "
                           "qfabric run SCENARIO --json FILE")
    return report


def dashboard(
    source: Annotated[Path, typer.Argument(help="Scenario YAML to run live, or a run report JSON to replay.")],
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port on 127.0.0.1 (0: any free port).")]
    = 8050,
    speed: Annotated[float | None, typer.Option(
        "--speed",
        help="Simulated seconds per wall-clock second (default: the whole run in about 30 s).")] = None,
    open_browser: Annotated[bool, typer.Option("--open/--no-open", help="Open the page in a web browser.")] = True,
) -> None:
    """Serve a live dashboard of a scenario run (topology, SLIs, SLOs, QKD, federation, events, /metrics)."""
    import webbrowser

    from qfabric.dashboard import DashboardServer, Hub, default_speed, scenario_topology, start_live, start_replay
    from qfabric.observe.live import topology

    try:
        if speed is not None and not speed > 0:
            raise QfabricError(f"--speed {speed:g}: expected a positive number of simulated seconds per second")
        if source.suffix.lower() == ".json":
            report = load_report(source)
            hub = Hub(topology(report), mode="replay",
                      speed=speed or default_speed(report["scenario"]["duration_s"]))
            start = lambda: start_replay(report, hub)  # noqa: E731
        else:
            from qfabric.scenario import load_scenario

            scenario = load_scenario(source)
            hub = Hub(scenario_topology(scenario), mode="live", speed=speed or default_speed(scenario.duration_s))
            start = lambda: start_live(scenario, hub, source_file=source)  # noqa: E731
        try:
            server = DashboardServer(hub, port=port).start()
        except OSError as error:
            raise QfabricError(f"--port {port}: cannot listen on 127.0.0.1:{port} ({error.strerror or error})") \
                from None
    except QfabricError as error:
        fail(error)
    start()
    out.print(f"dashboard of {hub.topology['name']} at [bold]{server.url}[/bold] "
              f"({hub.mode}, {hub.speed:.4g} simulated s per s; metrics at {server.url}metrics); Ctrl-C to stop")
    if open_browser:
        webbrowser.open(server.url)
    try:
        _follow(hub)
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    if hub.error:
        fail(QfabricError(f"the run failed: {hub.error}"))


def _follow(hub) -> None:
    """A progress bar of simulated time on the terminal until the run is done (then keep serving)."""
    import time

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    if not sys.stderr.isatty():
        while hub.status not in ("done", "failed", "stopped"):
            time.sleep(0.5)
        return
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[t]}"),
                  TimeElapsedColumn(), console=err, transient=True) as bar:
        task = bar.add_task("starting", total=hub.topology["duration_s"], t="")
        while hub.status not in ("done", "failed", "stopped"):
            s = hub.state()
            bar.update(task, completed=s["t_s"], description=("paused" if s["paused"] else s["status"]),
                       t=f"{s['t_s']:.4g} of {s['duration_s']:.4g} simulated s")
            time.sleep(0.25)
    out.print(f"run {hub.status}; still serving (Ctrl-C to stop)")
