"""BBM92 keys from a satellite's pair source reach the KMS between its two ground stations
(scenarios/satellite-bbm92.yaml): no node holds them but the two stations, the satellite included."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

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
    supply = KeySupply(scenario, store, "kme-west", lambda a, b: pools.setdefault((a, b), f"pair:{a}|{b}"))
    return row, supply, store, pools[("delingha-sae", "nanshan-sae")]


def test_the_runs_coincidences_are_drawn_as_the_report_expects_them(fed):
    row, supply, _, _ = fed
    feed = supply.e2e[("delingha", "nanshan")]
    assert (feed.name, feed.request) == ("micius/delingha-nanshan", "micius")
    assert len(row["passes"]) >= 3  # four days: several common passes
    # Poisson draws of every pass's true pairs and accidentals: their total within 5 sigma of the expectation
    assert abs(feed.pairs - row["coincidences"]) < 5 * math.sqrt(row["coincidences"])
    # the measured key-basis QBER (a quarter of the coincidences, Z-Z) against the expected, within 4 sigma
    sigma = math.sqrt(row["qber"] * (1 - row["qber"]) / (row["coincidences"] / 4))
    assert feed.qber == pytest.approx(row["qber"], abs=4 * sigma)


def test_the_key_is_the_same_at_both_stations_and_reaches_the_pool_when_the_last_pass_ends(fed):
    row, supply, store, pool = fed
    [(ready, alice, bob)] = supply.e2e[("delingha", "nanshan")].blocks  # the run's passes as one block
    assert ready == pytest.approx(row["passes"][-1]["end_s"]) and np.array_equal(alice, bob)
    # post-processed in full (Cascade, privacy amplification): the analytic finite key of the report, within 2x
    assert row["key_bits"] / 2 < len(alice) < row["key_bits"] * 2
    supply.tick(ready - 1)
    assert store.available(pool) == 0  # nothing before the block is complete
    supply.tick(2)
    units = len(alice) // UNIT
    assert units > 0 and store.available(pool) == units
    assert supply.sources[("delingha-sae", "nanshan-sae")] == {"bbm92_end_to_end": units, "trusted_relay": 0}
    status = supply.link_qber("delingha-sae", "nanshan-sae")
    assert status["end_to_end_qber"] == supply.e2e[("delingha", "nanshan")].qber and status["link_qber"] is None
