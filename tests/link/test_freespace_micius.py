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
from qfabric.qkd.satellite import bbm92_block_key, decoy_pass_key, pair_pass


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


def test_coincidences_count_accidentals_and_their_errors_as_closed_forms():
    """Accidentals: the two stations' singles (pairs arriving plus background) within one window,
    ``S_a S_b tau`` per second; half of them in error, the true pairs with the intrinsic error rate."""
    eta_a, eta_b = np.array([1e-3, 2e-3, 0.0]), np.array([5e-4, 1e-3, 1e-3])  # the last slice: A sees nothing
    rate, background, tau, e0 = 5.9e6, (400.0, 900.0), 2.5e-9, 0.03
    p = pair_pass(eta_a, eta_b, 2.0, rate, background, tau, e0)
    s_a, s_b = rate * eta_a[:2] + background[0], rate * eta_b[:2] + background[1]
    true, accidental = 2.0 * rate * eta_a[:2] * eta_b[:2], 2.0 * s_a * s_b * tau
    assert p.duration_s == 4.0
    assert p.pairs == pytest.approx(true.sum(), rel=1e-12)
    assert p.accidentals == pytest.approx(accidental.sum(), rel=1e-12)
    assert p.qber == pytest.approx((e0 * true.sum() + accidental.sum() / 2) / (true.sum() + accidental.sum()),
                                   rel=1e-12)
    assert pair_pass(eta_a, eta_b, 2.0, rate, intrinsic_qber=e0).qber == pytest.approx(e0)  # no noise: e0 alone
    assert pair_pass(eta_a, eta_b, 2.0, 1e-3, (1e5, 1e5), 1e-6).qber == pytest.approx(0.5, abs=1e-3)  # all noise


def test_yin_2020_bbm92_key_from_the_published_counts():
    """Yin et al., Nature 582, 501 (2020): 6,208 coincidences in 3,100 s over 1,120 km, QBER 4.5 %, Hamming
    error correction at f = 1.19; asymptotic key 0.43 bit/s (ours within 5 %: the same formula on the published
    counts, the sifted bits taken as half the coincidences). Their finite key, 372 bits at eps = 1e-10, comes
    from their own finite-key analysis; the composable bound here (Tomamichel et al. 2012, the X-X quarter of the
    coincidences disclosed to bound the phase error) gives none for that block and needs about 2.4 times the
    data: stated, not matched."""
    published = bbm92_block_key(6208, 0.045, p_z=0.5, f_ec=1.19)
    assert published.sifted_bits == pytest.approx(3104)
    assert published.asymptotic_key_bits / 3100 == pytest.approx(0.43, rel=0.05)
    assert published.key_bits == 0
    longer = [bbm92_block_key(n, 0.045, p_z=0.5, f_ec=1.19).key_bits for n in (12_000, 15_000, 30_000, 100_000)]
    assert longer[0] == 0 < longer[1] < longer[2] < longer[3]
    assert longer[3] < bbm92_block_key(100_000, 0.045, p_z=0.5, f_ec=1.19).asymptotic_key_bits
    assert bbm92_block_key(100_000, 0.12, p_z=0.5).asymptotic_key_bits == 0  # above the 11 % threshold
