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
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from qfabric.apps.federated.deploy import PollingGrid
from qfabric.apps.federated.loopback import LoopbackDeployment
from qfabric.kms.local import LocalKme

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


@pytest.mark.parametrize("double_masking", [False, True], ids=["pairwise masks", "double masking"])
def test_protected_federation_on_flowers_deployment_runtime(tmp_path, double_masking):
    """The example as shipped (3 rounds), and with double masking (2 rounds: its unmask step is one more message a
    round, answered by a ClientApp process of its own from the state Flower keeps for the node)."""
    rounds_run = 2 if double_masking else 3
    # each hospital's data file and the aggregator's test set, as a deployment's sites hold them (NumPy files: no
    # ClientApp process imports scikit-learn); written while the KME and the SuperLink start
    split = subprocess.Popen([sys.executable, "-m", "hospitals.task", str(tmp_path / "data")], cwd=APP,
                             env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    kme = LocalKme.create(tmp_path / "kme", ["aggregator", *ORGS])
    try:
        for a, b in itertools.combinations(["aggregator", *ORGS], 2):
            kme.fill(a, b, 10)
        kme.start()
        with LoopbackDeployment(tmp_path) as fed:
            written, errors = split.communicate(timeout=60)
            *data, test_data = written.split()
            assert split.returncode == 0 and len(data) == len(ORGS), written + errors
            fed.start_nodes([{"data-path": data[i], "qfabric-sae-id": sae, "qfabric-kme-url": kme.url,
                              "qfabric-cert": kme.pki[sae], "qfabric-key": kme.pki[sae + ".key"],
                              "qfabric-ca": kme.pki["ca"], "qfabric-noise-seed": i} for i, sae in enumerate(ORGS)])
            results = tmp_path / "results.json"
            started = time.perf_counter()
            run = fed.flwr_run(APP, {"qfabric-kme-url": kme.url, "qfabric-cert": kme.pki["aggregator"],
                                     "qfabric-key": kme.pki["aggregator.key"], "qfabric-ca": kme.pki["ca"],
                                     "results": results, "test-data-path": test_data, "rounds": rounds_run,
                                     "double-masking": double_masking}, timeout_s=300)
            run_s = time.perf_counter() - started
            assert results.exists(), f"flwr run: {run.returncode}\n{run.stdout[-3000:]}\n{run.stderr[-2000:]}"
    finally:
        if split.poll() is None:
            split.kill()
        kme.stop()

    report = json.loads(results.read_text())
    rounds = report["rounds"]
    assert [r["failed"] for r in rounds] == [None] * rounds_run, rounds
    assert all(r["participants"] == ORGS and not r["dropped"] for r in rounds), rounds
    # 3 sessions + 3 pairwise keys per round, at both ends; keys-per-request 10, capped at the run's rounds:
    # round 1 fetches the keys of every round
    assert [r["qkd_keys"] for r in rounds] == [12 * rounds_run] + [0] * (rounds_run - 1)
    assert [r["kme_requests"] > 0 for r in rounds] == [True] + [False] * (rounds_run - 1)
    assert all(r["noise_std"] > 0 for r in rounds)  # differential privacy on (the example's default)
    modes = {e["mode"] for r in rounds for e in r["audit"] if e["event"] == "session"}
    assert modes == {"hybrid"}
    curve = [c["accuracy"] for c in report["curve"]]
    assert len(curve) == rounds_run + 1 and curve[-1] > curve[0], curve  # self-masks left on: a random model
    for a, b in itertools.combinations(["aggregator", *ORGS], 2):
        acc = kme.accounting(a, b)
        assert acc["keys_delivered"] == acc["claims_done"] == rounds_run, (a, b, acc)  # each claimed once, none lost
    # Flower prints no warning on loopback, and its log says how the strategy weights updates
    assert not _warnings(run.stdout + run.stderr), (run.stdout + run.stderr)[-3000:]
    assert "Weighted by: uniform (differential privacy" in run.stdout, run.stdout[-3000:]
    print(f"flwr run: {run_s:.1f} s; rounds: " + ", ".join(f"{c['wall_s']:.1f} s" for c in report["curve"][1:]))

