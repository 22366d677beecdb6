"""Flower's deployment runtime on 127.0.0.1: a SuperLink, one SuperNode per organisation and ``flwr run``, each
in its own process, for the deployment test, its benchmark and demos (``examples/flower-hospitals``).

    >>> # with LoopbackDeployment(work) as fed:                    # the SuperLink listens
    >>> #     fed.start_nodes([{"qfabric-sae-id": "hospital-a", ...}, ...])   # one SuperNode per node config
    >>> #     run = fed.flwr_run(app_dir, {"rounds": 3, ...})      # subprocess.CompletedProcess
    >>> # every process stopped; their logs stay in work/*.log
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from qfabric.kms.local import free_port, wait_listening

BIN = Path(sys.executable).parent
QUIET_FLOWER = {
    "PYTHONUNBUFFERED": "1",
    "FLWR_SUPEREXEC_TASK_POLL_INTERVAL": "0.1",  # a SuperNode starts its ClientApps within 0.1 s, not 1 s
    "FLWR_TELEMETRY_ENABLED": "0",  # nothing is called off this machine
    "FLWR_DISABLE_UPDATE_CHECK": "1",
}


def config_string(values: Mapping[str, object]) -> str:
    """Flower's ``--node-config`` / ``--run-config`` syntax (TOML values): strings quoted, numbers and booleans bare.

    >>> config_string({"data-path": "/d/a.npz", "rounds": 3, "noise": 0.5, "double-masking": True})
    'data-path="/d/a.npz" rounds=3 noise=0.5 double-masking=true'
    """
    def value(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v) if isinstance(v, int | float) else f'"{v}"'

    return " ".join(f"{k}={value(v)}" for k, v in values.items())


class LoopbackDeployment:
    """A SuperLink on a free port of 127.0.0.1 (started on entering), SuperNodes, and ``flwr run`` against them;
    every process runs in its own session with its output in ``work / f"{name}.log"`` and is stopped on exit
    (SIGTERM, then SIGKILL after 10 s). ``env``: extra environment for all of them (e.g. ``FLWR_LOG_LEVEL``)."""

    def __init__(self, work: Path, env: Mapping[str, str] | None = None, federation: str = "loopback"):
        self.work, self.federation = Path(work), federation
        self.port = free_port()
        self.env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                        FLWR_HOME=str(self.work / "flwr"), **QUIET_FLOWER, **(env or {}))
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> LoopbackDeployment:
        flwr_home = self.work / "flwr"
        flwr_home.mkdir(parents=True, exist_ok=True)
        (flwr_home / "config.toml").write_text(  # flwr's SuperLink connection: this one, on loopback
            f'[superlink]\ndefault = "{self.federation}"\n\n[superlink.{self.federation}]\n'
            f'address = "127.0.0.1:{self.port}"\ninsecure = true\n')
        try:
            link = self.launch("superlink", "flower-superlink", "--insecure",
                               "--disable-runtime-dependency-installation", "--host", "127.0.0.1",
                               "--port", str(self.port), "--database", str(self.work / "link.db"))
            wait_listening(self.port, link, self.work / "superlink.log", timeout_s=60)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def launch(self, name: str, command: str, *args: str) -> subprocess.Popen:
        """Start ``command`` (a script of this environment) in its own session, output to ``work/name.log``."""
        with open(self.work / f"{name}.log", "wb") as out:
            self.procs.append(subprocess.Popen([str(BIN / command), *args], env=self.env, stdout=out,
                                               stderr=subprocess.STDOUT, start_new_session=True))
        return self.procs[-1]

    def start_nodes(self, node_configs: list[Mapping[str, object]]) -> None:
        """One SuperNode per node config (``supernode-0``, ``-1``, ... in the logs)."""
        for i, config in enumerate(node_configs):
            self.launch(f"supernode-{i}", "flower-supernode", "--insecure", "--superlink", f"127.0.0.1:{self.port}",
                        "--host", "127.0.0.1", "--port", str(free_port()), "--node-config", config_string(config))

    def flwr_run(self, app: Path, run_config: Mapping[str, object], timeout_s: float) -> subprocess.CompletedProcess:
        """``flwr run APP`` on this SuperLink with ``run_config``, streaming its logs until the run ends."""
        return subprocess.run([str(BIN / "flwr"), "run", str(app), self.federation, "--run-config",
                               config_string(run_config), "--stream"], env=self.env, capture_output=True, text=True,
                              timeout=timeout_s)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
