"""BBM92 keys from a satellite's pair source reach the KMS as a QKD link between its two ground stations
(scenarios/satellite-bbm92.yaml): the satellite never holds them; SAEs beyond a station get them relayed."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from qfabric.kms.relay import link_pool
from qfabric.kms.store import KeyStore
from qfabric.scenario import load_scenario
from qfabric.scenario.keysupply import KeySupply
from qfabric.scenario.satellite import satellite_report

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "satellite-bbm92.yaml"
UNIT = 256


@pytest.fixture(scope="module")
def fed():
    scenario = load_scenario(SCENARIO)
    [row] = satellite_report(scenario)
    store, pools = KeyStore("sqlite://", b"s" * 32), {}
    supply = KeySupply(scenario, store, "kme-west", lambda a, b: pools.setdefault((a, b), f"pair:{a}|{b}"),
                       rate_scale=0.01)
    supply.prime()
    return row, supply, store, pools


def test_the_runs_coincidences_are_drawn_as_the_report_expects_them(fed):
    row, supply, _, _ = fed
    link = supply.sky_links[("delingha", "nanshan")]
    assert (link.name, link.request) == ("micius/delingha-nanshan", "micius")
    assert len(row["passes"]) >= 3  # four days: several common passes
    # Poisson draws of every pass's true pairs and accidentals: their total within 5 sigma of the expectation
    assert abs(link.pairs - row["coincidences"]) < 5 * math.sqrt(row["coincidences"])
    # the measured key-basis QBER (a quarter of the coincidences, Z-Z) against the expected, within 4 sigma
    sigma = math.sqrt(row["qber"] * (1 - row["qber"]) / (row["coincidences"] / 4))
    assert link.qber == pytest.approx(row["qber"], abs=4 * sigma)


def test_the_key_is_the_same_at_both_stations_and_reaches_the_pools_when_the_last_pass_ends(fed):
    row, supply, store, pools = fed
    [(ready, alice, bob)] = supply.sky_links[("delingha", "nanshan")].blocks  # the run's passes as one block
    assert ready == pytest.approx(row["passes"][-1]["end_s"]) and np.array_equal(alice, bob)
    # post-processed in full (Cascade, privacy amplification): the analytic finite key of the report, within 2x
    assert row["key_bits"] / 2 < len(alice) < row["key_bits"] * 2
    stations, lab = pools[("delingha-sae", "nanshan-sae")], pools[("nanshan-sae", "lab-sae")]
    supply.tick(ready - 1)
    assert store.available(stations) == store.available(lab) == 0  # nothing before the block is complete
    supply.tick(2)
    units = len(alice) // UNIT
    # the stations' pair over the sky link alone, the lab over it and its fibre (Delingha trusted): all the units,
    # shared between the two pairs that cross the link, none left at the link's ends
    assert units > 0 and store.available(stations) + store.available(lab) == units
    assert store.available(link_pool("delingha", "nanshan", "delingha")) == 0
    assert supply.path_now("delingha-sae", "nanshan-sae") == ["delingha", "nanshan"]
    assert supply.path_now("nanshan-sae", "lab-sae") in (["nanshan", "delingha", "delingha-lab"],
                                                         ["delingha-lab", "delingha", "nanshan"])
    assert store.available(lab) > 0 and store.available(stations) > 0
    status = supply.link_qber("nanshan-sae", "lab-sae")  # the worst of the sky link and the fibre
    fibre = supply.links_now()["qkd-delingha-lab"]["qber"]
    assert status["link_qber"] == pytest.approx(max(supply.sky_links[("delingha", "nanshan")].qber, fibre))
    assert supply.links_now()["micius/delingha-nanshan"]["qber"] == supply.sky_links[("delingha", "nanshan")].qber
