"""The hospitals' protected federation on Flower's deployment runtime: a SuperLink, three SuperNodes and
``flwr run``, all processes on 127.0.0.1, keys from a KME in its own process (ETSI 014, mutual TLS).

This is how organisations would run it: the example's own training code with qfabric's mod and strategy,
each hospital's data in a file of its own, every ClientApp and the ServerApp in Flower's own processes talking
to the SuperLink over HTTP, with differential privacy on. Where a round's time goes:
``benchmarks/bench_flower_deployment.py``.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from qfabric.apps.federated.deploy import PollingGrid
from qfabric.kms.local import LocalKme, free_port, wait_listening

APP = Path(__file__).resolve().parents[2] / "examples" / "flower-hospitals"
ORGS = ["hospital-a", "hospital-b", "hospital-c"]


def _warnings(log: str) -> list[str]:
    """Flower's warnings, less the reconnects it recovered from: on a busy machine the ServerApp's HTTP client
    can lose a call to the SuperLink and retry it (seen once in CI: "Connection attempt failed, retrying in
    0.89 seconds", then "Connection successful after 0.90 seconds and 2 tries"). That is Flower's transport
    recovering, not a warning about the app; any other warning, or a retry that never succeeds, still counts."""
    recovered = "Connection successful after" in log
    return [line for line in log.splitlines() if "WARNING" in line
            and not (recovered and "Connection attempt failed, retrying" in line)]


def test_warnings_keep_all_but_recovered_reconnects():
    log = ("INFO: round 1\nWARNING: Connection attempt failed, retrying in 0.89 seconds\n"
           "INFO: Connection successful after 0.90 seconds and 2 tries.\n")
    assert _warnings(log) == []
    assert _warnings(log + "WARNING: DeprecationWarning: x\n") == ["WARNING: DeprecationWarning: x"]
    assert _warnings("WARNING: Connection attempt failed, retrying in 0.89 seconds\n") != []  # never recovered


class _Grid:
    """A stand-in for Flower's deployment grid: replies to messages "a" and "b" come on the 2nd and 3rd ask."""

    def __init__(self, replies):
        self.replies, self.asks = list(replies), 0

    def push_messages(self, messages):
        return ["a", "b"]

    def pull_messages(self, message_ids):
        self.asks += 1
        return self.replies.pop(0) if self.replies else []


def _reply(to: str):
    return SimpleNamespace(metadata=SimpleNamespace(reply_to_message_id=to))


def test_polling_grid_asks_every_interval_until_every_reply_or_the_timeout():
    grid = _Grid([[], [_reply("a")], [_reply("b")]])
    started = time.monotonic()
    replies = PollingGrid(grid, interval_s=0.05).send_and_receive([])
    assert [r.metadata.reply_to_message_id for r in replies] == ["a", "b"] and grid.asks == 3
    assert 0.1 <= time.monotonic() - started < 1.0  # two waits of 0.05 s between the three asks

    silent = _Grid([])
    started = time.monotonic()
    assert PollingGrid(silent, interval_s=0.05).send_and_receive([], timeout=0.2) == []
    assert 0.2 <= time.monotonic() - started < 1.0 and 2 <= silent.asks <= 6  # stops at the timeout


def test_the_clientapp_adds_only_qfabric_and_cryptography_to_flowers_imports():
    """A SuperNode starts a new ClientApp process for every message, so whatever the example's ClientApp module
    imports beyond Flower's own ``flwr-clientapp`` is paid again in every round: only the app, qfabric's mod
    and the parts of ``cryptography`` it uses (no scikit-learn, SciPy, the aggregator's accountant...)."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import flwr.supernode.cli; before = set(sys.modules); "
            "import hospitals.client; print(*sorted({m.split('.')[0] for m in set(sys.modules) - before}))")
    out = subprocess.run([sys.executable, "-c", code, str(APP)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert set(out.stdout.split()) <= {"hospitals", "qfabric", "cryptography"}, out.stdout


def test_the_examples_training_code_does_what_its_docstrings_show():
    """``hospitals/task.py``'s doctests (the data split, the files a site holds, training): the example lives
    outside ``src``, so the suite's own doctest collection does not reach it."""
    out = subprocess.run([sys.executable, "-m", "doctest", "-v", "hospitals/task.py"], cwd=APP,
                         env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "0 failed" in out.stdout, out.stdout[-2000:] + out.stderr


def test_protected_federation_on_flowers_deployment_runtime(tmp_path):
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
               FLWR_HOME=str(tmp_path / "flwr"), PYTHONUNBUFFERED="1",
               FLWR_SUPEREXEC_TASK_POLL_INTERVAL="0.1",  # a SuperNode starts its ClientApps within 0.1 s, not 1 s
               FLWR_TELEMETRY_ENABLED="0", FLWR_DISABLE_UPDATE_CHECK="1")  # a test calls nothing off this machine
    link_port = free_port()
    (tmp_path / "flwr").mkdir()
    (tmp_path / "flwr" / "config.toml").write_text(  # flwr's SuperLink connection: this test's, on loopback
        f'[superlink]\ndefault = "qfabric"\n\n[superlink.qfabric]\naddress = "127.0.0.1:{link_port}"\n'
        "insecure = true\n")

    # each hospital's data file and the aggregator's test set, as a deployment's sites hold them (NumPy files: no
    # ClientApp process imports scikit-learn); written while the KME and the SuperLink start
    split = subprocess.Popen([sys.executable, "-m", "hospitals.task", str(tmp_path / "data")], cwd=APP,
                             env=dict(env, PYTHONDONTWRITEBYTECODE="1"), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    kme = LocalKme.create(tmp_path / "kme", ["aggregator", *ORGS])
    for a, b in itertools.combinations(["aggregator", *ORGS], 2):
        kme.fill(a, b, 10)
    kme.start()
    procs: list[subprocess.Popen] = []

    def launch(name: str, *args: str) -> tuple[subprocess.Popen, Path]:
        log = tmp_path / f"{name}.log"
        with open(log, "wb") as out:
            procs.append(subprocess.Popen([str(bin_dir / args[0]), *args[1:]], env=env, stdout=out,
                                          stderr=subprocess.STDOUT, start_new_session=True))
        return procs[-1], log

    try:
        link, log = launch("superlink", "flower-superlink", "--insecure", "--disable-runtime-dependency-installation",
                           "--host", "127.0.0.1", "--port", str(link_port), "--database", str(tmp_path / "link.db"))
        wait_listening(link_port, link, log, timeout_s=60)
        written, errors = split.communicate(timeout=60)
        *data, test_data = written.split()
        assert split.returncode == 0 and len(data) == len(ORGS), written + errors
        for i, sae in enumerate(ORGS):
            node_config = " ".join([f'data-path="{data[i]}"', f'qfabric-sae-id="{sae}"', f'qfabric-kme-url="{kme.url}"',
                                    f'qfabric-cert="{kme.pki[sae]}"', f'qfabric-key="{kme.pki[sae + ".key"]}"',
                                    f'qfabric-ca="{kme.pki["ca"]}"', f"qfabric-noise-seed={i}"])
            launch(f"supernode-{i}", "flower-supernode", "--insecure", "--superlink", f"127.0.0.1:{link_port}",
                   "--host", "127.0.0.1", "--port", str(free_port()), "--node-config", node_config)
        results = tmp_path / "results.json"
        overrides = " ".join([f'qfabric-kme-url="{kme.url}"', f'qfabric-cert="{kme.pki["aggregator"]}"',
                              f'qfabric-key="{kme.pki["aggregator.key"]}"', f'qfabric-ca="{kme.pki["ca"]}"',
                              f'results="{results}"', f'test-data-path="{test_data}"', "rounds=3"])
        started = time.perf_counter()
        run = subprocess.run([str(bin_dir / "flwr"), "run", str(APP), "qfabric", "--run-config", overrides,
                              "--stream"], env=env, capture_output=True, text=True, timeout=300)
        run_s = time.perf_counter() - started
        assert results.exists(), f"flwr run: {run.returncode}\n{run.stdout[-3000:]}\n{run.stderr[-2000:]}"
    finally:
        if split.poll() is None:
            split.kill()
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        kme.stop()

    report = json.loads(results.read_text())
    rounds = report["rounds"]
    assert [r["failed"] for r in rounds] == [None] * 3, rounds
    assert all(r["participants"] == ORGS and not r["dropped"] for r in rounds), rounds
    # 3 sessions + 3 pairwise keys per round, at both ends; keys-per-request 10: round 1 fetches 10 rounds' keys
    assert [r["qkd_keys"] for r in rounds] == [120, 0, 0] and [r["kme_requests"] > 0 for r in rounds] == [True,
                                                                                                       False, False]
    assert all(r["noise_std"] > 0 for r in rounds)  # differential privacy on (the example's default)
    modes = {e["mode"] for r in rounds for e in r["audit"] if e["event"] == "session"}
    assert modes == {"hybrid"}
    curve = [c["accuracy"] for c in report["curve"]]
    assert len(curve) == 4 and curve[-1] > curve[0], curve
    for a, b in itertools.combinations(["aggregator", *ORGS], 2):
        acc = kme.accounting(a, b)
        assert acc["keys_delivered"] == acc["claims_done"] == 10, (a, b, acc)  # each key claimed once, none lost
    # Flower prints no warning on loopback, and its log says how the strategy weights updates
    assert not _warnings(run.stdout + run.stderr), (run.stdout + run.stderr)[-3000:]
    assert "Weighted by: uniform (differential privacy" in run.stdout, run.stdout[-3000:]
    print(f"flwr run: {run_s:.1f} s; rounds: " + ", ".join(f"{c['wall_s']:.1f} s" for c in report["curve"][1:]))

