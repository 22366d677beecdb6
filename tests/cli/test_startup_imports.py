"""`qfabric --help` and `qfabric validate` start fast because they load no heavy library (issue 14; the times are
measured in benchmarks/bench_cli.py). This checks the set of modules a fresh interpreter holds afterwards, not a
time: CI timing is noisy, the module set is not."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from qfabric.errors import ScenarioError
from qfabric.scenario.load import _UniqueKeyLoader, load_scenario
from qfabric.scenario.schema import Scenario

SCENARIOS = sorted((Path(__file__).resolve().parents[2] / "scenarios").glob("*.yaml"))

# What neither command may import (top-level package names). validate computes routes without networkx.
HEAVY = {"networkx", "numpy", "scipy", "matplotlib", "numba", "pandas", "fastapi", "starlette", "uvicorn", "httpx",
         "sqlalchemy", "pennylane", "dask", "distributed", "flwr", "torch", "sklearn", "cryptography",
         "prometheus_client", "jinja2", "plotly"}

# Runs each command in this (fresh) interpreter and prints, per command, the heavy packages it loaded first.
PROBE = """
import json, sys
from qfabric.cli.main import app

heavy, loaded = set(json.loads(sys.argv[1])), {}
for argv in json.loads(sys.argv[2]):
    before = {name.split(".")[0] for name in sys.modules}
    try:
        app(argv, prog_name="qfabric")
    except SystemExit as stop:
        if stop.code not in (0, None):
            raise SystemExit(f"qfabric {' '.join(argv)} exited with {stop.code}")
    loaded[" ".join(argv)] = sorted(({name.split(".")[0] for name in sys.modules} - before) & heavy)
print(json.dumps(loaded))
"""


def _probe(commands: list[list[str]], heavy: set[str]) -> dict[str, list[str]]:
    """The heavy packages each command loaded, run one after the other in one fresh interpreter."""
    result = subprocess.run([sys.executable, "-c", PROBE, json.dumps(sorted(heavy)), json.dumps(commands)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _draws_with_numpy(path: Path) -> bool:
    """A generated topology drawn with numpy's random generator (random, waxman) needs numpy to exist at all."""
    topology = yaml.safe_load(path.read_text()).get("topology") or {}
    return topology.get("generator") in ("random", "waxman")


def test_help_loads_neither_the_schema_nor_any_heavy_library():
    loaded = _probe([["--help"], ["validate", "--help"]], HEAVY | {"pydantic", "yaml"})
    assert loaded == {"--help": [], "validate --help": []}


def test_validating_every_shipped_scenario_loads_no_heavy_library():
    checked = [path for path in SCENARIOS if not _draws_with_numpy(path)]
    assert len(checked) >= 8, "scenarios/ ships the scenarios this test is about"
    loaded = _probe([["validate", str(path)] for path in checked], HEAVY)
    assert loaded == {f"validate {path}": [] for path in checked}


def test_a_generated_random_topology_loads_numpy_and_nothing_else_heavy():
    drawn = [path for path in SCENARIOS if _draws_with_numpy(path)]
    if not drawn:
        pytest.skip("no shipped scenario draws its topology at random")
    loaded = _probe([["validate", str(drawn[0])]], HEAVY)
    assert loaded == {f"validate {drawn[0]}": ["numpy"]}


@pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML built without libyaml")
def test_scenarios_parse_with_libyaml_and_still_refuse_a_key_given_twice(write_scenario):
    assert issubclass(_UniqueKeyLoader, yaml.CSafeLoader)
    text = ("name: x\nduration_s: 1\nnodes: [{name: a}, {name: b}]\nlinks:\n"
            "  - between: [a, b]\n    length_km: 5\n    length_km: 6\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(write_scenario(text))
    assert info.value.problems == [("", "line 7, column 5: not valid YAML (key 'length_km' is given twice in one "
                                        "mapping (first on line 6))")]
    assert isinstance(load_scenario(SCENARIOS[0]), Scenario)


def test_commands_from_other_modules_are_listed_run_and_suggested():
    from typer.testing import CliRunner

    from qfabric.cli.main import ELSEWHERE, app

    runner = CliRunner()
    listed = runner.invoke(app, ["--help"], env={"COLUMNS": "200"}).output
    assert all(f"│ {name} " in listed for name in [*ELSEWHERE, "run", "fl", "validate", "topology", "chain"]), listed
    assert "ETSI GS QKD 014" in runner.invoke(app, ["kms", "--help"]).output
    typo = runner.invoke(app, ["qkdd"])
    assert typo.exit_code == 2 and "Did you mean 'qkd'?" in typo.output


ENTRY = ("import json, sys; from qfabric.cli.entry import main; main(); "
         "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")


def test_the_installed_command_validates_a_good_file_without_the_cli_framework_and_reports_a_bad_one(tmp_path):
    """``qfabric`` (qfabric.cli.entry:main) answers ``validate`` of a valid file before loading typer, click and
    rich; a file with problems gets the full command's report and exit code 2."""
    good = subprocess.run([sys.executable, "-c", ENTRY, "validate", str(SCENARIOS[0])], capture_output=True,
                          text=True, timeout=60)
    assert good.returncode == 0, good.stderr
    line, modules = good.stdout.strip().splitlines()
    assert line.startswith(f"{SCENARIOS[0]}: ok (") and "node" in line
    assert not {"typer", "click", "rich"} & set(json.loads(modules))
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nseed: 1\nduration_s: -1\nnodes: []\nlinks: []\n")
    refused = subprocess.run([sys.executable, "-c", ENTRY, "validate", str(bad)], capture_output=True, text=True,
                             timeout=60)
    assert refused.returncode == 2 and "duration_s" in refused.stderr and "Traceback" not in refused.stderr
