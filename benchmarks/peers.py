"""Helpers to run peer simulators (SeQUeNCe) from ../shared/peers in their own virtual environment.

SeQUeNCe 1.3.x needs Python 3.12; it is installed in ``benchmarks/.peer-venv`` (created on first
use) and never in qfabric's environment. Set ``QFABRIC_PEER_PYTHON`` to use another interpreter.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS = HERE.parents[1] / "shared" / "peers"
VENV = HERE / ".peer-venv"


def _python312() -> str:
    # a real interpreter first: pyenv's python3.12 shim fails (exit 127) when 3.12 is not the selected version
    found = next(iter(sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")))), None) \
        or shutil.which("python3.12")
    if not found:
        sys.exit("SeQUeNCe 1.3 needs Python 3.12 and none was found (install one, or set QFABRIC_PEER_PYTHON)")
    return found


def peer_python() -> str:
    """The interpreter that has SeQUeNCe installed (creating the environment on first use)."""
    if os.environ.get("QFABRIC_PEER_PYTHON"):
        return os.environ["QFABRIC_PEER_PYTHON"]
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {VENV} with SeQUeNCe (first run only) ...", file=sys.stderr)
        subprocess.run([_python312(), "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "sequence>=1.3,<1.4"], check=True)
    return str(python)


def run_peer(script: str, *args: str, timeout: float = 1800) -> dict:
    """Run ``../shared/peers/<script>`` and parse the JSON line it prints."""
    env = os.environ | {"OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run([peer_python(), str(PEERS / script), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=str(HERE), env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{script} failed:\n{proc.stderr[-2000:]}")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1]
    return json.loads(line)


def machine() -> str:
    """One line describing this machine for the benchmark record."""
    import platform

    cpu = platform.processor() or "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"
