"""``qfabric dashboard``: bad input is refused plainly (exit 2); a report is served and stops on Ctrl-C."""

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from typer.testing import CliRunner

from qfabric.cli.main import app


def _flat(text: str) -> str:
    """The console wraps long lines: compare words."""
    return " ".join(text.split())


@pytest.mark.parametrize(("args", "message"), [
    (["missing.yaml"], "file not found"),
    (["missing.json"], "cannot read a JSON run report"),
    (["{bad}.json", "--speed", "0"], "--speed 0: expected a positive number"),
])
def test_bad_input_exits_2_without_traceback(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["dashboard", *args, "--no-open"])
    assert result.exit_code == 2 and message in _flat(result.output) and "Traceback" not in result.output


def test_a_json_that_is_not_a_report_is_named(tmp_path):
    path = tmp_path / "other.json"
    path.write_text('{"name": "x"}')
    result = CliRunner().invoke(app, ["dashboard", str(path), "--no-open"])
    assert result.exit_code == 2
    assert "not a qfabric run report (no scenario, nodes, links, requests)" in _flat(result.output)


def test_serves_a_report_until_interrupted(tmp_path, small_report):
    path = tmp_path / "run.json"
    path.write_text(json.dumps(small_report))
    # Ctrl-C reaches the command as it would from a terminal, even when the test run itself was started in the
    # background (a shell's background job ignores SIGINT, its children inherit that, and Python then raises no
    # KeyboardInterrupt)
    proc = subprocess.Popen([sys.executable, "-m", "qfabric.cli.main", "dashboard", str(path), "--port", "0",
                             "--no-open", "--speed", "1e6"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=os.environ | {"COLUMNS": "200"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        line = proc.stdout.readline()
        url = line.split(" at ")[1].split()[0]
        assert url.startswith("http://127.0.0.1:"), line
        deadline = time.monotonic() + 20
        while httpx.get(url + "api/state").json()["status"] != "done" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert httpx.get(url + "api/state").json()["frames"] == 201
        metrics = httpx.get(url + "metrics").text
        assert 'qfabric_request_pairs_delivered_total{request="bank-link",tenant="bank"}' in metrics
        assert "<title>qfabric dashboard</title>" in httpx.get(url).text
        assert httpx.get(url + "static/vendor/cytoscape.min.js").status_code == 200
        proc.send_signal(signal.SIGINT)
        _, errors = proc.communicate(timeout=15)  # reads both pipes: a full one cannot hold the process
        assert proc.returncode == 0, errors[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_taken_port_is_named(tmp_path, small_report):
    import socket

    path = tmp_path / "run.json"
    path.write_text(json.dumps(small_report))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["dashboard", str(path), "--port", str(port), "--no-open"])
    assert result.exit_code == 2 and f"--port {port}: cannot listen on 127.0.0.1:{port}" in _flat(result.output)
