"""The ``qfabric`` command line.

    qfabric run [SCENARIO] [--json FILE]      simulate a scenario (and its federation), print its SLIs
    qfabric fl [SCENARIO] [--rounds N]        run a scenario's federated training on Flower
    qfabric validate SCENARIO                 check a scenario file, explain every problem
    qfabric dashboard SCENARIO|REPORT.json    run a scenario live (or replay a run) in a web page
    qfabric topology --generator waxman ...   write a scenario skeleton (generated, imported or a workload)
    qfabric chain exact|simulate ...          waiting time and fidelity of homogeneous chains
    qfabric sweep SCENARIO --set PATH=VALUES  a scenario over a grid of field values (local or Dask)
    qfabric plan cutoff ...                   the cut-off that maximises rate or key rate (exact)
"""

import importlib
import json
import math
import sys
from pathlib import Path
from typing import Annotated

import click
import typer
from typer.core import TyperGroup

from qfabric import __version__
from qfabric.cli.common import choice, fail, out, progress_bar
from qfabric.errors import QfabricError

# The commands import what they need when they run: `qfabric --help` and `validate` do not load numpy, scipy,
# matplotlib, numba or the web stack (benchmarks/bench_cli.py, tests/cli/test_startup_imports.py).

DEFAULT_SCENARIO = Path(__file__).resolve().parents[3] / "scenarios" / "three-hospitals.yaml"

ELSEWHERE = {
    "sweep": ("qfabric.cli.plan", "sweep"),
    "dashboard": ("qfabric.cli.dashboard", "dashboard"),
    "qkd": ("qfabric.cli.qkd", "app"),
    "kms": ("qfabric.cli.kms", "app"),
    "plan": ("qfabric.cli.plan", "app"),
    "qml": ("qfabric.cli.qml", "app"),
    "qrng": ("qfabric.cli.qrng", "app"),
}
"""Commands defined in other modules, by name: ``(module, attribute)``, a Typer app (a command group) or a function
(one command). Each is imported and built when it runs or when ``qfabric --help`` lists it, so that a command
(``qfabric validate``) imports and builds only itself: ``qfabric kms serve`` imports ``qfabric.cli.kms``."""


class _Group(TyperGroup):
    """The ``qfabric`` group: the commands defined below, then those of :data:`ELSEWHERE`, built on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *(name for name in ELSEWHERE if name not in self.commands)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in ELSEWHERE and name not in self.commands:
            module, attribute = ELSEWHERE[name]
            target = getattr(importlib.import_module(module), attribute)
            if isinstance(target, typer.Typer):
                command = typer.main.get_group(target)
            else:
                single = typer.Typer(add_completion=False)
                single.command(name)(target)
                command = typer.main.get_command(single)
            command.name = name
            self.commands[name] = command
        return super().get_command(ctx, name)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        if args and args[0] not in self.commands and args[0] not in ELSEWHERE:  # a typo: "did you mean" needs all
            for name in ELSEWHERE:
                self.get_command(ctx, name)
        return super().resolve_command(ctx, args)


app = typer.Typer(cls=_Group, add_completion=False, no_args_is_help=True,
                  help="qfabric: simulate and operate quantum networks.")
chain_app = typer.Typer(no_args_is_help=True, help="Waiting time and fidelity of homogeneous repeater chains.")
app.add_typer(chain_app, name="chain")




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
    ledger: Annotated[Path | None, typer.Option("--ledger", help="Write the tenants' usage ledger as CSV here.")]
    = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Simulate a scenario (network, QKD, and its federation if it has one): progress, then the SLI tables."""
    from qfabric.scenario import load_scenario, run_scenario
    from qfabric.scenario.federation import run_federation

    path = scenario or DEFAULT_SCENARIO
    try:
        sc = load_scenario(path)
        with progress_bar(quiet) as bar:
            task = bar.add_task(f"simulating {sc.name} ({sc.duration_s:g} s)", total=1.0)
            pairs: dict = {}
            report = run_scenario(sc, source_file=path, progress=lambda f: bar.update(task, completed=f),
                                  ledger_csv=ledger, pairs_out=pairs)
            if sc.federated is not None:
                fl_task = bar.add_task(f"federated training ({sc.federated.rounds} rounds)", total=1.0)
                report["federated"] = run_federation(sc, entanglement=pairs, progress=lambda f, label: bar.update(
                    fl_task, completed=f, description=f"federated training: {label}"))
    except QfabricError as error:
        fail(error)
    _write(report, json_out, html_out)


@app.command()
def fl(
    scenario: Annotated[Path | None, typer.Argument(
        help="Scenario YAML with kms and federated sections (default: three-hospitals.yaml)")] = None,
    rounds: Annotated[int | None, typer.Option("--rounds", min=1, help="Override the scenario's rounds.")] = None,
    policy: Annotated[str | None, typer.Option("--policy", click_type=choice("qkd-only", "hybrid", "pq-only"),
                                               help="Override the scenario's crypto policy.")] = None,
    fallback: Annotated[str | None, typer.Option("--fallback", click_type=choice("pq-only", "none", "wait"),
                                                 help="Override what happens when QKD cannot serve.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report as JSON here.")] = None,
    html_out: Annotated[Path | None, typer.Option("--html", help="Write the report with plots as HTML here.")] = None,
    workdir: Annotated[Path | None, typer.Option("--workdir", help="Keep the PKI and key database here.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Federated training on Flower between a scenario's organisations, keyed by its QKD links and KMS."""
    from qfabric.scenario import load_scenario
    from qfabric.scenario.federation import run_federation

    path = scenario or DEFAULT_SCENARIO
    try:
        sc = load_scenario(path)
        if sc.federated is None:
            raise QfabricError(f"{path}: no federated section (organisations, aggregator, rounds)")
        with progress_bar(quiet) as bar:
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
    from qfabric.observe import print_report, run_report_html

    print_report(report, out)
    if report.get("satellite"):
        from qfabric.scenario.satellite import print_satellite

        print_satellite(report["satellite"], out)
    if report.get("distributed"):
        from qfabric.scenario.distributed import print_distributed

        print_distributed(report["distributed"], out)
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=2) + "\n")
        out.print(f"report written to {json_out}")
    if html_out is not None:
        html_out.write_text(run_report_html(report))
        out.print(f"HTML report written to {html_out}")


@app.command()
def validate(scenario: Annotated[Path, typer.Argument(help="Scenario YAML to check.")]) -> None:
    """Check a scenario file; list every problem with its field path (exit code 2 if any)."""
    from qfabric.cli.entry import load_quickly, ok_line

    try:
        sc = load_quickly(scenario)
    except QfabricError as error:
        fail(error)
    out.print(ok_line(scenario, sc))


@app.command()
def topology(
    output: Annotated[Path, typer.Option("--output", "-o", help="Scenario YAML to write.")],
    generator: Annotated[str | None, typer.Option(
        click_type=choice("line", "ring", "star", "grid", "waxman", "random"), help="Graph generator.")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="Import a GML or GraphML graph instead.")] = None,
    workload: Annotated[Path | None, typer.Option(help="Convert a qfabric-peer-workload/1 JSON file instead.")] = None,
    nodes: Annotated[int | None, typer.Option(help="Nodes (star: leaves).")] = None,
    edges: Annotated[int | None, typer.Option(help="random: links.")] = None,
    rows: Annotated[int | None, typer.Option(help="grid: rows.")] = None,
    cols: Annotated[int | None, typer.Option(help="grid: columns.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the generator and of the example requests.")] = 0,
    size_km: Annotated[float | None, typer.Option(help="waxman: side of the square, km.")] = None,
    alpha: Annotated[float | None, typer.Option(help="waxman: alpha.")] = None,
    beta: Annotated[float | None, typer.Option(help="waxman: beta.")] = None,
    spacing_km: Annotated[float | None, typer.Option(help="Link length of line/ring/star/grid/random, km.")] = None,
    profile: Annotated[str, typer.Option(help="Hardware profile of every link.")] = "near-term",
    scheme: Annotated[str, typer.Option(click_type=choice("single-click", "double-click"),
                                        help="Heralding scheme of every link.")] = "double-click",
    requests: Annotated[int | None, typer.Option(help="Example requests (default: max(2, nodes / 10)).")] = None,
    duration_s: Annotated[float, typer.Option(help="Simulated time, s.")] = 1.0,
) -> None:
    """Write a scenario skeleton to edit: every node and link spelled out, example requests, routing."""
    import json

    from qfabric.network.generators import generate, read_graph
    from qfabric.scenario import load_scenario
    from qfabric.scenario.skeleton import skeleton, to_yaml
    from qfabric.scenario.workload import workload_to_scenario

    command = "qfabric topology " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "qfabric topology"
    sources = [x for x in (generator, file, workload) if x is not None]
    try:
        if len(sources) != 1:
            raise QfabricError("give one of --generator, --file or --workload")
        if workload is not None:
            try:
                raw = json.loads(workload.read_text())
            except (OSError, ValueError) as error:
                raise QfabricError(f"{workload}: cannot read a JSON workload ({error})") from None
            data = workload_to_scenario(raw, workload)
        else:
            if file is not None:
                graph, name = read_graph(file), file.stem
            else:
                params = {k: v for k, v in {"nodes": nodes, "edges": edges, "rows": rows, "cols": cols,
                                            "size_km": size_km, "alpha": alpha, "beta": beta,
                                            "length_km": spacing_km}.items() if v is not None}
                if generator in ("waxman", "random"):
                    params["seed"] = seed
                if generator == "star" and "nodes" in params:
                    params["leaves"] = params.pop("nodes")
                graph = generate(generator, **params)
                name = f"{generator}-{graph.number_of_nodes()}"
            data = skeleton(graph, name=name, seed=seed, profile=profile, scheme=scheme, requests=requests,
                            duration_s=duration_s)
        output.write_text(to_yaml(data, f"written by: {command}\nedit it, then: qfabric validate {output}"))
        load_scenario(output)  # what we wrote must load
    except QfabricError as error:
        fail(error)
    out.print(f"wrote {output}: {len(data['nodes'])} nodes, {len(data['links'])} links, "
              f"{len(data['requests'])} requests")


def _parse_cutoffs(text: str | None) -> list[int | None] | None:
    if text is None:
        return None
    try:
        return [None if part.strip() in ("", "none", "inf") else int(part) for part in text.split(",")]
    except ValueError:
        fail(QfabricError(f"--cutoff {text!r}: expected whole numbers of attempts separated by commas, e.g. 10,20"))
        raise  # unreachable


def _chain_options(scheme: str, segments: int, cutoff: str | None, swap_timing: str,
                   link_age: str) -> list[int | None] | None:
    cutoffs = _parse_cutoffs(cutoff)
    if cutoffs is not None and scheme == "swap-asap" and len(cutoffs) != 1:
        fail(QfabricError("--cutoff: swap-asap takes one cut-off (a pair's maximum storage time in attempts)"))
    if scheme == "nested" and (swap_timing, link_age) != ("sequential", "reset"):
        fail(QfabricError("--swap-timing and --link-age are swap-asap conventions: the nested scheme's cut-off is "
                          "the time a pair waits at its swap node, and a level swaps as soon as its halves exist"))
    return cutoffs


def _print_chain(result: dict, as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(result))
        return
    from rich.table import Table

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
SchemeOpt = Annotated[str, typer.Option("--scheme", click_type=choice("nested", "swap-asap"),
                                        help="Swap scheme.")]
SwapTimingOpt = Annotated[str, typer.Option(
    "--swap-timing", click_type=choice("sequential", "simultaneous"),
    help="swap-asap: node by node (sequential, the default) or all ready nodes at once (Inesta et al. 2023).")]
LinkAgeOpt = Annotated[str, typer.Option(
    "--link-age", click_type=choice("reset", "oldest"),
    help="swap-asap cut-off age of a swapped pair: restarted (reset, the default) or its oldest part's.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@chain_app.command("exact")
def chain_exact(
    segments: Segments = 4, p_gen: PGen = 0.1, p_swap: PSwap = 1.0, w0: W0 = 1.0, t_coh: TCoh = math.inf,
    cutoff: Cutoff = None, scheme: SchemeOpt = "nested", swap_timing: SwapTimingOpt = "sequential",
    link_age: LinkAgeOpt = "reset", as_json: JsonFlag = False,
) -> None:
    """Exact mean waiting time (in attempts) and fidelity (nested: generating functions; swap-asap: Markov chain)."""
    from qfabric.network.analysis import nested_exact, swap_asap_exact

    cutoffs = _chain_options(scheme, segments, cutoff, swap_timing, link_age)
    try:
        if scheme == "nested":
            result = nested_exact(segments, p_gen, p_swap, w0, t_coh, cutoffs)
        else:
            result = swap_asap_exact(segments, p_gen, p_swap, w0, t_coh, cutoffs[0] if cutoffs else None,
                                     swap_timing, link_age)
    except QfabricError as error:
        fail(error)
    _print_chain(result.to_dict(), as_json)


@chain_app.command("simulate")
def chain_simulate(
    segments: Segments = 4, p_gen: PGen = 0.1, p_swap: PSwap = 1.0, w0: W0 = 1.0, t_coh: TCoh = math.inf,
    cutoff: Cutoff = None, scheme: SchemeOpt = "nested", swap_timing: SwapTimingOpt = "sequential",
    link_age: LinkAgeOpt = "reset", as_json: JsonFlag = False,
    samples: Annotated[int, typer.Option("--samples", help="End-to-end pairs to deliver.")] = 100_000,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """The same model on the event engine: sample means with standard errors (95 %: +- 1.96 stderr)."""
    from qfabric.network.discrete import simulate_chain

    cutoffs = _chain_options(scheme, segments, cutoff, swap_timing, link_age)
    if cutoffs is not None and scheme == "swap-asap":
        cutoffs = cutoffs[0]
    options = {"swap_timing": swap_timing, "link_age": link_age}
    try:
        with progress_bar(as_json, counts=True) as bar:
            task = bar.add_task("delivering pairs", total=samples)
            result = simulate_chain(segments, p_gen, p_swap, w0, t_coh, cutoffs, scheme, samples, seed,
                                    progress=lambda n: bar.update(task, completed=n), **options)
    except QfabricError as error:
        fail(error)
    _print_chain(result.to_dict(), as_json)


if __name__ == "__main__":  # pragma: no cover
    app()
