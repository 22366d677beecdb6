"""``qfabric qml``: a quantum-kernel SVM and a variational classifier against classical baselines.

    qfabric qml kernel --dataset ad-hoc --qubits 8 --samples 200 [--feature-map zz] [--shots N] [--json]
    qfabric qml vqc --dataset ad-hoc --qubits 2 --samples 100 [--layers 2] [--steps 60] [--json]
"""

import json
import time
from typing import Annotated

import typer

from qfabric.cli.common import err, fail, out
from qfabric.errors import QfabricError

app = typer.Typer(no_args_is_help=True,
                  help="Hybrid quantum machine learning: quantum kernels, variational classifiers.")

DATASETS = ("ad-hoc", "blobs")

Dataset = Annotated[str, typer.Option("--dataset", help="ad-hoc (Havlicek et al. 2019, generated) or blobs (two "
                                      "Gaussian blobs at pi/4 and 3 pi/4 per feature, sigma 0.3: separable).")]
Qubits = Annotated[int, typer.Option("--qubits", help="Qubits = features per sample.")]
Samples = Annotated[int, typer.Option("--samples", help="Samples in all (half of each class), split 70/30.")]
Seed = Annotated[int, typer.Option("--seed", help="Seed of the data, the split and the noise.")]
Gap = Annotated[float | None, typer.Option("--gap", help="Ad hoc margin (default 0.3 up to 3 qubits, else 0).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _data(dataset: str, qubits: int, samples: int, gap: float | None, seed: int):
    import numpy as np
    from sklearn.model_selection import train_test_split

    from qfabric.apps.qml.datasets import ad_hoc_data, default_gap

    if dataset not in DATASETS:
        raise QfabricError(f"--dataset {dataset!r}: expected one of {', '.join(DATASETS)}")
    if samples < 10 or samples % 2:
        raise QfabricError(f"--samples {samples}: expected an even number >= 10 (half of each class)")
    if dataset == "blobs":
        from sklearn.datasets import make_blobs

        if qubits < 1:
            raise QfabricError(f"--qubits {qubits}: expected at least 1")
        centers = [[np.pi / 4] * qubits, [3 * np.pi / 4] * qubits]
        X, y = make_blobs(samples, n_features=qubits, centers=centers, cluster_std=0.3, random_state=seed)
        gap = None
    else:
        gap = default_gap(qubits) if gap is None else gap
        X, y = ad_hoc_data(samples, n_qubits=qubits, gap=gap, seed=seed)
    return (*train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed), gap)


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def _print(result: dict, rows: list[dict], as_json: bool, title: str) -> None:
    if as_json:
        out.print_json(json.dumps(result))
        return
    from rich.table import Table

    table = Table(title=title)
    for column in ("model", "train accuracy", "test accuracy", "kernel / train time", "predict time"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in rows:
        table.add_row(row["model"], f"{row['train_accuracy']:.3f}", f"{row['test_accuracy']:.3f}",
                      f"{row['fit_s']:.3f} s", f"{row['predict_s']:.3f} s")
    out.print(table)
    extra = {k: v for k, v in result.items() if k != "models"}
    out.print("  ".join(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}" for k, v in extra.items()))


@app.command("kernel")
def kernel(
    dataset: Dataset = "ad-hoc", qubits: Qubits = 8, samples: Samples = 200, seed: Seed = 0, gap: Gap = None,
    feature_map: Annotated[str, typer.Option("--feature-map", help="zz, iqp or angle.")] = "zz",
    reps: Annotated[int, typer.Option("--reps", help="Feature-map layers.")] = 2,
    shots: Annotated[int | None, typer.Option("--shots", help="Shots per kernel entry (default: exact).")] = None,
    profile: Annotated[str | None, typer.Option("--profile", help="Hardware profile for gate noise.")] = None,
    c: Annotated[float, typer.Option("--c", help="SVM regularisation C (both models).")] = 1.0,
    as_json: AsJson = False,
) -> None:
    """A quantum-kernel SVM against a classical RBF SVM on the same split: accuracy and timings."""
    import numpy as np
    from sklearn.svm import SVC

    from qfabric.apps.qml.kernel import QuantumKernel

    try:
        with err.status(f"generating {samples} ad hoc samples at {qubits} qubits"):
            X_train, X_test, y_train, y_test, gap = _data(dataset, qubits, samples, gap, seed)
        qk = QuantumKernel(feature_map, reps=reps, shots=shots, hardware_profile=profile, seed=seed)
        with err.status("quantum kernel: embedding states, |S S^H|^2, SVM"):
            K_train, kernel_s = _timed(lambda: qk.fit_transform(X_train))
            svc, fit_s = _timed(lambda: SVC(kernel="precomputed", C=c).fit(K_train, y_train))
            K_test, test_kernel_s = _timed(lambda: qk.transform(X_test))
            layers = "" if feature_map == "angle" else f", {reps} reps"
            quantum = {"model": f"quantum kernel SVM ({feature_map}{layers})",
                       "train_accuracy": float(svc.score(K_train, y_train)),
                       "test_accuracy": float(svc.score(K_test, y_test)), "fit_s": kernel_s + fit_s,
                       "predict_s": test_kernel_s, "kernel_s": kernel_s}
        rbf = SVC(kernel="rbf", C=c)
        _, rbf_fit = _timed(lambda: rbf.fit(X_train, y_train))
        test_acc, rbf_predict = _timed(lambda: float(rbf.score(X_test, y_test)))
        classical = {"model": "classical RBF SVM", "train_accuracy": float(rbf.score(X_train, y_train)),
                     "test_accuracy": test_acc, "fit_s": rbf_fit, "predict_s": rbf_predict}
    except QfabricError as error:
        fail(error)
    off_diagonal = K_train[~np.eye(len(K_train), dtype=bool)]
    result = {"dataset": dataset, "qubits": qubits, "samples": samples, "train": len(y_train), "test": len(y_test),
              "gap": gap, "seed": seed, "shots": shots, "hardware_profile": profile,
              "two_qubit_error": qk.gate_error(), "mean_off_diagonal_kernel": float(off_diagonal.mean()),
              "models": [quantum, classical]}
    _print(result, [quantum, classical], as_json, f"{dataset}, {qubits} qubits, {len(y_train)} train / "
           f"{len(y_test)} test samples")


@app.command("vqc")
def vqc(
    dataset: Dataset = "ad-hoc", qubits: Qubits = 2, samples: Samples = 100, seed: Seed = 0, gap: Gap = None,
    layers: Annotated[int, typer.Option("--layers", help="Entangling layers.")] = 2,
    steps: Annotated[int, typer.Option("--steps", help="Adam steps.")] = 60,
    learning_rate: Annotated[float, typer.Option("--learning-rate")] = 0.1,
    as_json: AsJson = False,
) -> None:
    """A variational quantum classifier (PennyLane) against logistic regression and an RBF SVM."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    from qfabric.apps.qml.vqc import VariationalClassifier

    try:
        X_train, X_test, y_train, y_test, gap = _data(dataset, qubits, samples, gap, seed)
        models = [(f"variational classifier ({layers} layers, {steps} steps)",
                   VariationalClassifier(layers=layers, steps=steps, learning_rate=learning_rate, seed=seed)),
                  ("classical logistic regression", LogisticRegression()), ("classical RBF SVM", SVC())]
        rows = []
        for name, model in models:
            with err.status(f"training {name}"):
                _, fit_s = _timed(lambda m=model: m.fit(X_train, y_train))
                test_acc, predict_s = _timed(lambda m=model: float(m.score(X_test, y_test)))
            rows.append({"model": name, "train_accuracy": float(model.score(X_train, y_train)),
                         "test_accuracy": test_acc, "fit_s": fit_s, "predict_s": predict_s})
    except QfabricError as error:
        fail(error)
    result = {"dataset": dataset, "qubits": qubits, "samples": samples, "train": len(y_train),
              "test": len(y_test), "gap": gap, "seed": seed, "models": rows}
    _print(result, rows, as_json, f"{dataset}, {qubits} qubits, {len(y_train)} train / {len(y_test)} test samples")
