"""``qfabric qml``: the kernel comparison's JSON, and bad input ending with exit code 2 and no traceback."""

import json

from typer.testing import CliRunner

from qfabric.cli.main import app

runner = CliRunner()


def test_kernel_json_compares_quantum_and_classical():
    result = runner.invoke(app, ["qml", "kernel", "--qubits", "2", "--samples", "100", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    quantum, classical = report["models"]
    assert report["train"] == 70 and report["test"] == 30 and report["gap"] == 0.3
    assert quantum["test_accuracy"] >= 0.95  # the ad hoc data at its paper's size: the ZZ kernel separates it
    assert 0 <= classical["test_accuracy"] <= 1 and quantum["kernel_s"] > 0


def test_bad_input_exits_2_with_a_clear_message():
    cases = [(["qml", "kernel", "--feature-map", "pauli", "--qubits", "2", "--samples", "20"], "zz, iqp, angle"),
             (["qml", "kernel", "--dataset", "mnist"], "ad-hoc"),
             (["qml", "kernel", "--qubits", "15", "--samples", "20"], "n_qubits"),
             (["qml", "kernel", "--qubits", "2", "--samples", "7"], "even number")]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output


def test_vqc_learns_the_separable_blobs():
    result = runner.invoke(app, ["qml", "vqc", "--dataset", "blobs", "--qubits", "2", "--samples", "60",
                                 "--steps", "30", "--json"])
    assert result.exit_code == 0, result.output
    variational, logistic, rbf = json.loads(result.output)["models"]
    assert variational["test_accuracy"] >= 0.9 and logistic["test_accuracy"] >= 0.9  # sigma 0.3, centres 1.1 apart
