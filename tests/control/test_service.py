"""The entanglement service with tenants: credentials, exact quotas, metering, weighted sharing."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from qfabric.control import EntanglementService, Quota, Request, Tenant, UsageLedger, issue_token
from qfabric.errors import ParameterError
from qfabric.network import LinkModel, Network, Protocol
from qfabric.sim import Simulator

STATE = (0.95, 0.02, 0.02, 0.01)


def star(leaves=("u1", "u2", "u3"), p=0.2, capacity=2, seed=1) -> Network:
    net = Network(Simulator(seed=seed), seconds_per_tick=1e-3)  # a tick a millisecond
    model = LinkModel(success_probability=p, attempt_period=1, herald_delay=1, state=STATE, capacity=capacity)
    for leaf in leaves:
        net.add_link(f"{leaf}-h", leaf, "h", model)
    return net


TENANTS = {
    "bank": Tenant("bank", quota=Quota(max_concurrent_requests=2), secret=b"bank-secret"),
    "lab": Tenant("lab", quota=Quota(max_pairs_per_window=25, window_s=1.0)),
    "uni": Tenant("uni", quota=Quota(max_memory_qubits=4)),
}


def service(net=None, tenants=TENANTS) -> EntanglementService:
    return EntanglementService(net or star(), tenants=tenants, ledger=UsageLedger())


def test_a_request_without_a_valid_token_is_refused_and_logged():
    svc = service()
    good = svc.submit(Request("good", "u1", "u2", tenant="bank", end_s=1),
                      token=issue_token(TENANTS["bank"], request="good", not_after_s=10))
    missing = svc.submit(Request("missing", "u1", "u2", tenant="bank", end_s=1))
    expired = svc.submit(Request("expired", "u1", "u3", tenant="bank", start_s=2, end_s=3),
                         token=issue_token(TENANTS["bank"], request="expired", not_after_s=1))
    forged = svc.submit(Request("forged", "u1", "u3", tenant="bank", end_s=1),
                        token=issue_token(Tenant("bank", secret=b"guess"), request="forged", not_after_s=10))
    stolen = svc.submit(Request("stolen", "u2", "u3", tenant="bank", end_s=1),
                        token=issue_token(TENANTS["bank"], request="good", not_after_s=10))
    stranger = svc.submit(Request("stranger", "u2", "u3", tenant="mallory", end_s=1))
    svc.sim.run(until=4000)
    assert good.refused is None and len(good.delivery_ticks) > 0
    assert "malformed" in missing.refused
    assert "expired" in expired.refused
    assert "bad signature" in forged.refused
    assert "another request" in stolen.refused
    assert stranger.refused == "unknown tenant 'mallory'"
    for record in (missing, expired, forged, stolen, stranger):
        assert record.delivery_ticks == [] and record.all_routes == []
    refusals = {e["request"]: e["reason"] for e in svc.events if e["event"] == "refused"}
    assert set(refusals) == {"missing", "expired", "forged", "stolen", "stranger"}
    assert "bank-secret" not in repr(svc.events) + svc.ledger.csv_text()


def test_concurrent_requests_quota_refuses_the_third_and_admits_after_one_ends():
    svc = service()

    def submit(name, start, end):
        return svc.submit(Request(name, "u1", "u2", tenant="bank", start_s=start, end_s=end),
                          token=issue_token(TENANTS["bank"], request=name, not_after_s=100))

    first, second, third, later = submit("r1", 0, 1), submit("r2", 0, 2), submit("r3", 0.5, 2), submit("r4", 1.5, 2)
    svc.sim.run(until=3000)
    assert third.refused == "quota: tenant 'bank': max_concurrent_requests 2 reached (2 active)"
    assert first.refused is second.refused is later.refused is None
    assert len(later.delivery_ticks) > 0


def test_pairs_per_window_hold_exactly_and_the_tenant_resumes_each_window():
    net = star(p=0.5)
    svc = service(net)
    a = svc.submit(Request("a", "u1", "u2", tenant="lab", end_s=5))
    b = svc.submit(Request("b", "u1", "u3", tenant="lab", end_s=5))
    svc.sim.run(until=5000)
    ticks = np.array(sorted(a.delivery_ticks + b.delivery_ticks)) * 1e-3
    per_window = np.histogram(ticks, bins=5, range=(0, 5))[0]
    assert list(per_window) == [25] * 5  # the quota, exactly: the network could make far more
    pauses = [e for e in svc.events if e["event"] == "paused"]
    resumes = [e for e in svc.events if e["event"] == "resumed"]
    assert len(pauses) >= 8 and len(resumes) >= 8
    assert all(abs(e["t_s"] - round(e["t_s"])) < 1e-9 for e in resumes)  # at the start of a window


def test_memory_quota_counts_a_qubit_at_each_end_of_each_link():
    svc = service()
    one = svc.submit(Request("one", "u1", "u2", tenant="uni", end_s=1))  # two links: four qubits
    two = svc.submit(Request("two", "u1", "u3", tenant="uni", end_s=1))
    after = svc.submit(Request("after", "u1", "u3", tenant="uni", start_s=1.5, end_s=2))
    svc.sim.run(until=2500)
    assert one.refused is None and after.refused is None
    assert two.refused == "quota: tenant 'uni': max_memory_qubits 4 exceeded (4 reserved + 4 asked = 8)"


def test_ledger_meters_every_tenant_and_exports_csv():
    svc = service()
    svc.submit(Request("a", "u1", "u2", tenant="lab", end_s=2))
    svc.submit(Request("c", "u1", "u3", tenant="uni", end_s=1))
    svc.sim.run(until=3000)
    totals = svc.ledger.totals()
    delivered = {name: len(r.delivery_ticks) for name, r in svc.records.items()}
    assert totals["lab"]["pairs_delivered"] == delivered["a"] and totals["uni"]["pairs_delivered"] == delivered["c"]
    rows = list(csv.DictReader(io.StringIO(svc.ledger.csv_text())))
    assert {r["event"] for r in rows} >= {"submitted", "admitted", "started", "delivered", "ended"}
    assert sum(int(r["pairs"]) for r in rows if r["event"] == "delivered") == sum(delivered.values())


def test_heavier_tenant_gets_more_of_a_contended_link():
    tenants = {"gold": Tenant("gold", weight=3.0), "bronze": Tenant("bronze", weight=1.0)}
    net = star(p=0.05, capacity=4)
    svc = service(net, tenants)
    gold = svc.submit(Request("gold", "u1", "u3", tenant="gold"))
    bronze = svc.submit(Request("bronze", "u2", "u3", tenant="bronze"))
    svc.sim.run(until=200_000)
    assert len(gold.delivery_ticks) > 1.1 * len(bronze.delivery_ticks)


def test_without_tenants_every_request_is_served_and_explicit_paths_are_checked_at_once():
    svc = EntanglementService(star())
    record = svc.submit(Request("x", "u1", "u2", tenant="anyone", pairs=5))
    svc.sim.run(until=1000)
    assert len(record.delivery_ticks) == 5 and record.refused is None
    with pytest.raises(ParameterError):
        svc.submit(Request("x", "u1", "u2"))
    with pytest.raises(Exception, match="u1"):
        svc.submit(Request("bad", "u1", "u2", path=["u1", "u2"], protocol=Protocol()))
