"""The ``qfabric`` command line.

    qfabric run [SCENARIO] [--json FILE]      simulate a scenario (and its federation), print its SLIs
    qfabric fl --scenario FILE [--rounds N]   run a scenario's federated training on Flower
    qfabric validate SCENARIO                 check a scenario file, explain every problem
    qfabric chain exact|simulate ...          waiting time and fidelity of homogeneous chains
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from qfabric import __version__
from qfabric.cli.common import err, fail, out
from qfabric.cli.kms import app as kms_app
from qfabric.cli.qkd import app as qkd_app
from qfabric.errors import QfabricError
from qfabric.network.analysis import nested_exact, swap_asap_exact
from qfabric.network.discrete import simulate_chain
from qfabric.observe import print_report, run_report_html
from qfabric.scenario import load_scenario, run_scenario
from qfabric.scenario.federation import run_federation

DEFAULT_SCENARIO = Path(__file__).resolve().parents[3] / "scenarios" / "three-hospitals.yaml"

app = typer.Typer(add_completion=False, no_args_is_help=True, help="qfabric: simulate and operate quantum networks.")
chain_app = typer.Typer(no_args_is_help=True, help="Waiting time and fidelity of homogeneous repeater chains.")
app.add_typer(chain_app, name="chain")
app.add_typer(qkd_app, name="qkd")
app.add_typer(kms_app, name="kms")




@app.callback(invoke_without_command=True)
def _main(version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False) -> None:
    if version:
        out.print(f"qfabric {__version__}")
        raise typer.Exit()


@app.command()
def run(
    scenario: Annotated[Path | None, typer.Argument(help="Scenario YAML (default: three-hospitals.yaml)")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the full report as JSON here.")] = None,
    html_out: Annotated[Path | None, typer.Option("--html", help="Write the report with plots as HTML here.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Simulate a scenario (network, QKD, and its federation if it has one): progress, then the SLI tables."""
    path = scenario or DEFAULT_SCENARIO
    try:
        sc = load_scenario(path)
        with _progress(quiet) as bar:
            task = bar.add_task(f"simulating {sc.name} ({sc.duration_s:g} s)", total=1.0)
            report = run_scenario(sc, source_file=path, progress=lambda f: bar.update(task, completed=f))
            if sc.federated is not None:
                fl_task = bar.add_task(f"federated training ({sc.federated.rounds} rounds)", total=1.0)
                report["federated"] = run_federation(sc, progress=lambda f, label: bar.update(
                    fl_task, completed=f, description=f"federated training: {label}"))
    except QfabricError as error:
        fail(error)
    _write(report, json_out, html_out)


class _NoBar:
    def add_task(self, *args, **kwargs) -> int:
        return 0

    def update(self, *args, **kwargs) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def _progress(quiet: bool):
    if quiet or not sys.stderr.isatty():
        return _NoBar()
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=True)


@app.command()
def fl(
    scenario: Annotated[Path, typer.Option("--scenario", help="Scenario YAML with kms and federated sections.")] = None,
    rounds: Annotated[int | None, typer.Option("--rounds", min=1, help="Override the scenario's rounds.")] = None,
    policy: Annotated[str | None, typer.Option("--policy", help="qkd-only, hybrid or pq-only.")] = None,
    fallback: Annotated[str | None, typer.Option("--fallback", help="pq-only, none or wait.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report as JSON here.")] = None,
    html_out: Annotated[Path | None, typer.Option("--html", help="Write the report with plots as HTML here.")] = None,
    workdir: Annotated[Path | None, typer.Option("--workdir", help="Keep the PKI and key database here.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Federated training on Flower between a scenario's organisations, keyed by its QKD links and KMS."""
    path = scenario or DEFAULT_SCENARIO
    try:
        sc = load_scenario(path)
        if sc.federated is None:
            raise QfabricError(f"{path}: no federated section (organisations, aggregator, rounds)")
        for name, value, allowed in (("--policy", policy, ("qkd-only", "hybrid", "pq-only")),
                                     ("--fallback", fallback, ("pq-only", "none", "wait"))):
            if value is not None and value not in allowed:
                raise QfabricError(f"{name} {value!r}: expected one of {', '.join(allowed)}")
        with _progress(quiet) as bar:
            task = bar.add_task("federated training", total=1.0)
            fed = run_federation(sc, rounds=rounds, policy=policy, fallback=fallback, workdir=workdir,
                                 progress=lambda f, label: bar.update(task, completed=f,
                                                                      description=f"federated training: {label}"))
    except QfabricError as error:
        fail(error)
    report = {"qfabric_version": __version__, "scenario": {"name": sc.name, "file": str(path), "seed": sc.seed},
              "federated": fed}
    _write(report, json_out, html_out)


def _write(report: dict, json_out: Path | None, html_out: Path | None) -> None:
    print_report(report, out)
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=2) + "\n")
        out.print(f"report written to {json_out}")
    if html_out is not None:
        html_out.write_text(run_report_html(report))
        out.print(f"HTML report written to {html_out}")


@app.command()
def validate(scenario: Annotated[Path, typer.Argument(help="Scenario YAML to check.")]) -> None:
    """Check a scenario file; list every problem with its field path (exit code 2 if any)."""
    try:
        sc = load_scenario(scenario)
    except QfabricError as error:
        fail(error)
    out.print(f"{scenario}: ok ({sc.name}: {len(sc.nodes)} nodes, {len(sc.links)} links, "
              f"{len(sc.all_requests())} request(s), {sc.duration_s:g} s)")


def _parse_cutoffs(text: str | None) -> list[int | None] | None:
    if text is None:
        return None
    try:
        return [None if part.strip() in ("", "none", "inf") else int(part) for part in text.split(",")]
    except ValueError:
        fail(QfabricError(f"--cutoff {text!r}: expected whole numbers of attempts separated by commas, e.g. 10,20"))
        raise  # unreachable


def _chain_options(scheme: str, segments: int, cutoff: str | None) -> list[int | None] | None:
    cutoffs = _parse_cutoffs(cutoff)
    if scheme not in ("nested", "swap-asap"):
        fail(QfabricError(f"--scheme {scheme!r}: expected nested or swap-asap"))
    if cutoffs is not None and scheme == "swap-asap" and len(cutoffs) != 1:
        fail(QfabricError("--cutoff: swap-asap takes one cut-off (a pair's maximum storage time in attempts)"))
    return cutoffs


def _print_chain(result: dict, as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(result))
        return
    table = Table(show_header=False)
    for key, value in result.items():
        table.add_row(key, f"{value:.6g}" if isinstance(value, float) else str(value))
    out.print(table)


Segments = Annotated[int, typer.Option("--segments", help="Elementary links in the chain.")]
PGen = Annotated[float, typer.Option("--p-gen", help="Generation success probability per attempt.")]
PSwap = Annotated[float, typer.Option("--p-swap", help="Swap success probability.")]
W0 = Annotated[float, typer.Option("--w0", help="Werner parameter of a fresh link.")]
TCoh = Annotated[float, typer.Option("--t-coh", help="Pair coherence time in attempts (inf: none).")]
Cutoff = Annotated[str | None, typer.Option("--cutoff", help="Cut-off per nesting level, e.g. 10,20.")]
SchemeOpt = Annotated[str, typer.Option("--scheme", help="nested or swap-asap.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@chain_app.command("exact")
def chain_exact(
    segments: Segments = 4, p_gen: PGen = 0.1, p_swap: PSwap = 1.0, w0: W0 = 1.0, t_coh: TCoh = math.inf,
    cutoff: Cutoff = None, scheme: SchemeOpt = "nested", as_json: JsonFlag = False,
) -> None:
    """Exact mean waiting time and fidelity (nested: generating functions; swap-asap: Markov chain)."""
    cutoffs = _chain_options(scheme, segments, cutoff)
    try:
        if scheme == "nested":
            result = nested_exact(segments, p_gen, p_swap, w0, t_coh, cutoffs)
        else:
            if cutoffs is not None:
                raise QfabricError("the exact swap-asap computation has no cut-offs; use 'qfabric chain simulate'")
            result = swap_asap_exact(segments, p_gen, p_swap, w0, t_coh)
    except QfabricError as error:
        fail(error)
    _print_chain(result.to_dict(), as_json)


@chain_app.command("simulate")
def chain_simulate(
    segments: Segments = 4, p_gen: PGen = 0.1, p_swap: PSwap = 1.0, w0: W0 = 1.0, t_coh: TCoh = math.inf,
    cutoff: Cutoff = None, scheme: SchemeOpt = "nested", as_json: JsonFlag = False,
    samples: Annotated[int, typer.Option("--samples", help="End-to-end pairs to deliver.")] = 100_000,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """The same model on the event engine: sample means with standard errors (95 %: +- 1.96 stderr)."""
    cutoffs = _chain_options(scheme, segments, cutoff)
    if cutoffs is not None and scheme == "swap-asap":
        cutoffs = cutoffs[0]
    try:
        if as_json or not sys.stderr.isatty():
            result = simulate_chain(segments, p_gen, p_swap, w0, t_coh, cutoffs, scheme, samples, seed)
        else:
            with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                          TimeElapsedColumn(), console=err, transient=True) as bar:
                task = bar.add_task("delivering pairs", total=samples)
                result = simulate_chain(segments, p_gen, p_swap, w0, t_coh, cutoffs, scheme, samples, seed,
                                        progress=lambda n: bar.update(task, completed=n))
    except QfabricError as error:
        fail(error)
    _print_chain(result.to_dict(), as_json)


if __name__ == "__main__":  # pragma: no cover
    app()
