"""The command line: exit codes, no tracebacks on bad input, JSON output."""

import json

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
    result = runner.invoke(app, ["chain", "exact", "--scheme", "swap-asap", "--cutoff", "5"])
    assert result.exit_code == 2 and "simulate" in result.output
