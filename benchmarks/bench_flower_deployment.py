"""Where a federated round's time goes on Flower's deployment runtime, phase by phase.

    python benchmarks/bench_flower_deployment.py [--rounds 8] [--poll 0 0.1 0.3]

The deployment test's set-up (``examples/flower-hospitals``: a SuperLink, three SuperNodes and ``flwr run``,
a KME in its own process, each hospital's data in a NumPy file, differential privacy on, all on 127.0.0.1),
once per ServerApp polling interval (the run config's ``poll-interval``; 0 is Flower's own grid, which asks
every 3 s), one after another in this run. Every Flower process logs time-stamped lines
(``FLWR_LOG_LEVEL=DEBUG``); a SuperNode's log also holds its ClientApp processes' lines, so for every message
it gives:

* wait: from the hospital's previous reply leaving to this message's arrival (a SuperNode that finds no
  message sleeps 3 s in Flower 1.41),
* pull: the SuperNode fetching the message from the SuperLink,
* start: its SuperExec noticing the task, and the new ``flwr-clientapp`` process importing Flower,
* input: that process fetching the message and context from its SuperNode,
* app: importing the app (``hospitals.client`` and qfabric's mod) and running it, until the reply is pushed
  to the SuperNode ("qfabric's work": the cryptography, KME requests and training of all parties in a round,
  from the round log the ServerApp writes),
* out: the SuperNode noticing the reply (it checks every 0.5 s) and uploading it to the SuperLink,
* server: from the last reply's arrival at the SuperLink to the next round's messages (the ServerApp's
  polling, pulling, aggregation, evaluation, the next round's keys and seals).

Rounds 2 and later are "steady" (one message per hospital); round 1 carries the hellos, the pairs step, the
first key batch and each node's first message. Three ClientApp processes start at once on this 2-core
machine, so absolute times follow the load average printed with them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from statistics import median

from peers import machine
from qfabric.apps.federated.loopback import LoopbackDeployment
from qfabric.kms.local import LocalKme

APP = Path(__file__).resolve().parents[1] / "examples" / "flower-hospitals"
BIN = Path(sys.executable).parent
ORGS = ["hospital-a", "hospital-b", "hospital-c"]
PHASES = ["wait", "pull", "start", "input", "app", "out"]
# log line -> event of a message on a SuperNode (the ClientApp process writes to its SuperNode's output)
MARKS = {"Receiving:": "arrived", "Received successfully": "pulled", "Start `flwr-clientapp` process": "imported",
         "Loading ClientApp": "loading", "Runtime.PushMessages": "replied", "Sent successfully": "sent"}
STAMP = re.compile(r"(?:DEBUG|INFO|WARNING|ERROR)\s+(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})")


def stamp(line: str) -> float | None:
    """The time of a Flower DEBUG-mode log line, in seconds since the epoch (None if it has no stamp)."""
    match = STAMP.search(re.sub(r"\x1b\[[0-9;]*m", "", line))
    if match is None:
        return None
    when = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC)
    return when.timestamp()


def messages(log: Path) -> list[dict[str, float]]:
    """Per message a SuperNode handled, the time of each event in :data:`MARKS` (first occurrence)."""
    found: list[dict[str, float]] = []
    for line in log.read_text(errors="replace").splitlines():
        for text, event in MARKS.items():
            if text in line and (when := stamp(line)) is not None:
                if event == "arrived":
                    found.append({})
                if found:
                    found[-1].setdefault(event, when)
    return found


def phases(msgs: list[dict[str, float]]) -> list[dict[str, float]]:
    """Each message's phases in seconds (see the module docstring)."""
    out = []
    for i, m in enumerate(msgs):
        if not {"arrived", "pulled", "imported", "loading", "replied", "sent"} <= set(m):
            continue
        out.append({"wait": m["arrived"] - msgs[i - 1]["sent"] if i and "sent" in msgs[i - 1] else float("nan"),
                    "pull": m["pulled"] - m["arrived"], "start": m["imported"] - m["pulled"],
                    "input": m["loading"] - m["imported"], "app": m["replied"] - m["loading"],
                    "out": m["sent"] - m["replied"]})
    return out


def server_turnarounds(log: Path) -> list[float]:
    """Per exchange, the SuperLink's time from the last reply's arrival to the ServerApp's next messages."""
    out, last = [], None
    for line in log.read_text(errors="replace").splitlines():
        if "[Fleet.PushMessages] Push replies" in line:
            last = stamp(line)
        elif "Runtime.PushMessages" in line and last is not None:
            out.append(stamp(line) - last)
            last = None
    return out


def deploy(work: Path, rounds: int, poll_s: float) -> dict:
    """One federation on the deployment runtime in ``work``; the ServerApp's results and the phases."""
    split = subprocess.run([sys.executable, "-m", "hospitals.task", str(work / "data")], cwd=APP,
                           capture_output=True, text=True, check=True)
    *data, test = split.stdout.split()
    kme = LocalKme.create(work / "kme", ["aggregator", *ORGS])
    for a, b in itertools.combinations(["aggregator", *ORGS], 2):
        kme.fill(a, b, 10 * (rounds // 10 + 2))
    kme.start()
    try:
        with LoopbackDeployment(work, env={"FLWR_LOG_LEVEL": "DEBUG"}, federation="bench") as fed:
            fed.start_nodes([{"data-path": data[i], "qfabric-sae-id": sae, "qfabric-kme-url": kme.url,
                              "qfabric-cert": kme.pki[sae], "qfabric-key": kme.pki[sae + ".key"],
                              "qfabric-ca": kme.pki["ca"], "qfabric-noise-seed": i} for i, sae in enumerate(ORGS)])
            results = work / "results.json"
            run = fed.flwr_run(APP, {"qfabric-kme-url": kme.url, "qfabric-cert": kme.pki["aggregator"],
                                     "qfabric-key": kme.pki["aggregator.key"], "qfabric-ca": kme.pki["ca"],
                                     "results": results, "test-data-path": test, "rounds": rounds,
                                     "poll-interval": poll_s}, timeout_s=120 + 30 * rounds)
            (work / "run.log").write_text(run.stdout + run.stderr)
            if not results.exists():
                raise SystemExit(f"flwr run failed ({run.returncode}); logs in {work}")
    finally:
        kme.stop()
    report = json.loads(results.read_text())
    return {"rounds": [c["wall_s"] for c in report["curve"][1:]], "logs": report["rounds"],
            "nodes": [phases(messages(work / f"supernode-{i}.log")) for i in range(len(ORGS))],
            "server": server_turnarounds(work / "superlink.log")}


def summary(label: str, result: dict) -> str:
    """A table row: round times, then the median of each phase over the steady rounds' messages."""
    first_train = 2  # messages 0 and 1 are round 1's hello and pairs steps
    steady = [p for node in result["nodes"] for p in node[first_train + 1:]]
    ours = median(1000 * (r["crypto_seconds"] + r["kme_seconds"] + r["train_seconds"]) for r in result["logs"][1:])
    cells = [label, f"{result['rounds'][0]:.1f}", " / ".join(f"{s:.1f}" for s in result["rounds"][1:]),
             f"{median(result['rounds'][1:]):.2f}", f"{max(result['rounds'][1:]):.2f}"]
    cells += [f"{median(p[k] for p in steady):.2f}" for k in PHASES]
    cells += [f"{ours:.0f} ms", f"{median(result['server'][first_train + 1:]):.2f}"]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--poll", type=float, nargs="+", default=[0.0, 0.1, 0.3],
                        help="the ServerApp's polling intervals to compare, in seconds (0: Flower's grid)")
    parser.add_argument("--keep", type=Path, help="keep every process's log in this directory")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-flower-"))
    flwr = subprocess.run([str(BIN / "flwr"), "--version"], capture_output=True, text=True).stdout.strip()
    print(f"{machine()}; {flwr}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {args.rounds} rounds a run")
    header = ["ServerApp polls", "round 1 s", "rounds 2- s", "steady median s", "steady max s", *PHASES,
              "qfabric's work (all parties)", "server"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header), flush=True)
    try:
        for poll_s in args.poll:
            load = os.getloadavg()[0]
            result = deploy(work / f"poll-{poll_s}", args.rounds, poll_s)
            label = "Flower's grid (3 s)" if poll_s == 0 else f"every {poll_s:g} s"
            print(summary(label, result) + f" load {load:.1f} -> {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
