"""``qfabric sweep`` (parameter sweeps on local processes or Dask) and ``qfabric plan cutoff`` (cut-off
optimisation with the exact chain analysis). Heavy modules (pandas, dask, numba, matplotlib) load inside the
commands, so ``qfabric --help`` stays fast.

    qfabric sweep scenarios/metro-chain.yaml --set 'links[*].length_km=10:60:5' --set 'chain.cutoff_s=0.1,0.5,1' \\
        --replicates 5 --out sweep.parquet --html sweep.html [--workers N | --scheduler tcp://host:8786]
    qfabric plan cutoff --segments 4 --p-gen 0.1 --p-swap 0.5 --w0 0.97 --t-coh 50 --figure bbm92
"""

import json
import math
from pathlib import Path
from typing import Annotated

import typer

from qfabric.cli.common import choice, err, fail, out, progress_bar
from qfabric.errors import QfabricError

app = typer.Typer(no_args_is_help=True, help="Optimise a repeater chain's protocol (cut-offs) with the exact analysis.")


def sweep(
    scenario: Annotated[Path, typer.Argument(help="The base scenario YAML.")],
    sets: Annotated[list[str], typer.Option(
        "--set", help="PATH=VALUES: e.g. 'links[*].length_km=10:60:5' (a:b:step, ends included), "
        "'chain.cutoff_s=0.1,0.5,1' (a list), 'links[a-north].length_km=20' (by name). Repeat for a grid.")],
    out_path: Annotated[Path, typer.Option("--out", help="The table: .parquet or .csv (resumed if it exists).")],
    sample: Annotated[str, typer.Option("--sample", click_type=choice("grid", "random", "lhs"),
                                        help="grid (every combination), random or lhs.")] = "grid",
    points: Annotated[int | None, typer.Option("--points", help="random/lhs: number of points.")] = None,
    replicates: Annotated[int, typer.Option("--replicates", help="Runs per point, with independent seeds.")] = 1,
    workers: Annotated[int | None, typer.Option("--workers", help="Local worker processes (default: CPUs; 0: run "
                                                "in this process).")] = None,
    scheduler: Annotated[str | None, typer.Option("--scheduler", help="Dask scheduler address, e.g. "
                                                  "tcp://host:8786 (instead of local processes).")] = None,
    engine: Annotated[str, typer.Option("--engine", click_type=choice("auto", "event", "batch"),
                                        help="auto (the batch engine for homogeneous chains, else the "
                                        "event engine), event or batch.")] = "auto",
    trials: Annotated[int, typer.Option("--trials", help="Batch engine: deliveries simulated per point.")] = 100_000,
    retries: Annotated[int, typer.Option("--retries", help="Runs again a failed point this many times.")] = 1,
    html_out: Annotated[Path | None, typer.Option("--html", help="Write a page of plots here.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Run a scenario over a grid (or sample) of field values, with replicates: one table row per point and
    replicate, every SLI as a column. Points already in --out are not run again."""
    import yaml
    from rich.markup import escape

    from qfabric.plan.space import SweepError, parse_set

    rows: list[dict] = []
    try:
        if out_path.suffix not in (".parquet", ".csv"):
            raise SweepError(f"--out {out_path}: expected a .parquet or .csv file")
        if workers is not None and workers < 0:
            raise SweepError(f"--workers {workers}: expected at least 1 (0: in this process)")
        if workers is not None and scheduler is not None:
            raise SweepError("give --workers (local processes) or --scheduler (Dask), not both")
        if trials < 2 or retries < 0:
            raise SweepError("--trials needs at least 2 and --retries at least 0")
        from qfabric.plan.sweep import _pandas

        _pandas()  # a missing optional dependency is said before any work
        from qfabric.scenario import load_scenario

        load_scenario(scenario)  # the base scenario must be valid on its own
        data = yaml.safe_load(scenario.read_text(encoding="utf-8"))
        axes = [parse_set(text) for text in sets]
        from qfabric.plan.sweep import finished_keys, make_tasks, read_table, run_sweep, write_table

        tasks = make_tasks(data, axes, replicates, sample, points, engine, trials, str(scenario),
                           str(scenario.parent.resolve()))
        previous = read_table(out_path)
        done = finished_keys(previous)
        if scheduler is not None:
            from qfabric.plan.sweep import connect

            client = connect(scheduler)  # fails fast and clearly when unreachable
        else:
            client = None
        state = {"written": 0.0}

        def keep(row: dict) -> None:
            import time

            rows.append(row)
            if time.monotonic() - state["written"] > 2.0:  # a killed sweep keeps what it finished
                write_table(rows, out_path, previous, axes)
                state["written"] = time.monotonic()

        with progress_bar(quiet, counts=True) as bar:
            task_id = bar.add_task(f"sweeping {scenario.name}", total=len(tasks), completed=len(done))
            try:
                result = run_sweep(tasks, workers=workers, scheduler=client, retries=retries, done=done, on_row=keep,
                                   progress=lambda n, total: bar.update(task_id, completed=n))
            finally:  # interrupted or not, what finished is in the table (run the command again to resume)
                frame = write_table(rows, out_path, previous, axes)
                if client is not None:
                    client.close()
    except QfabricError as error:
        fail(escape(str(error)))  # paths like links[*] are not rich markup
        return
    except KeyboardInterrupt:
        saved = f"{len(rows)} new row(s) written to {out_path}" if rows else "no run had finished"
        err.print(f"interrupted: {saved}; run the same command again to resume", highlight=False)
        raise typer.Exit(code=130) from None
    engines = ", ".join(f"{k}: {v}" for k, v in frame["engine"].value_counts(dropna=True).items()) \
        if "engine" in frame.columns else "-"
    out.print(f"{len(tasks)} runs ({len(tasks) // replicates} points x {replicates} replicates): {result.ran} run, "
              f"{result.skipped} already in {out_path}, {result.failed} failed; {result.seconds:.1f} s on "
              f"{result.backend}; engines {engines}")
    out.print(f"table written to {out_path} ({len(frame)} rows, {len(frame.columns)} columns)")
    if result.failed:
        first = next(r for r in result.rows if r["status"] != "ok")
        err.print(f"[yellow]warning:[/yellow] {result.failed} run(s) failed after {retries + 1} attempt(s); first: "
                  f"point {first['point']}: {escape(str(first['error']))}", highlight=False)
    if html_out is not None:
        from qfabric.plan.html import sweep_html

        html_out.write_text(sweep_html(frame, [a.path for a in axes], title=f"sweep of {scenario.name}",
                                       note=" ".join(f"--set {a.text}" for a in axes)))
        out.print(f"plots written to {html_out}")


def _grid(text: str) -> list[int]:
    try:
        parts = [int(p) for p in text.split(":")]
        if len(parts) in (2, 3) and ":" in text:
            step = parts[2] if len(parts) == 3 else 1
            if step <= 0:
                raise ValueError
            return list(range(parts[0], parts[1] + 1, step))
        return [int(p) for p in text.split(",")]
    except ValueError:
        fail(QfabricError(f"--cutoffs {text!r}: expected a:b[:step] or a list a,b,c of whole numbers of attempts"))
        raise


@app.command("cutoff")
def cutoff(
    segments: Annotated[int, typer.Option("--segments", help="Elementary links in the chain.")] = 4,
    p_gen: Annotated[float, typer.Option("--p-gen", help="Generation success probability per attempt.")] = 0.1,
    p_swap: Annotated[float, typer.Option("--p-swap", help="Swap success probability.")] = 1.0,
    w0: Annotated[float, typer.Option("--w0", help="Werner parameter of a fresh link.")] = 1.0,
    t_coh: Annotated[float, typer.Option("--t-coh", help="Pair coherence time in attempts (inf: none).")] = math.inf,
    figure: Annotated[str, typer.Option("--figure", click_type=choice("rate", "rate-at-fidelity", "bbm92"),
                                        help="rate, rate-at-fidelity or bbm92.")] = "rate",
    fidelity_min: Annotated[float | None, typer.Option("--fidelity-min", help="rate-at-fidelity: the target.")]
    = None,
    cutoffs: Annotated[str, typer.Option("--cutoffs", help="Cut-offs to try, attempts: a:b[:step] or a,b,c.")]
    = "0:40",
    scheme: Annotated[str, typer.Option("--scheme", click_type=choice("swap-asap", "nested", "both"),
                                        help="swap-asap, nested, or both.")] = "swap-asap",
    swap_timing: Annotated[str, typer.Option("--swap-timing", click_type=choice("sequential", "simultaneous"),
                                             help="swap-asap: sequential or simultaneous.")]
    = "sequential",
    link_age: Annotated[str, typer.Option("--link-age", click_type=choice("reset", "oldest"),
                                          help="swap-asap: reset or oldest.")] = "reset",
    attempt_period_s: Annotated[float | None, typer.Option("--attempt-period-s", help="Report per second.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (every candidate) instead of a table.")] = False,
) -> None:
    """The cut-off (per nesting level for nested; and the scheme, with --scheme both) that maximises the figure,
    from the exact analysis of every candidate."""
    from rich.table import Table

    from qfabric.plan.cutoff import PlanError, optimise_cutoff

    grid = _grid(cutoffs)
    schemes = ["swap-asap", "nested"] if scheme == "both" else [scheme]
    plans = []
    try:
        for name in schemes:
            if name == "nested" and scheme == "both" and segments & (segments - 1):
                continue
            plans.append(optimise_cutoff(segments, p_gen, p_swap, w0, t_coh, figure, grid, name, fidelity_min,
                                         swap_timing=swap_timing, link_age=link_age, attempt_period_s=attempt_period_s))
    except PlanError as error:
        fail(error)
        return
    except QfabricError as error:
        fail(error)
        return
    best = max(plans, key=lambda p: p.best.figure)
    if as_json:
        out.print_json(json.dumps({"best": best.to_dict()["best"], "figure": best.figure, "unit": best.unit,
                                   "plans": [p.to_dict() for p in plans]}))
        return
    table = Table(title=f"{figure}: {best.unit}")
    for column in ("scheme", "cut-off (attempts)", "mean wait (attempts)", "mean fidelity", "figure"):
        table.add_column(column)
    for plan in plans:
        ranked = sorted((c for c in plan.candidates if c.figure is not None), key=lambda c: -c.figure)[:5]
        for c in ranked:
            mark = " (best)" if c is best.best else ""
            table.add_row(c.scheme, f"{c.cutoff}{mark}", f"{c.mean_waiting_time:.4g}", f"{c.mean_fidelity:.4f}",
                          f"{c.figure:.4g}")
    out.print(table)
    b = best.best
    out.print(f"best: {b.scheme}, cut-off {b.cutoff if b.cutoff is not None else 'none'} attempts: {b.figure:.4g} "
              f"{best.unit} (mean fidelity {b.mean_fidelity:.4f}, mean wait {b.mean_waiting_time:.4g} attempts)")


@app.command("repeaters")
def repeaters(
    fibre_map: Annotated[Path, typer.Option("--fibre-map", help="GML or GraphML fibre map (edge length_km; node "
                                            "attribute candidate marks repeater sites, default: every non-end).")],
    demands: Annotated[Path, typer.Option("--demands", help="YAML list of {name, from, to, rate_hz, fidelity_min}.")],
    budget: Annotated[float | None, typer.Option("--budget", min=0, help="Capital budget (the price table's "
                                                 "currency); without it, the cheapest design.")] = None,
    prices: Annotated[Path | None, typer.Option("--prices", help="YAML overriding the default price table "
                                                "(docs/planning.md).")] = None,
    profile: Annotated[str, typer.Option("--profile", help="Hardware profile of every link and repeater.")]
    = "near-term",
    scheme: Annotated[str, typer.Option("--scheme", click_type=choice("single-click", "double-click"),
                                        help="Heralding scheme.")] = "double-click",
    memories: Annotated[int, typer.Option("--memories", min=1, help="Memory qubits per link end per demand.")] = 2,
    max_link_km: Annotated[float, typer.Option("--max-link-km", min=1, help="Longest elementary link, km of "
                                               "fibre.")] = 60.0,
    max_site_qubits: Annotated[int, typer.Option("--max-site-qubits", min=2, help="Memory qubits a site can "
                                                 "hold.")] = 64,
    routes: Annotated[int, typer.Option("--routes", min=1, help="Candidate routes judged per demand.")] = 12,
    verify_s: Annotated[float, typer.Option("--verify-s", min=0, help="Simulate the design this long to check it "
                                            "(0: skip).")] = 2.0,
    html_out: Annotated[Path | None, typer.Option("--html", help="Write the design with plots here.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the design as JSON here.")] = None,
) -> None:
    """Choose repeater sites and memories that meet every demand at the least cost of ownership, within a
    budget; then simulate the design to check it."""
    from rich.table import Table

    from qfabric.plan.costs import PriceTable
    from qfabric.plan.placement import fibre_map as read_map
    from qfabric.plan.placement import load_demands, place_repeaters, placement_html, verify

    try:
        wanted = load_demands(demands)
        graph = read_map(fibre_map, wanted)
        table = PriceTable.from_yaml(prices) if prices else PriceTable()
        with err.status("judging routes and solving the integer program ..."):
            result = place_repeaters(graph, wanted, budget=budget, prices=table, profile=profile, scheme=scheme,
                                     memories=memories, max_link_km=max_link_km, max_site_qubits=max_site_qubits,
                                     routes_per_demand=routes)
        checked = None
        if result.feasible and verify_s > 0:
            with err.status(f"simulating the design for {verify_s:g} s ..."):
                checked = verify(result, wanted, profile=profile, scheme=scheme, memories=memories,
                                 duration_s=verify_s)
    except QfabricError as error:
        fail(error)
    out.print(result.reason)
    if result.feasible:
        rows = Table(title="Demands", title_justify="left")
        for column in ("demand", "route", "target pairs/s", "predicted pairs/s", "simulated pairs/s",
                       "F min", "predicted F", "simulated F", "met"):
            rows.add_column(column)
        for d in wanted:
            r, sim = result.routes[d.name], (checked or {}).get(d.name, {})
            rows.add_row(d.name, " > ".join(r.stations), f"{d.rate_hz:g}", f"{r.offer.prediction.rate_hz:.4g}",
                         f"{sim['rate_hz']:.4g}" if sim else "-", f"{d.fidelity_min:g}",
                         f"{r.offer.prediction.fidelity:.4f}", f"{sim['fidelity']:.4f}" if sim.get("fidelity") else "-",
                         ("yes" if sim["met"] else "NO") if sim else "-")
        out.print(rows)
        c = result.cost
        out.print(f"repeater sites: {', '.join(f'{s} ({q} qubits)' for s, q in result.sites.items()) or 'none'}; "
                  f"{len(result.links)} elementary links, {sum(result.links.values()):.1f} km of fibre")
        out.print(f"capital {c.capex:,.0f}, running {c.opex_per_year:,.0f} per year; "
                  f"{c.cost_per_pair:.3g} per delivered pair, {c.cost_per_key_bit:.3g} per BBM92 key bit"
                  if c.cost_per_key_bit else f"capital {c.capex:,.0f}, running {c.opex_per_year:,.0f} per year")
    if json_out is not None:
        json_out.write_text(json.dumps({**result.summary(), "verification": checked}, indent=2, default=str) + "\n")
        out.print(f"design written to {json_out}")
    if html_out is not None:
        html_out.write_text(placement_html(result, graph, wanted, checked))
        out.print(f"page written to {html_out}")
    if not result.feasible:
        raise typer.Exit(1)
