"""``--set`` paths and values: parsing, schema checks with did-you-mean, applying values, sampling."""

import pytest

from qfabric.plan.space import SweepError, apply_value, check_axes, parse_set, sample_points
from qfabric.plan.sweep import make_tasks, replicate_seed

BASE = {
    "name": "s", "seed": 3, "duration_s": 0.2,
    "nodes": [{"name": "a"}, {"name": "r"}, {"name": "b"}],
    "links": [{"name": "a-r", "between": ["a", "r"], "length_km": 10, "profile": "near-term"},
              {"name": "r-b", "between": ["r", "b"], "length_km": 12, "profile": "near-term"}],
    "chain": {"from": "a", "to": "b"},
}


def test_ranges_include_both_ends_and_lists_are_read_as_yaml():
    assert parse_set("links[*].length_km=10:60:5").values == list(range(10, 61, 5))
    assert parse_set("chain.cutoff_s=0.1:0.3:0.1").values == [0.1, 0.2, 0.3]
    assert parse_set("chain.cutoff_s=0.1,0.5,1").values == [0.1, 0.5, 1]
    assert parse_set("chain.scheme=swap-asap,nested").values == ["swap-asap", "nested"]
    assert parse_set("chain.cutoff_s=none,[0.1, 0.2]").values == [None, [0.1, 0.2]]


def test_values_reach_every_addressed_field():
    both = apply_value(BASE, "links[*].length_km", 30)
    assert [link["length_km"] for link in both["links"]] == [30, 30]
    named = apply_value(BASE, "links[r-b].attenuation_db_per_km", 0.25)
    assert named["links"][1]["attenuation_db_per_km"] == 0.25 and "attenuation_db_per_km" not in named["links"][0]
    deep = apply_value(BASE, "hardware.mine.memory.t2_s", 2.0)
    assert deep["hardware"] == {"mine": {"memory": {"t2_s": 2.0}}}
    assert BASE["links"][0]["length_km"] == 10  # the base is not changed


def test_a_path_naming_no_field_is_refused_with_a_hint():
    with pytest.raises(SweepError, match=r"--set 'links\[\*\].lenght_km=1'.*no field 'lenght_km'.*did you mean "
                                         r"'length_km'"):
        check_axes([parse_set("links[*].lenght_km=1")])
    with pytest.raises(SweepError, match="no field 'chian'.*did you mean 'chain'"):
        check_axes([parse_set("chian.cutoff_s=1")])
    with pytest.raises(SweepError, match="no entry named 'r-c'.*did you mean 'r-b'"):
        apply_value(BASE, "links[r-c].length_km", 3, "links[r-c].length_km=3")
    with pytest.raises(SweepError, match="cannot read the path"):
        parse_set("links[*]..length_km=3")


def test_wrong_units_and_types_name_the_set_and_the_field():
    with pytest.raises(SweepError, match=r"--set 'links\[\*\].length_km=10km:20km:5'.*not a number"):
        parse_set("links[*].length_km=10km:20km:5")
    with pytest.raises(SweepError, match=r"--set 'links\[0\].length_km=10km'.*links\[0\].length_km.*expected a "
                                         r"number \(in km, without a unit suffix\)"):
        make_tasks(BASE, [parse_set("links[0].length_km=10km")])
    with pytest.raises(SweepError, match=r"--set 'chain.cutoff_s=-1'.*chain.cutoff_s.*non-negative"):
        make_tasks(BASE, [parse_set("chain.cutoff_s=-1")])


def test_an_empty_grid_is_refused():
    with pytest.raises(SweepError, match="empty"):
        parse_set("links[*].length_km=60:10:5")
    with pytest.raises(SweepError, match="empty value"):
        parse_set("chain.cutoff_s=0.1,,0.2")
    with pytest.raises(SweepError, match="step must be positive"):
        parse_set("links[*].length_km=10:60:0")
    with pytest.raises(SweepError, match="--points"):
        sample_points([parse_set("links[*].length_km=10:60")], "lhs")


def test_random_and_latin_hypercube_points_stay_in_their_ranges():
    axes = [parse_set("links[*].length_km=10:60"), parse_set("chain.scheme=swap-asap,nested")]
    for sample in ("random", "lhs"):
        points = sample_points(axes, sample, points=20, seed=1)
        lengths = [p["links[*].length_km"] for p in points]
        assert len(points) == 20 and all(10 <= x <= 60 for x in lengths)
        assert {p["chain.scheme"] for p in points} == {"swap-asap", "nested"}
        assert points == sample_points(axes, sample, points=20, seed=1)
    # a Latin hypercube puts exactly one of N points in each of N equal strata of a range
    lhs = sorted(p["links[*].length_km"] for p in sample_points(axes, "lhs", points=10, seed=2))
    assert [int((x - 10) // 5) for x in lhs] == list(range(10))


def test_tasks_number_points_times_replicates_with_derived_seeds():
    tasks = make_tasks(BASE, [parse_set("links[*].length_km=10:30:10"), parse_set("chain.cutoff_s=0.01,0.02")],
                       replicates=3)
    assert len(tasks) == 3 * 2 * 3
    assert {t["seed"] for t in tasks if t["replicate"] == 0} == {3}
    assert len({t["seed"] for t in tasks}) == 3 and all(t["seed"] == replicate_seed(3, t["replicate"]) for t in tasks)
    assert len({t["key"] for t in tasks}) == 6
