"""Console rendering of a run report with rich tables (fits an 80-column terminal)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def _fmt(x, spec=".4g") -> str:
    return "-" if x is None else format(x, spec)


def _ms(summary: dict, key: str) -> str:
    return _fmt(summary[key] * 1e3) if summary.get("count") else "-"


def print_report(report: dict, console: Console | None = None) -> None:
    """Print the end-to-end SLIs and the per-link table."""
    console = console or Console()
    meta = report.get("scenario", {})
    if "end_to_end" not in report:  # a federation-only report (qfabric fl)
        print_federated(report["federated"], console)
        return
    console.print(f"[bold]{meta.get('name', 'run')}[/bold]  seed {meta.get('seed')}  "
                  f"{meta.get('duration_s')} s simulated")
    for row in report["end_to_end"]:
        f, w = row["fidelity"], row["waiting_time_s"]
        lo, hi = row["rate_ci95_hz"]
        table = Table(title=f"End to end: {' - '.join(row['between'])} ({row['scheme']})", title_justify="left",
                      show_header=False)
        table.add_column(style="bold")
        table.add_column()
        table.add_row("path", " > ".join(row["path"]))
        table.add_row("pairs delivered", str(row["pairs_delivered"]))
        table.add_row("rate", f"{_fmt(row['rate_hz'])} pairs/s (95% CI {_fmt(lo)} - {_fmt(hi)})")
        if f.get("count"):
            table.add_row("fidelity", f"{f['mean']:.4f} mean, p5 {f['p5']:.4f}, p50 {f['p50']:.4f}, "
                          f"p95 {f['p95']:.4f}")
            table.add_row("QBER (Z / X)", f"{row['qber_z_mean']:.4f} / {row['qber_x_mean']:.4f}")
        table.add_row("waiting time", f"{_ms(w, 'mean')} ms mean, p50 {_ms(w, 'p50')}, p99 {_ms(w, 'p99')} ms")
        table.add_row("swaps", f"{row['swaps']} ({row['swaps_failed']} failed), "
                      f"{row['cutoff_discards']} cut-off discards")
        console.print(table)
    schemes = sorted({row["scheme"] for row in report["links"]})
    links = Table(title=f"Links ({', '.join(schemes)})", title_justify="left")
    for col in ("link", "km", "attempts", "p sim", "p model", "pairs/s", "F", "of PLOB"):
        links.add_column(col, justify="left" if col == "link" else "right")
    for row in report["links"]:
        links.add_row(
            row["name"], _fmt(row["length_km"]), str(row["attempts"]), _fmt(row["success_rate"], ".3g"),
            _fmt(row["success_probability"], ".3g"), _fmt(row["pairs_per_s"]), _fmt(row["heralded_fidelity"], ".3f"),
            _fmt(row["fraction_of_plob"], ".2%"),
        )
    console.print(links)
    console.print("[dim]F: fidelity at herald. of PLOB: distillable ebit/s (hashing bound) over the repeaterless "
                  "bound of the link's fibre at its attempt rate.[/dim]")
    if report.get("qkd"):
        keys = Table(title="QKD services", title_justify="left")
        for col in ("service", "key rate (bit/s)", "QBER", "f", "leaked bits", "blocks aborted"):
            keys.add_column(col, justify="left" if col == "service" else "right")
        for row in report["qkd"]:
            keys.add_row(f"{row['name']} ({row.get('protocol', '-')})", _fmt(row.get("secret_key_rate_bps")),
                         _fmt(row.get("qber"), ".4f"), _fmt(row.get("reconciliation_efficiency"), ".3f"),
                         _fmt(row.get("leaked_bits")), f"{row.get('aborted_blocks')} of {row.get('blocks', '-')}")
        console.print(keys)
        for row in report["qkd"]:
            for reason in row.get("abort_reasons") or []:
                console.print(f"[yellow]{row['name']}[/yellow]: {reason}")
        simulated = sorted({row["simulated_seconds"] for row in report["qkd"] if row.get("simulated_seconds")})
        if simulated:
            console.print(f"[dim]Key rates are measured on {', '.join(f'{v:g}' for v in simulated)} s of each "
                          "source's pulses, simulated and post-processed in full, and reported per second.[/dim]")
    if report.get("federated"):
        print_federated(report["federated"], console)
    perf = report.get("performance")
    if perf:
        console.print(f"[dim]{perf['events']} events in {perf['wall_time_s']:.3f} s wall "
                      f"({perf['wall_s_per_simulated_s']:.4f} s wall per simulated s)[/dim]")


def print_federated(fl: dict, console: Console) -> None:
    """Accuracy against the baselines, keys, fallbacks, privacy and where the time went."""
    final, wall = fl["final"], fl["wall_time"]
    table = Table(title="Federated training (Flower)", title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("organisations", ", ".join(f"{o['sae']} ({o['examples']} patients)" for o in fl["organisations"]))
    table.add_row("model", f"MLP {'-'.join(map(str, fl['model']['layers']))}, {fl['model']['parameters']:,} parameters")
    table.add_row("rounds", f"{fl['rounds_completed']} of {fl['rounds_requested']} completed")
    table.add_row("test accuracy", f"secure {_fmt(final['secure_accuracy'], '.3f')}, plain FedAvg "
                  f"{_fmt(final['plain_accuracy'], '.3f')}, centralised {_fmt(final['centralised_accuracy'], '.3f')}")
    table.add_row("policy", f"{fl['policy']['mode']}, fallback {fl['policy']['fallback']}: "
                  f"{len(fl['fallbacks'])} fallbacks")
    keys = sum(r["qkd_keys_fetched"] for r in fl["per_round"])
    table.add_row("QKD keys", f"{keys} fetched over ETSI 014 (both ends count)")
    table.add_row("privacy", f"epsilon {fl['epsilon']:.3g} at delta {fl['privacy']['delta']:g}" if fl.get("privacy")
                  else "no differential privacy (noise_multiplier 0)")
    table.add_row("wall time", f"rounds {wall['protected_rounds_s']:.2f} s (training {wall['train_seconds']:.2f}, "
                  f"key fetching {wall['kme_seconds']:.2f}, crypto {wall['crypto_seconds']:.2f}); "
                  f"unprotected {_fmt(wall['plain_federation_s'], '.2f')} s")
    console.print(table)
    for r in fl["per_round"]:
        if r["failed"]:
            console.print(f"[yellow]round {r['round']} failed[/yellow]: {r['failed']}")
        elif r["dropped"]:
            console.print(f"[yellow]round {r['round']}[/yellow]: " + "; ".join(f"{k} dropped ({v})"
                                                                           for k, v in r["dropped"].items()))
    for f in fl["fallbacks"][:10]:
        console.print(f"[yellow]fallback[/yellow] round {f['round']}: {f.get('sae')} -> {f.get('peer')} "
                      f"{f.get('mode')} ({f.get('reason')})")
