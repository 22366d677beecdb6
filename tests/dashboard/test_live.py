"""Frames of a live run and of a replay, and the hub's pace: checked against the run's own report."""

import math
import time

import pytest

from qfabric.dashboard import Hub, start_replay
from qfabric.observe.live import LiveView, report_frame, topology
from qfabric.scenario import run_scenario
from qfabric.scenario.build import PROGRESS_STEPS

CUT = (0.8, 1.3)  # small.yaml: alpha-gamma cut
LOSS = (0.4, 1.6)  # small.yaml: beta-gamma +3 dB


def _without_wall_times(report: dict) -> dict:
    return {k: v for k, v in report.items() if k != "performance"}


def test_on_step_sees_every_step_and_leaves_the_report_unchanged(network_only):
    frames, views = [], {}

    def on_step(built, t_s):
        view = views.setdefault("v", LiveView(built.link_records, window_s=network_only.duration_s / 100))
        injector = built.injector
        events = sorted(injector.log + built.service.events, key=lambda e: e["t_s"])
        frames.append(view.frame(t_s, records=built.records, network=built.network,
                                 faults=[r.fault for r in injector.records], events=events))

    watched = run_scenario(network_only, on_step=on_step)
    plain = run_scenario(network_only)
    assert _without_wall_times(watched) == _without_wall_times(plain)

    times = [f["t_s"] for f in frames]
    assert len(frames) == PROGRESS_STEPS and times == sorted(times) and times[-1] == network_only.duration_s
    states = {f["t_s"]: f["links"]["alpha-gamma"]["state"] for f in frames}
    assert all(s == "cut" for t, s in states.items() if CUT[0] < t < CUT[1])
    assert all(s == "up" for t, s in states.items() if t < CUT[0] or t > CUT[1])
    # a step that lies wholly inside the cut makes no pair on the cut fibre
    step = network_only.duration_s / PROGRESS_STEPS
    inside = [f for f in frames if f["t_s"] - step >= CUT[0] - 1e-12 and f["t_s"] < CUT[1]]
    assert len(inside) >= 20 and all(f["links"]["alpha-gamma"]["pairs_per_s"] == 0 for f in inside)
    assert all(f["links"]["beta-gamma"]["state"] == "degraded" for f in frames if LOSS[0] < f["t_s"] < LOSS[1])
    # per-step rates add up to the link's counters; the last frame holds the report's totals
    for row in watched["links"]:
        made = math.fsum(f["links"][row["name"]]["pairs_per_s"] * step for f in frames)
        assert made == pytest.approx(row["successes"], rel=1e-9)
    last = frames[-1]
    for row in watched["requests"]:
        assert last["requests"][row["name"]]["pairs_delivered"] == row["pairs_delivered"]
    clinic = [f["requests"]["clinic-link"]["slo"] for f in frames]
    assert set(clinic) <= {"met", "violated"} and "met" in clinic
    assert sum(len(f["events"]) for f in frames) == len(watched["events"])


def test_replay_frames_follow_the_report(small_report):
    duration = small_report["scenario"]["duration_s"]
    end = report_frame(small_report, duration)
    for row in small_report["requests"]:  # the timeline integrated over the run gives back every pair
        assert end["requests"][row["name"]]["pairs_delivered"] == row["pairs_delivered"]
    assert report_frame(small_report, 1.0)["links"]["alpha-gamma"]["state"] == "cut"
    assert report_frame(small_report, 0.5)["links"]["beta-gamma"]["state"] == "degraded"
    assert report_frame(small_report, 1.7)["links"]["beta-gamma"]["state"] == "up"
    [qkd] = small_report["qkd"]
    assert qkd["key_bits"] > 0, "small.yaml's QKD link should make a key"
    live_qkd = end["qkd"]["qkd-alpha-beta"]
    assert live_qkd["key_bits"] == pytest.approx(qkd["key_bits_over_run"], rel=1e-12)
    assert live_qkd["qber"] == qkd["qber"] and live_qkd["link"] == "alpha-beta"
    steps = [0.0, 0.5, 1.0, 1.5, duration]
    seen = [e for a, b in zip([None, *steps], steps, strict=False) for e in report_frame(small_report, b, a)["events"]]
    assert seen == small_report["events"]


def test_hub_paces_pauses_and_resumes(small_report):
    duration = small_report["scenario"]["duration_s"]
    hub = Hub(topology(small_report), mode="replay", speed=duration / 0.4)  # the whole run in 0.4 s
    t0 = time.monotonic()
    thread = start_replay(small_report, hub, steps=20)
    while len(hub.frames) < 5:
        time.sleep(0.005)
    hub.control(paused=True)
    time.sleep(0.05)
    held = len(hub.frames)
    time.sleep(0.3)
    assert len(hub.frames) == held and held < 21, "a paused hub makes no frame"
    hub.control(paused=False, speed=duration / 0.2)
    thread.join(5)
    wall = time.monotonic() - t0
    assert hub.status == "done" and len(hub.frames) == 21
    # at least the 0.35 s paused, then the frames after the last one held at 0.2 s per run (sleeps overshoot)
    assert wall >= 0.35 + (21 - held) / 20 * 0.2 - 0.02
    with pytest.raises(Exception, match="speed"):
        hub.control(speed=-1)


def test_federation_rounds_come_at_their_key_supply_time_and_all_by_the_end():
    from qfabric.observe.live import rounds_at

    report = {"scenario": {"duration_s": 100.0}, "federated": {
        "warmup_s": 30.0, "round_period_s": 40.0,
        "per_round": [{"round": r, "participants": ["a", "b"], "sessions_by_mode": {"hybrid": 2},
                       "fallbacks": [], "pools_after": {"a|b": 10 - r}} for r in (1, 2, 3)],
        "curves": {"secure": [{"round": r, "accuracy": 0.5 + r / 10} for r in (0, 1, 2, 3)]}}}
    assert rounds_at(report, 29.0) == ([], {})
    done, pools = rounds_at(report, 75.0)  # rounds at 30 and 70 s
    assert [r["round"] for r in done] == [1, 2] and pools == {"a|b": 8} and done[1]["accuracy"] == 0.7
    done, pools = rounds_at(report, 100.0)  # round 3 (110 s of key supply) is past the network's end
    assert [r["t_s"] for r in done] == [30.0, 70.0, 110.0] and pools == {"a|b": 7}
