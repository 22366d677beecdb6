"""The command line: exit codes, no tracebacks on bad input, JSON output."""

import json

import pytest
from typer.testing import CliRunner

from qfabric.cli.main import app

runner = CliRunner()


def test_validate_good_and_bad(write_scenario, small_data):
    good = write_scenario(small_data, "good.yaml")
    result = runner.invoke(app, ["validate", str(good)])
    assert result.exit_code == 0 and "ok" in result.output
    small_data["links"][0]["length_km"] = -1
    bad = write_scenario(small_data, "bad.yaml")
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2
    assert "bad.yaml" in result.output and "links[0].length_km" in result.output
    assert "Traceback" not in result.output


def test_run_writes_json_report(write_scenario, small_data, tmp_path):
    path = write_scenario(small_data)
    out = tmp_path / "report.json"
    result = runner.invoke(app, ["run", str(path), "--json", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["requests"][0]["pairs_delivered"] > 0
    assert "Requests" in result.output and "chain" in result.output


def test_run_writes_an_html_report_with_plots(write_scenario, small_data, tmp_path):
    small_data["qkd"] = [{"name": "keys", "link": "a-r", "max_simulated_pulses": 1e8}]
    html = tmp_path / "report.html"
    result = runner.invoke(app, ["run", str(write_scenario(small_data)), "--html", str(html), "--quiet"])
    assert result.exit_code == 0, result.output
    text = html.read_text()
    assert text.count("data:image/png;base64,") == 4  # network map, requests, links, QKD services
    assert "<h2>Requests</h2>" in text and "a &gt; r &gt; b" in text
    assert "QKD services" in text and "keys" in text


def test_run_missing_file_exits_2(tmp_path):
    result = runner.invoke(app, ["run", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2 and "file not found" in result.output


def test_chain_exact_and_simulate_json():
    args = ["--segments", "2", "--p-gen", "0.5", "--w0", "0.9", "--scheme", "nested", "--json"]
    exact = runner.invoke(app, ["chain", "exact", *args])
    assert exact.exit_code == 0, exact.output
    data = json.loads(exact.output)
    assert abs(data["mean_waiting_time"] - 8 / 3) < 1e-9
    assert abs(data["mean_werner"] - 0.81) < 1e-9
    sim = runner.invoke(app, ["chain", "simulate", *args, "--samples", "2000", "--seed", "1"])
    assert sim.exit_code == 0, sim.output
    sdata = json.loads(sim.output)
    assert abs(sdata["mean_waiting_time"] - 8 / 3) < 4 * sdata["waiting_time_stderr"]


def test_chain_bad_flags_exit_2():
    result = runner.invoke(app, ["chain", "exact", "--segments", "3", "--scheme", "nested"])
    assert result.exit_code == 2 and "power of two" in result.output
    result = runner.invoke(app, ["chain", "exact", "--cutoff", "ten"])
    assert result.exit_code == 2 and "whole numbers" in result.output
    result = runner.invoke(app, ["chain", "exact", "--scheme", "swap-asap", "--segments", "12", "--cutoff", "20"])
    assert result.exit_code == 2 and "simulate" in result.output


def test_topology_writes_a_skeleton_that_runs(tmp_path):
    out = tmp_path / "net.yaml"
    result = runner.invoke(app, ["topology", "--generator", "waxman", "--nodes", "24", "--seed", "3", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "24 nodes" in " ".join(result.output.split())
    text = out.read_text()
    assert text.startswith("# written by: qfabric topology") and "position_km" in text
    run = runner.invoke(app, ["run", str(out), "--quiet"])
    assert run.exit_code == 0, run.output
    assert "r0" in run.output and "r1" in run.output
    again = tmp_path / "again.yaml"
    runner.invoke(app, ["topology", "--generator", "waxman", "--nodes", "24", "--seed", "3", "-o", str(again)])
    assert again.read_text().splitlines()[2:] == text.splitlines()[2:]  # same seed, same skeleton


def test_topology_imports_graphml_and_refuses_bad_input(tmp_path):
    import networkx as nx

    graph = nx.cycle_graph(5)
    nx.set_edge_attributes(graph, 12.0, "length_km")
    nx.write_graphml(graph, tmp_path / "ring.graphml")
    out = tmp_path / "ring.yaml"
    result = runner.invoke(app, ["topology", "--file", str(tmp_path / "ring.graphml"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "5 nodes, 5 links" in " ".join(result.output.split())
    result = runner.invoke(app, ["topology", "-o", str(out)])
    assert result.exit_code == 2 and "one of --generator, --file or --workload" in result.output
    result = runner.invoke(app, ["topology", "--generator", "waxman", "--nodes", "5", "--seed", "3", "-o", str(out)])
    assert result.exit_code == 2 and "connected" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["topology", "--generator", "hexagon", "-o", str(out)])
    assert result.exit_code == 2 and "generator" in result.output


def test_a_bad_request_exits_2_with_its_field(write_scenario, small_data):
    del small_data["chain"]
    small_data["requests"] = [{"name": "x", "from": "a", "to": "zz"}, {"name": "x", "from": "a", "to": "b"}]
    result = runner.invoke(app, ["run", str(write_scenario(small_data)), "--quiet"])
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "requests[0].to: unknown node 'zz'" in text and "requests[1].name" in text


def test_chain_commands_take_the_swap_asap_conventions_and_print_units():
    args = ["--segments", "4", "--p-gen", "0.9", "--p-swap", "0.5", "--cutoff", "2", "--scheme", "swap-asap",
            "--swap-timing", "simultaneous", "--link-age", "oldest", "--json"]
    exact = runner.invoke(app, ["chain", "exact", *args])
    assert exact.exit_code == 0, exact.output
    data = json.loads(exact.output)
    assert data["time_unit"].startswith("attempts") and "cut-off 2, age oldest" in data["method"]
    sim = runner.invoke(app, ["chain", "simulate", *args, "--samples", "3000", "--seed", "2"])
    sdata = json.loads(sim.output)
    assert sdata["attempts"] > 3000 * 4 and sdata["time_unit"].startswith("attempts")
    assert abs(sdata["mean_waiting_time"] - data["mean_waiting_time"]) < 4 * sdata["waiting_time_stderr"]
    bad = runner.invoke(app, ["chain", "exact", "--scheme", "nested", "--swap-timing", "simultaneous"])
    assert bad.exit_code == 2 and "swap-asap conventions" in " ".join(bad.output.split())


@pytest.mark.parametrize(("command", "listed"), [
    (["chain", "exact"], ["[nested|swap-asap]", "[sequential|simultaneous]", "[reset|oldest]"]),
    (["topology"], ["[line|ring|star|grid|waxman|random]", "[single-click|double-click]"]),
    (["fl"], ["[qkd-only|hybrid|pq-only]", "[pq-only|none|wait]"]),
])
def test_options_with_fixed_choices_list_them_and_refuse_others(command, listed):
    text = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"}).output
    assert all(choices in text for choices in listed), text
    flag = listed[0].strip("[]").split("|")[0]
    option = next(line.split()[1] for line in text.splitlines() if listed[0] in line)
    result = runner.invoke(app, [*command, option, flag + "-not"], env={"COLUMNS": "200"})
    assert result.exit_code == 2 and f"'{flag}-not' is not one of" in result.output


def test_every_command_takes_the_scenario_as_its_first_argument():
    for command in (["run"], ["validate"], ["fl"], ["kms", "serve"]):
        usage = next(line for line in runner.invoke(app, [*command, "--help"]).output.splitlines() if "Usage:" in line)
        assert usage.split()[2:] in ([*command, "[OPTIONS]", "SCENARIO"], [*command, "[OPTIONS]", "[SCENARIO]"]), usage
