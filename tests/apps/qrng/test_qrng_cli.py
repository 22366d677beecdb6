"""``qfabric qrng``: bytes, the test report, and a failing source or missing PKI ending with exit code 2."""

import json

from typer.testing import CliRunner

from qfabric.cli.main import app

runner = CliRunner()


def test_bytes_are_reproducible_from_the_seed():
    a = runner.invoke(app, ["qrng", "bytes", "16", "--seed", "4"])
    b = runner.invoke(app, ["qrng", "bytes", "16", "--seed", "4"])
    assert a.exit_code == 0 and a.output == b.output and len(a.output.strip()) == 32


def test_report_json():
    result = runner.invoke(app, ["qrng", "test", "--bits", "100000", "--seed", "1", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["sp800_22"]["bits"] == 100_000 and len(report["sp800_22"]["tests"]) == 7
    assert report["model"]["min_entropy_quantum_bits"] < report["model"]["min_entropy_total_bits"]


def test_failures_exit_2():
    stuck = runner.invoke(app, ["qrng", "bytes", "16", "--fault", "stuck"])
    assert stuck.exit_code == 2 and "repetition count test" in stuck.output
    missing = runner.invoke(app, ["qrng", "serve", "--pki", "/nonexistent"])
    assert missing.exit_code == 2 and "qfabric kms certs" in missing.output
