"""The dashboard's state between the simulation thread and the web server: frames, pace, pause and speed.

A :class:`Hub` holds the run's topology and every frame made so far (:mod:`qfabric.observe.live`). The thread
that makes frames calls :meth:`Hub.pace` before pushing one, which holds it to ``speed`` simulated seconds per
wall-clock second and waits while the page has paused it. :func:`start_live` runs a scenario in such a thread
(the network simulation frame by frame, then its QKD links and federation), :func:`start_replay` replays a
finished run's report.

>>> hub = Hub({"name": "x", "duration_s": 1.0}, mode="replay", speed=1e9)
>>> hub.control(paused=True)["paused"], hub.control(paused=False, speed=2.0)["speed"]
(True, 2.0)
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from qfabric.errors import ParameterError
from qfabric.observe.live import LiveView, qkd_at, report_frame, rounds_at, topology

REPLAY_STEPS = 200  # frames of a replay
DEFAULT_WALL_S = 30.0  # without --speed, a run is shown in about this many wall-clock seconds


class Stopped(Exception):
    """The server is shutting down: the frame-making thread unwinds."""


def default_speed(duration_s: float) -> float:
    """Simulated seconds per wall-clock second that show the whole run in about ``DEFAULT_WALL_S``.

    >>> default_speed(1260.0)
    42.0
    """
    return duration_s / DEFAULT_WALL_S


class Hub:
    """Frames of one run and the controls of its pace; thread-safe.

    ``mode`` is ``"live"`` (a scenario simulated now) or ``"replay"`` (a finished report); ``speed`` is in
    simulated seconds per wall-clock second."""

    def __init__(self, topology: dict, *, mode: str, speed: float):
        self.topology = topology
        self.mode = mode
        self.frames: list[dict] = []
        self.status = "starting"
        self.error: str | None = None
        self.report: dict | None = None
        self.generation = 0  # bumped when earlier frames are rewritten (QKD values filled in after the run)
        self._lock = threading.Lock()
        self._running = threading.Event()
        self._running.set()
        self._stop = threading.Event()
        self._speed = self._check_speed(speed)
        self._anchor: tuple[float, float] | None = None  # (wall clock, simulated time) the pace is measured from

    @staticmethod
    def _check_speed(speed: float) -> float:
        if not (isinstance(speed, int | float) and 0 < speed < float("inf")):
            raise ParameterError("speed", speed, "a positive number of simulated seconds per wall-clock second")
        return float(speed)

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def speed(self) -> float:
        return self._speed

    def control(self, *, paused: bool | None = None, speed: float | None = None) -> dict:
        """Pause or resume, change the speed; returns :meth:`state`."""
        with self._lock:
            if speed is not None:
                self._speed = self._check_speed(speed)
            self._anchor = None  # measure the pace afresh from the next frame
        if paused is True:
            self._running.clear()
        elif paused is False:
            self._running.set()
        return self.state()

    def state(self) -> dict:
        """The run's status, pace and progress, as the page and ``/api/state`` show them."""
        last = self.frames[-1]["t_s"] if self.frames else 0.0
        return {"mode": self.mode, "status": self.status, "error": self.error, "paused": self.paused,
                "speed": self._speed, "t_s": last, "duration_s": self.topology["duration_s"],
                "frames": len(self.frames), "generation": self.generation, "done": self.report is not None}

    def stop(self) -> None:
        """Make the frame-making thread stop at its next frame."""
        self._stop.set()
        self._running.set()

    def pace(self, t_s: float) -> None:
        """Wait until the frame at simulated ``t_s`` is due (and while paused); raises :class:`Stopped` when the
        server stops."""
        while True:
            if self._stop.is_set():
                raise Stopped
            if not self._running.wait(0.1):
                continue
            now = time.monotonic()
            with self._lock:
                if self._anchor is None:
                    last = self.frames[-1]["t_s"] if self.frames else 0.0
                    self._anchor = (now, last)
                wall0, sim0 = self._anchor
                due = wall0 + (t_s - sim0) / self._speed
                if now - due > 1.0:  # the simulation fell behind: do not rush to catch up later
                    self._anchor = (now, t_s)
            if due <= now:
                return
            time.sleep(min(0.05, due - now))

    def set_topology(self, topology: dict) -> None:
        with self._lock:
            self.topology = topology
            self.generation += 1

    def push(self, frame: dict) -> None:
        with self._lock:
            self.frames.append(frame)

    def finish(self, report: dict) -> None:
        """The run is over: keep its report, fill the QKD values, the federation's rounds and its key pools
        into the frames (a live run only knows them once its QKD links and federation have run)."""
        with self._lock:
            for frame in self.frames:
                if not frame["qkd"]:
                    frame["qkd"] = qkd_at(report, frame["t_s"])
                if not frame["rounds"]:
                    frame["rounds"], frame["pools"] = rounds_at(report, frame["t_s"])
            if self.mode == "live":
                self.topology = topology(report)
            self.report = report
            self.generation += 1
            self.status = "done"

    def fail(self, message: str) -> None:
        self.error, self.status = message, "failed"


def scenario_topology(scenario) -> dict:
    """What a live run shows before its network is built: the scenario's name and duration."""
    return topology({"scenario": {"name": scenario.name, "duration_s": scenario.duration_s,
                                  "description": scenario.description},
                     "nodes": [], "links": [], "requests": [], "has_federation": scenario.federated is not None})


def built_topology(scenario, built) -> dict:
    """The topology of a built network (generated topologies and link names resolved): nodes with the
    scenario's positions, links, requests, tenants, QKD links."""
    positions = {n.name: list(n.position_km) if n.position_km else None for n in scenario.nodes}
    qkd_links = {x.name: list(x.between) for x in built.link_records}
    shape = {
        "scenario": {"name": scenario.name, "duration_s": scenario.duration_s, "description": scenario.description},
        "nodes": [{"name": n, "position_km": positions.get(n)} for n in built.network.nodes],
        "links": [{"name": x.name, "between": list(x.between), "length_km": x.length_km, "profile": x.profile,
                   "scheme": x.scheme} for x in built.link_records],
        "requests": [{"name": r.request.name, "between": [r.request.source, r.request.target],
                      "tenant": r.request.tenant, "slo": r.slo is not None} for r in built.records],
        "tenants": [{"name": t.name} for t in scenario.tenants],
        "qkd": [{"name": q.name, "link": q.link or q.request, "between": qkd_links.get(q.link)}
                for q in scenario.qkd],
        "has_federation": scenario.federated is not None,
    }
    return topology(shape)


def _thread(target, name: str) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def start_live(scenario, hub: Hub, *, source_file: str | Path | None = None) -> threading.Thread:
    """Simulate ``scenario`` in a thread, pushing a frame to ``hub`` after each step at the hub's pace; then
    its QKD links and federation (as ``qfabric run`` does), and the report."""
    from qfabric.scenario import run_scenario
    from qfabric.scenario.federation import run_federation

    view: LiveView | None = None

    def on_step(built, t_s: float) -> None:
        nonlocal view
        if view is None:
            view = LiveView(built.link_records, window_s=scenario.control.check_s or scenario.duration_s / 100)
            hub.set_topology(built_topology(scenario, built))
        injector, service = built.injector, built.service
        faults = [r.fault for r in injector.records] if injector else []
        events = sorted((injector.log if injector else []) + service.events, key=lambda e: e["t_s"])
        frame = view.frame(t_s, records=built.records, network=built.network, faults=faults, events=events)
        hub.pace(t_s)
        hub.push(frame)
        if t_s >= scenario.duration_s and scenario.qkd:
            hub.status = "running the QKD links"

    def run() -> None:
        try:
            hub.status = "simulating the network"
            pairs: dict = {}
            report = run_scenario(scenario, source_file=source_file, on_step=on_step, pairs_out=pairs)
            if scenario.federated is not None:
                report["federated"] = run_federation(
                    scenario, entanglement=pairs,
                    progress=lambda f, label: setattr(hub, "status", f"federated training: {label}"))
            hub.finish(report)
        except Stopped:
            hub.status = "stopped"
        except Exception as error:  # shown on the page and by the CLI: the server keeps what it has
            hub.fail(f"{type(error).__name__}: {error}")

    return _thread(run, "qfabric-dashboard-live")


def start_replay(report: dict, hub: Hub, *, steps: int = REPLAY_STEPS) -> threading.Thread:
    """Replay a finished run's ``report`` into ``hub`` in ``steps`` frames at the hub's pace."""

    def run() -> None:
        try:
            hub.status = "replaying"
            duration = report["scenario"]["duration_s"]
            previous = None
            for k in range(steps + 1):
                t_s = duration * k / steps
                hub.pace(t_s)
                hub.push(report_frame(report, t_s, previous))
                previous = t_s
            hub.report = report
            hub.status = "done"
        except Stopped:
            hub.status = "stopped"
        except Exception as error:
            hub.fail(f"{type(error).__name__}: {error}")

    return _thread(run, "qfabric-dashboard-replay")
