"""A scenario's ``distributed`` section: the quantum kernel split over the two ends of a request, run on the pairs
that request got, next to the single-processor kernel and a classical one (docs/qml.md).

The report section says how good the remote gates were (the pairs' fidelity, the teleported CNOT's average gate
fidelity ``(4 F + 1) / 5``), how far the distributed kernel is from the exact one (over the entries the support
vector machines use), what each kernel's machine scores on the held-out half, and what it costs in pairs and
time: one preparation of every state is simulated on the delivered pairs (``one_preparation_each_s``); measuring
the kernel with ``shots`` swap-test shots per entry prepares both states per shot, which at the request's pair rate
and with two one-way classical delays per remote CNOT (gates run one after the other) takes
``time_to_solution_s``. Local gates and the storage of pairs until their gate are not timed.
"""

from __future__ import annotations

import numpy as np

from qfabric.errors import QfabricError
from qfabric.scenario.schema import Scenario


def _classical_delay_s(built, path: list[str]) -> float:
    """One-way classical delay between the processors along the request's route (s)."""
    spt = built.network.seconds_per_tick
    return sum(built.network.link_between(a, b).model.classical_delay * spt for a, b in zip(path, path[1:],
                                                                                            strict=False))


def distributed_section(scenario: Scenario, built) -> dict:
    """Run the kernel of ``scenario.distributed`` on the pairs its request was delivered in ``built``."""
    from sklearn.model_selection import train_test_split
    from sklearn.svm import SVC

    from qfabric.apps.distributed.kernel import PairSupply, distributed_kernel, exact_kernel, split_qubits
    from qfabric.apps.qml.datasets import ad_hoc_data
    from qfabric.sim.kernel import stream_seed

    spec = scenario.distributed
    record = built.service.records[spec.request]
    if not record.delivery_ticks:
        raise QfabricError(f"distributed.request {spec.request!r} got no pairs in {scenario.duration_s:g} s: the "
                           "kernel cannot run (see the request's row in the report)")
    spt = built.network.seconds_per_tick
    supply = PairSupply(np.asarray(record.delivery_ticks, dtype=float) * spt,
                        np.asarray(record.delivered_weights, dtype=float))
    seed = int(stream_seed(scenario.seed, "distributed/dataset").generate_state(1)[0])
    X, y = ad_hoc_data(spec.samples, spec.qubits, seed=seed)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.5, stratify=y, random_state=0)
    route = record.all_routes[0] if record.all_routes else [record.request.source, record.request.target]
    delay = _classical_delay_s(built, route)
    assignment = split_qubits(spec.qubits)
    options = {"feature_map": spec.feature_map, "reps": spec.reps, "entanglement": spec.entanglement}
    samples = np.concatenate([X_train, X_test])  # each state prepared once, training samples first
    run = distributed_kernel(samples, assignment, supply, classical_delay_s=delay, **options)
    n = len(X_train)
    K_train, K_test = run.kernel[:n, :n], run.kernel[n:, :n]
    exact = exact_kernel(samples, **options)

    def accuracy(K_fit, K_predict) -> float:
        model = SVC(kernel="precomputed", C=1.0).fit(K_fit, y_train)
        return float(np.mean(model.predict(K_predict) == y_test))

    rbf = SVC(kernel="rbf", gamma="scale").fit(X_train, y_train)
    used = np.zeros_like(run.kernel, dtype=bool)  # the entries the machines use: training pairs, test x training
    used[:n, :n] = ~np.eye(n, dtype=bool)
    used[n:, :n] = True
    error = np.abs(run.kernel - exact)[used]
    per_sample = run.remote_gates / len(samples)
    entries = n * (n - 1) // 2 + len(X_test) * n
    preparations = 2 * spec.shots * entries  # a swap-test shot prepares both states
    rate_hz = len(supply.times_s) / scenario.duration_s
    pairs_needed = preparations * per_sample
    return {
        "request": spec.request, "processors": [route[0], route[-1]], "qubits": spec.qubits,
        "assignment": assignment, "feature_map": spec.feature_map, "reps": spec.reps,
        "entanglement": spec.entanglement, "samples_train": n, "samples_test": len(X_test),
        "remote_cnots_per_sample": per_sample, "pairs_delivered": len(supply.times_s),
        "pairs_used": run.remote_gates, "pairs_reused": run.pairs_reused,
        "mean_pair_fidelity": run.mean_pair_fidelity,
        "remote_cnot_gate_fidelity": (4 * run.mean_pair_fidelity + 1) / 5,
        "kernel_error_mean": float(error.mean()), "kernel_error_max": float(error.max()),
        "accuracy": {"distributed": accuracy(K_train, K_test),
                     "single_processor": accuracy(exact[:n, :n], exact[n:, :n]),
                     "classical_rbf": float(rbf.score(X_test, y_test))},
        "classical_delay_s": delay, "pair_rate_hz": rate_hz,
        "one_preparation_each_s": run.time_to_solution_s,
        "shots_per_entry": spec.shots, "kernel_entries": entries, "pairs_needed": pairs_needed,
        "time_to_solution_s": pairs_needed / rate_hz + pairs_needed * 2 * delay,
    }


def print_distributed(section: dict, console) -> None:
    """The kernel over two processors as a table, next to the single-processor and classical ones."""
    from rich.table import Table

    acc = section["accuracy"]
    table = Table(title=f"Distributed kernel: {section['qubits']} qubits over {' and '.join(section['processors'])} "
                        f"(request {section['request']})", title_justify="left", show_header=False)
    rows = [
        ("remote CNOTs per sample", f"{section['remote_cnots_per_sample']:g}"),
        ("pairs used (delivered)", f"{section['pairs_used']} ({section['pairs_delivered']}, "
                                   f"{section['pair_rate_hz']:.4g} pairs/s)"),
        ("pair fidelity / remote CNOT gate fidelity", f"{section['mean_pair_fidelity']:.4f} / "
                                                      f"{section['remote_cnot_gate_fidelity']:.4f}"),
        ("kernel error vs one processor (mean / max)", f"{section['kernel_error_mean']:.4f} / "
                                                       f"{section['kernel_error_max']:.4f}"),
        ("test accuracy: distributed / one processor / classical RBF",
         f"{acc['distributed']:.3f} / {acc['single_processor']:.3f} / {acc['classical_rbf']:.3f}"),
        (f"time to solution ({section['shots_per_entry']} shots per entry, {section['kernel_entries']} entries)",
         f"{section['time_to_solution_s']:.4g} s ({section['pairs_needed']:.3g} pairs)"),
    ]
    for label, value in rows:
        table.add_row(label, value)
    console.print(table)
