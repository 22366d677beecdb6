"""Bad scenarios: every mistake is named with file, field path and what was expected."""

import pytest

from qfabric.errors import ScenarioError
from qfabric.scenario import load_scenario, parse_scenario


def problems_of(write_scenario, data):
    path = write_scenario(data)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(path) in str(info.value)
    return dict(info.value.problems)


def test_valid_scenario_loads(write_scenario, small_data):
    sc = load_scenario(write_scenario(small_data))
    assert sc.name == "small" and sc.chain.source == "a" and len(sc.links) == 2


def test_unknown_field_suggests_the_right_name(write_scenario, small_data):
    small_data["links"][0]["length"] = small_data["links"][0].pop("length_km")
    problems = problems_of(write_scenario, small_data)
    assert "did you mean 'length_km'" in problems["links[0].length"]


def test_a_link_needs_a_length_or_positions(write_scenario, small_data):
    del small_data["links"][0]["length_km"]
    problems = problems_of(write_scenario, small_data)
    assert "give length_km or both nodes' position_km" in problems["links[0].length_km"]
    small_data["nodes"][0]["position_km"] = [0, 0]
    small_data["nodes"][1]["position_km"] = [3, 4]
    sc = load_scenario(write_scenario(small_data))
    assert sc.links[0].length_km == pytest.approx(5.0)


def test_wrong_units_are_explained(write_scenario, small_data):
    small_data["links"][1]["length_km"] = "12 km"
    small_data["duration_s"] = "5 s"
    problems = problems_of(write_scenario, small_data)
    assert problems["links[1].length_km"] == "expected a number (in km, without a unit suffix), got '12 km'"
    assert "in s" in problems["duration_s"]


def test_negative_length_and_fidelity_out_of_range(write_scenario, small_data):
    small_data["links"][0]["length_km"] = -5
    small_data["hardware"] = {"mine": {"base": "near-term", "source": {"emission_fidelity": 1.2}}}
    problems = problems_of(write_scenario, small_data)
    assert problems["links[0].length_km"] == "expected a number greater than 0, got -5"
    assert problems["hardware.mine.source.emission_fidelity"] == "expected a number <= 1, got 1.2"


def test_missing_profile_and_node_references(write_scenario, small_data):
    small_data["links"][0]["profile"] = "nv-diamnd"
    small_data["links"][1]["between"] = ["r", "bb"]
    problems = problems_of(write_scenario, small_data)
    assert "unknown profile 'nv-diamnd'" in problems["links[0].profile"]
    assert "nv-diamond" in problems["links[0].profile"]
    assert "unknown node 'bb'; did you mean 'b'?" in problems["links[1].between"]


def test_disconnected_chain(write_scenario, small_data):
    small_data["nodes"] += [{"name": "c"}, {"name": "d"}]
    small_data["links"][1]["between"] = ["r", "c"]
    problems = problems_of(write_scenario, small_data)
    assert "node 'b' is on no link" in problems["chain.to"]
    small_data["links"].append({"between": ["b", "d"], "length_km": 3})
    problems = problems_of(write_scenario, small_data)
    assert "'a'" in problems["chain"] and "'b'" in problems["chain"]
    assert "expected a path of links between them" in problems["chain"]


def test_physically_impossible_override(write_scenario, small_data):
    small_data["links"][0]["hardware"] = {"memory": {"t1_s": 1.0, "t2_s": 5.0}}
    problems = problems_of(write_scenario, small_data)
    assert "t2_s = 5.0: expected at most 2 * t1_s" in problems["links[0].hardware"]


def test_nested_cutoffs_per_level_of_the_swap_tree(write_scenario, small_data):
    small_data["nodes"].append({"name": "c"})
    small_data["links"].append({"between": ["b", "c"], "length_km": 5})
    small_data["chain"] = {"from": "a", "to": "c", "scheme": "nested", "cutoff_s": [0.1]}
    problems = problems_of(write_scenario, small_data)  # three links: a balanced tree of two levels
    assert "one cut-off per nesting level (2 for 3 links), got 1" in problems["chain.cutoff_s"]
    small_data["chain"]["cutoff_s"] = [0.1, 0.2]
    assert load_scenario(write_scenario(small_data)).chain.scheme == "nested"
    small_data["chain"] = {"from": "a", "to": "c", "scheme": "swap-asap", "cutoff_s": [0.1, 0.2]}
    problems = problems_of(write_scenario, small_data)
    assert "expected one number for swap-asap" in problems["chain.cutoff_s"]


def test_several_mistakes_are_all_listed(write_scenario, small_data):
    small_data["seed"] = -1
    small_data["chain"]["scheme"] = "fastest"
    small_data["links"][0]["scheme"] = "one-click"
    problems = problems_of(write_scenario, small_data)
    assert set(problems) >= {"seed", "chain.scheme", "links[0].scheme"}
    assert "'swap-asap', 'nested' or 'sequential'" in problems["chain.scheme"]


def test_purification_needs_two_memories(write_scenario, small_data):
    small_data["links"][0]["profile"] = "nv-diamond"  # one memory per side
    small_data["chain"]["purification"] = {"rounds": 1}
    problems = problems_of(write_scenario, small_data)
    assert "needs memory capacity >= 2" in problems["links[0]"]
    assert "deadlock" in problems["chain.cutoff_s"]
    small_data["chain"]["cutoff_s"] = 0.1
    small_data["links"][0]["profile"] = "near-term"  # four memories per side
    small_data["chain"]["purification"] = {"rounds": 2, "spans": [1, 2]}
    problems = problems_of(write_scenario, small_data)
    assert "needs memory capacity >= 5" in problems["links[0]"]
    small_data["chain"]["purification"] = {"rounds": 1, "spans": [3]}
    problems = problems_of(write_scenario, small_data)
    assert "expected spans among [1, 2]" in problems["chain.purification.spans"]


def test_file_level_errors(tmp_path, write_scenario):
    with pytest.raises(ScenarioError, match="file not found"):
        load_scenario(tmp_path / "nope.yaml")
    with pytest.raises(ScenarioError, match="line 2, column"):
        load_scenario(write_scenario("name: x\n  bad: [unclosed\n"))
    with pytest.raises(ScenarioError, match="expected a mapping"):
        parse_scenario([1, 2, 3], "list.yaml")


def test_shipped_scenarios_are_valid():
    from pathlib import Path

    shipped = sorted((Path(__file__).parents[2] / "scenarios").glob("*.yaml"))
    assert shipped, "scenarios/ ships at least the default scenario"
    for path in shipped:
        load_scenario(path)


def test_a_file_not_in_utf8_is_named_with_its_line(write_scenario, tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: x\nduration_s: 1\ndescription: café\n".encode("latin-1"))
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.problems == [("", "line 3: not UTF-8 text (byte 0xe9); save the file as UTF-8")]


def test_a_key_given_twice_is_an_error(write_scenario, small_data):
    text = "name: one\nseed: 3\nduration_s: 2\nname: two\n"
    with pytest.raises(ScenarioError) as info:
        load_scenario(write_scenario(text))
    [(_, message)] = info.value.problems
    assert "line 4" in message and "key 'name' is given twice in one mapping (first on line 1)" in message


def test_a_duplicate_node_names_its_path(write_scenario, small_data):
    small_data["nodes"].append({"name": "r"})
    problems = problems_of(write_scenario, small_data)
    assert problems == {"nodes[3].name": "node name 'r' is used twice (nodes[1])"}


def test_t2_above_twice_t1_names_the_profile(write_scenario, small_data):
    small_data["hardware"] = {"slow": {"base": "nv-diamond", "memory": {"t1_s": 1.0, "t2_s": 5.0}}}
    small_data["links"][0]["profile"] = "slow"
    problems = problems_of(write_scenario, small_data)
    assert problems["hardware.slow.memory.t2_s"] == "t2_s = 5.0: expected at most 2 * t1_s = 2.0 s"


def test_a_misspelt_sae_node_gets_did_you_mean(write_scenario, small_data):
    small_data["qkd"] = [{"name": "q", "link": "a-r"}]
    small_data["kms"] = {"kmes": [{"id": "k", "nodes": ["a", "r", "b"]}],
                         "saes": [{"id": "alice", "node": "a"}, {"id": "bob", "node": "bb"}]}
    problems = problems_of(write_scenario, small_data)
    assert problems["kms.saes[1].node"] == "unknown node 'bb'; did you mean 'b'?"


@pytest.mark.parametrize("length_km", [700, 3000])
def test_a_link_too_long_to_carry_entanglement_is_refused(write_scenario, small_data, length_km):
    small_data["links"][1] |= {"length_km": length_km, "profile": "nv-diamond", "scheme": "single-click"}
    problems = problems_of(write_scenario, small_data)
    message = problems["links[1].length_km"]
    assert "heralds are mostly dark counts" in message and "split it with repeater nodes" in message
    small_data["links"][1]["length_km"] = 300  # heralded fidelity 0.86: fine
    assert load_scenario(write_scenario(small_data)).links[1].length_km == 300


def test_sae_ids_and_node_names_that_could_not_name_a_key_pool_are_refused(write_scenario, small_data):
    small_data["qkd"] = [{"name": "q", "link": "a-r"}]
    small_data["kms"] = {"kmes": [{"id": "kme 1", "nodes": ["a", "r", "b"]}],
                         "saes": [{"id": "alice|bob", "node": "a"}, {"id": "x" * 65, "node": "b"}]}
    small_data["nodes"].append({"name": "n" * 49})
    problems = problems_of(write_scenario, small_data)
    rule = "expected 1 to 64 characters A-Z a-z 0-9 . _ - starting with a letter or digit"
    assert problems["kms.kmes[0].id"] == f"{rule}, got 'kme 1'"
    assert problems["kms.saes[0].id"] == f"{rule}, got 'alice|bob'"
    assert problems["kms.saes[1].id"].startswith(rule)
    assert problems[f"nodes[{len(small_data['nodes']) - 1}].name"].startswith("expected at most 48 characters")


def test_a_free_space_link_too_lossy_to_herald_is_judged_by_its_own_loss(write_scenario, small_data):
    small_data["links"][1] |= {"length_km": 60, "kind": "free-space", "profile": "nv-diamond",
                               "scheme": "single-click", "optics": {"tx_aperture_m": 0.05, "rx_aperture_m": 0.05}}
    message = problems_of(write_scenario, small_data)["links[1].length_km"]
    assert message.startswith("60 km of free space passes") and "split it with repeater nodes" in message
    small_data["links"][1] |= {"length_km": 2}  # a short hop through the air is fine
    assert load_scenario(write_scenario(small_data)).links[1].kind == "free-space"
