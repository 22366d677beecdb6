"""Shared fixtures: a small valid scenario as data and as a file."""

import copy

import pytest
import yaml

SMALL = {
    "name": "small",
    "seed": 3,
    "duration_s": 2.0,
    "nodes": [{"name": "a"}, {"name": "r"}, {"name": "b"}],
    "links": [
        {"name": "a-r", "between": ["a", "r"], "length_km": 10, "profile": "near-term", "scheme": "double-click"},
        {"name": "r-b", "between": ["r", "b"], "length_km": 12, "profile": "near-term", "scheme": "double-click"},
    ],
    "chain": {"from": "a", "to": "b", "scheme": "swap-asap"},
}


@pytest.fixture
def small_data():
    return copy.deepcopy(SMALL)


@pytest.fixture
def write_scenario(tmp_path):
    def write(data, name="scenario.yaml"):
        path = tmp_path / name
        path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
        return path

    return write

