"""The federation trains a variational quantum classifier with the protection unchanged (issue 15, part 3)."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from qfabric.apps.federated.quantum import QuantumModel, learner_for
from qfabric.errors import ParameterError
from qfabric.scenario import parse_scenario
from qfabric.scenario.federation import run_federation

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "hospitals-qml.yaml"


def test_the_quantum_model_has_the_federations_interface_and_learns():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(120, 30))
    y = (X @ rng.normal(size=30) > 0).astype(int)  # a linear rule the projection can partly see
    learner = QuantumModel(qubits=4, layers=1)
    params = learner.init_params([30, 4, 1], np.random.default_rng(1))
    assert [p.shape for p in params] == [(1, 4, 3), (1,), (1,)] and learner.n_params(params) == 14
    before = learner.evaluate(params, X, y)
    trained, loss = learner.train(params, X, y, epochs=3, batch_size=32, learning_rate=0.1,
                                  rng=np.random.default_rng(2))
    after = learner.evaluate(trained, X, y)
    assert after["loss"] < before["loss"] and np.isfinite(loss)
    assert learner.angles(X).min() > 0 and learner.angles(X).max() < np.pi  # rotation angles in (0, pi)


def test_model_names_are_checked():
    assert learner_for("vqc:3:2") == QuantumModel(3, 2)
    with pytest.raises(ParameterError, match="classical or vqc"):
        learner_for("quantum")


def test_a_protected_federation_trains_the_variational_classifier(tmp_path):
    data = yaml.safe_load(SCENARIO.read_text())
    report = run_federation(parse_scenario(data, "qml"), rounds=2, workdir=tmp_path)
    assert report["model"]["kind"] == "variational classifier (4 qubits, 2 layers)"
    assert report["model"]["parameters"] == 2 * 4 * 3 + 2 and report["model"]["layers"] == [30, 4, 1]
    assert report["rounds_completed"] == 2
    runs = report["final"]["runs"]
    assert runs["secure_no_dp"]["mean"] == runs["plain"]["mean"]  # encryption and masks cost no accuracy
    assert report["privacy"]["noise_multiplier"] > 0 and runs["secure_dp"] is not None
