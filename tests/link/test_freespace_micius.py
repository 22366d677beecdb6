"""Satellite downlinks against the published Micius results (REFERENCES.md s9).

Parameters and their sources are listed in :mod:`qfabric.link.satellite`; several optics efficiencies are
assumed (stated there). Tolerances, with why:

* link loss at 645 km: Liao et al. 22 dB, ours within 1.5 dB;
* link loss at 1200 km: Liao et al. 35 dB, ours within 4 dB. Our loss grows by about 10 dB from 645 to 1200 km
  (diffraction 5.3 dB, air mass 4.8 dB), the measured by 13 dB: low-elevation effects we do not model (seeing-limited
  coupling into the receiver's field stop, tracking at low elevation) are the likely rest;
* the pass of 19 Dec 2016 (closest 645 km, data while within 1200 km): 273 s, ours within 10 %; sifted
  3,551,136 bits and final key 300,939 bits, ours each within a factor of 2 (finite-key Lim et al. 2014 on the
  pass's expected counts, not their exact analysis);
* entanglement (Yin et al. 2017): summed downlink length 1600-2400 km, ours within 50 km; two-downlink loss
  64-82 dB, ours within 3 dB (best) and 5 dB (worst); 1.1 pairs/s, ours within a factor of 2.
"""

import numpy as np
import pytest
from scipy.optimize import brentq

from qfabric.link.orbit import slant_range_km
from qfabric.link.satellite import micius_entanglement_downlinks, micius_liao_pass, micius_qkd_downlink
from qfabric.qkd.satellite import decoy_pass_key, pair_pass


def elevation_at(range_km: float, altitude_km: float = 500.0) -> float:
    return brentq(lambda e: slant_range_km(altitude_km, e) - range_km, 0.1, 90.0)


@pytest.mark.parametrize("range_km, published_db, tolerance_db", [(645.0, 22.0, 1.5), (1200.0, 35.0, 4.0)])
def test_micius_link_loss(range_km, published_db, tolerance_db):
    budget = micius_qkd_downlink().budget(range_km, elevation_at(range_km))
    assert budget.link_db == pytest.approx(published_db, abs=tolerance_db)


@pytest.fixture(scope="module")
def liao_pass():
    series = micius_liao_pass().series(0.0, 600.0, dt_s=1.0)
    within = (series.range_km <= 1200.0) & (series.transmissivity > 0)
    return series, within


def test_micius_pass_geometry(liao_pass):
    series, within = liao_pass
    assert series.range_km.min() == pytest.approx(645.0, abs=1.0)
    assert within.sum() == pytest.approx(273, rel=0.10)  # 1 s slices


def test_micius_key_per_pass(liao_pass):
    series, within = liao_pass
    key = decoy_pass_key(series.transmissivity[within], dt_s=1.0, source_rate_hz=1e8)
    assert 3_551_136 / 2 < key.sifted_bits < 3_551_136 * 2
    assert 300_939 / 2 < key.key_bits < 300_939 * 2
    assert key.qber == pytest.approx(0.011, abs=0.003)  # Liao et al.: about 1.1 %
    assert key.key_bits < key.asymptotic_key_bits  # finite statistics cost key


def test_yin_entanglement_distribution():
    to_delingha, to_lijiang = micius_entanglement_downlinks()
    a = to_delingha.series(0.0, 600.0, dt_s=1.0)
    b = to_lijiang.series(0.0, 600.0, dt_s=1.0)
    both = (a.transmissivity > 0) & (b.transmissivity > 0)
    summed = (a.range_km + b.range_km)[both]
    assert summed.min() == pytest.approx(1600.0, abs=50.0)
    assert summed.max() == pytest.approx(2400.0, abs=50.0)
    pairs = pair_pass(a.transmissivity, b.transmissivity, 1.0, pair_rate_hz=5.9e6)
    assert pairs.two_photon_loss_db_min == pytest.approx(64.0, abs=3.0)
    assert pairs.two_photon_loss_db_max == pytest.approx(82.0, abs=5.0)
    assert 1.1 / 2 < pairs.pair_rate_hz < 1.1 * 2
    np.testing.assert_allclose(pairs.pairs, 5.9e6 * np.sum(a.transmissivity[both] * b.transmissivity[both]))
