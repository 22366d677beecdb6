"""Cut-off optimisation with the exact analysis: the optimum against a brute force written here from the exact
values and the textbook BBM92 rate, known monotone cases, and a target no cut-off meets."""

import math

import pytest
from typer.testing import CliRunner

from qfabric.cli.main import app
from qfabric.network.analysis import nested_exact, swap_asap_exact
from qfabric.plan.cutoff import PlanError, bbm92_bits_per_pair, optimise_cutoff


def h(p):
    return 0.0 if p <= 0 else -p * math.log2(p) - (1 - p) * math.log2(1 - p)


def test_bbm92_optimum_matches_a_brute_force_over_the_grid():
    # 4 segments, p = 0.3, p_swap = 0.5, w0 = 0.97, t_coh = 40: cut-off 0 starves the rate, no cut-off the fidelity
    args = dict(segments=4, p_gen=0.3, p_swap=0.5, w0=0.97, t_coh=40.0)
    plan = optimise_cutoff(**args, figure="bbm92", cutoffs=range(0, 16))
    brute = {}
    for c in [*range(0, 16), None]:
        r = swap_asap_exact(4, 0.3, 0.5, 0.97, 40.0, c)
        q = 2 * (1 - r.mean_fidelity) / 3  # Werner pairs: QBER in Z and X
        brute[c] = max(0.0, 1 - 2 * h(q)) / r.mean_waiting_time
    best = max(brute, key=brute.get)
    assert plan.best.cutoff == best == 2
    assert plan.best.figure == pytest.approx(brute[best], rel=1e-12)
    assert len(plan.candidates) == 17


def test_rate_alone_prefers_no_cutoff_and_a_fidelity_target_the_largest_cutoff_meeting_it():
    args = dict(segments=4, p_gen=0.3, p_swap=0.5, w0=0.97, t_coh=40.0, cutoffs=range(0, 16))
    assert optimise_cutoff(**args, figure="rate").best.cutoff is None  # every cut-off discards pairs
    plan = optimise_cutoff(**args, figure="rate-at-fidelity", fidelity_min=0.87)
    fidelity = {c.cutoff: c.mean_fidelity for c in plan.candidates}
    # fidelity falls and rate rises with the cut-off: the optimum is the last cut-off above the target
    assert fidelity[plan.best.cutoff] >= 0.87 > fidelity[plan.best.cutoff + 1]


def test_nested_levels_are_optimised_together():
    plan = optimise_cutoff(segments=4, p_gen=0.3, p_swap=0.8, w0=0.97, t_coh=30.0, figure="bbm92",
                           cutoffs=range(0, 12, 2), scheme="nested", include_none=False)
    brute = []
    for c1 in range(0, 12, 2):
        for c2 in range(0, 12, 2):
            r = nested_exact(4, 0.3, 0.8, 0.97, 30.0, [c1, c2])
            brute.append((bbm92_bits_per_pair(r.mean_fidelity) / r.mean_waiting_time, (c1, c2)))
    assert plan.best.cutoff == max(brute)[1]


def test_a_target_no_cutoff_meets_is_a_clear_error():
    with pytest.raises(PlanError, match=r"no cut-off of the grid reaches fidelity 0.95: the best is 0\.9"):
        optimise_cutoff(4, 0.3, 0.5, 0.97, 40.0, figure="rate-at-fidelity", fidelity_min=0.95, cutoffs=range(0, 10))
    with pytest.raises(PlanError, match="no cut-off of the grid gives a secret key"):
        optimise_cutoff(4, 0.3, 0.5, 0.85, 40.0, figure="bbm92", cutoffs=range(0, 10))
    with pytest.raises(PlanError, match="needs a fidelity target"):
        optimise_cutoff(2, 0.3, figure="rate-at-fidelity")


def test_cli_prints_the_best_cutoff_and_refuses_bad_input():
    ok = CliRunner().invoke(app, ["plan", "cutoff", "--segments", "4", "--p-gen", "0.3", "--p-swap", "0.5", "--w0",
                                  "0.97", "--t-coh", "40", "--figure", "bbm92", "--cutoffs", "0:15"])
    assert ok.exit_code == 0, ok.output
    assert "best: swap-asap, cut-off 2 attempts" in " ".join(ok.output.split())
    bad = CliRunner().invoke(app, ["plan", "cutoff", "--figure", "rate-at-fidelity", "--fidelity-min", "0.999",
                                   "--w0", "0.9", "--cutoffs", "0:5"])
    assert bad.exit_code == 2 and "no cut-off of the grid reaches fidelity 0.999" in " ".join(bad.output.split())
    grid = CliRunner().invoke(app, ["plan", "cutoff", "--cutoffs", "ten"])
    assert grid.exit_code == 2 and "--cutoffs 'ten'" in grid.output
