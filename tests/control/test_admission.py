"""Negotiated requests through the service: the admitted plan keeps its promise, a refusal's offer is what the
network then delivers, admission control protects admitted requests, and priority preempts.

Network: a - r - b, two 10 km links of the near-term profile (4 memory qubits per link end), where the controller
predicts about 920 pairs/s at fidelity 0.898 with one purification round, and the engine delivers that (the
negotiation module's own tests compare predictions and engine over many more cases)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qfabric.scenario import parse_scenario
from qfabric.scenario.build import build_network

DURATION_S = 1.0


def run(requests, tenants=None, duration_s=DURATION_S):
    data = {"name": "admission", "seed": 4, "duration_s": duration_s, "nodes": [{"name": x} for x in "arb"],
            "links": [{"between": ["a", "r"], "length_km": 10, "profile": "near-term"},
                      {"between": ["r", "b"], "length_km": 10, "profile": "near-term"}],
            "requests": requests}
    if tenants:
        data["tenants"] = tenants
    built = build_network(parse_scenario(data, "admission"))
    built.sim.run(until=round(duration_s * 1e12))
    return {r.request.name: r for r in built.records}, built.service


def delivered(record, seconds):
    fidelities = np.array([w[0] for w in record.delivered_weights])
    return len(fidelities) / seconds, fidelities.mean(), fidelities.std(ddof=1) / math.sqrt(len(fidelities))


def test_the_admitted_plan_meets_its_fidelity_floor():
    records, _ = run([{"name": "x", "from": "a", "to": "b", "negotiate": True, "fidelity_min": 0.88}])
    x = records["x"]
    assert x.offer.admit and x.offer.plan.purification_rounds == 1  # no purification gives about 0.85
    rate, fidelity, se = delivered(x, DURATION_S)
    assert fidelity - 3 * se >= 0.88
    assert rate == pytest.approx(x.offer.prediction.rate_hz, rel=0.1)


def test_an_impossible_floor_is_refused_with_an_offer_the_network_then_delivers():
    records, service = run([
        {"name": "strict", "from": "a", "to": "b", "negotiate": True, "fidelity_min": 0.99},
        {"name": "accepting", "from": "a", "to": "b", "negotiate": True, "fidelity_min": 0.99,
         "if_refused": "best-offer"}])
    strict, accepting = records["strict"], records["accepting"]
    assert strict.refused.startswith("negotiation: best fidelity") and "best offer" in strict.refused
    assert strict.delivery_ticks == []
    offer = accepting.offer
    assert not offer.admit and accepting.refused is None
    assert offer.plan == strict.offer.plan
    rate, fidelity, se = delivered(accepting, DURATION_S)
    assert rate == pytest.approx(offer.prediction.rate_hz, rel=0.1)
    assert offer.prediction.fidelity - 3 * se <= fidelity <= offer.prediction.fidelity + 0.01  # a floor, and close
    assert any(e["event"] == "degraded" and e["request"] == "accepting" for e in service.events)


def test_admission_control_refuses_what_would_break_an_admitted_rate():
    records, service = run([
        {"name": "first", "from": "a", "to": "b", "negotiate": True, "fidelity_min": 0.85, "rate_hz": 1200,
         "end_s": 0.9},
        {"name": "second", "from": "a", "to": "b", "negotiate": True, "fidelity_min": 0.85, "rate_hz": 1200,
         "start_s": 0.1}])
    first, second = records["first"], records["second"]
    assert first.refused is None and first.offer.admit
    assert second.refused.startswith("admission:") and "a-r" in second.refused and "r-b" in second.refused
    rate, _, _ = delivered(first, 0.9)
    assert rate >= 1200  # its rate holds: nothing was admitted on top of it
    assert service.committed == {"a-r": 0.0, "r-b": 0.0}  # released at its end


def test_a_higher_priority_request_preempts_a_lower_one():
    tenants = [{"name": "bulk", "priority": 0}, {"name": "urgent", "priority": 1}]
    records, service = run([
        {"name": "low", "from": "a", "to": "b", "tenant": "bulk", "negotiate": True, "fidelity_min": 0.85,
         "rate_hz": 1200},
        {"name": "high", "from": "a", "to": "b", "tenant": "urgent", "negotiate": True, "fidelity_min": 0.85,
         "rate_hz": 1200, "start_s": 0.3}], tenants=tenants)
    low, high = records["low"], records["high"]
    assert low.preempted_by == "high" and low.ended_tick * 1e-12 == pytest.approx(0.3)
    assert high.refused is None
    rate, _, _ = delivered(high, DURATION_S - 0.3)
    assert rate >= 1200
    rows = [r for r in service.ledger.rows() if r["event"] == "preempted"]
    assert [(r["request"], r["detail"]) for r in rows] == [("low", "by high")]


def test_equal_priority_does_not_preempt():
    tenants = [{"name": "one"}, {"name": "two"}]
    records, _ = run([
        {"name": "low", "from": "a", "to": "b", "tenant": "one", "negotiate": True, "rate_hz": 1200},
        {"name": "other", "from": "a", "to": "b", "tenant": "two", "negotiate": True, "rate_hz": 1200,
         "start_s": 0.3}], tenants=tenants)
    assert records["low"].preempted_by is None and records["other"].refused.startswith("admission:")


def test_nobody_is_preempted_for_a_request_its_own_quota_refuses():
    tenants = [{"name": "bulk", "priority": 0}, {"name": "urgent", "priority": 1, "quota": {"max_rate_hz": 1000}}]
    records, service = run([
        {"name": "low", "from": "a", "to": "b", "tenant": "bulk", "negotiate": True, "rate_hz": 1200},
        {"name": "high", "from": "a", "to": "b", "tenant": "urgent", "negotiate": True, "rate_hz": 1200,
         "start_s": 0.3}], tenants=tenants)
    assert records["low"].preempted_by is None and records["low"].ended_tick is None
    assert records["high"].refused.startswith("admission:")
    assert not any(e["event"] == "preempted" for e in service.events)
