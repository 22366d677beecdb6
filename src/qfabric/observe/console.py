"""Console rendering of a run report with rich tables (fits an 80-column terminal)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def _fmt(x, spec=".4g") -> str:
    return "-" if x is None else format(x, spec)


def _ms(summary: dict, key: str) -> str:
    return _fmt(summary[key] * 1e3, ".3g") if summary.get("count") else "-"


MAX_LINK_ROWS = 20


def print_report(report: dict, console: Console | None = None) -> None:
    """Print one summary row per request, the busiest links and nodes, QKD and the federation."""
    console = console or Console()
    meta = report.get("scenario", {})
    if "requests" not in report:  # a federation-only report (qfabric fl)
        print_federated(report["federated"], console)
        return
    console.print(f"[bold]{meta.get('name', 'run')}[/bold]  seed {meta.get('seed')}  "
                  f"{meta.get('duration_s')} s simulated")
    all_rows = report["requests"]
    rows = [row for row in all_rows if row.get("refused") is None]
    if rows:
        tenants = len({row["tenant"] for row in rows}) > 1 or rows[0]["tenant"] != "default"
        table = Table(title="Requests", title_justify="left")
        slos = any(row.get("slo") for row in rows)
        columns = ["request", *(["tenant"] if tenants else []), "hops", "pairs", "pairs/s ±95%", "F mean",
                   "1st pair ms", "wait p50/p99 ms", "of target", *(["SLO"] if slos else [])]
        for col in columns:
            table.add_column(col, justify="left" if col in ("request", "tenant") else "right")
        for row in rows:
            f, w = row["fidelity"], row["waiting_time_s"]
            lo, hi = row["rate_ci95_hz"]
            first = row["time_to_first_pair_s"]
            table.add_row(
                row["name"], *([row["tenant"]] if tenants else []), "+".join(map(str, row["hops"])),
                str(row["pairs_delivered"]), f"{_fmt(row['rate_hz'], '.4g')} ±{_fmt((hi - lo) / 2, '.2g')}",
                _fmt(f.get("mean"), ".4f"), _fmt(first * 1e3 if first is not None else None, ".3g"),
                f"{_ms(w, 'p50')}/{_ms(w, 'p99')}", _fmt(row["share_of_target"], ".0%"),
                *([_slo_cell(row.get("slo"))] if slos else []),
            )
        console.print(table)
        for row in rows[:10]:
            console.print(f"[dim]{row['name']}: " + "; ".join(" > ".join(p) for p in row["paths"]) + "[/dim]")
        if len(rows) > 10:
            console.print(f"[dim]... and {len(rows) - 10} more requests (paths in the JSON and HTML reports)[/dim]")
        fairness = report.get("fairness") or {}
        notes = [f"Jain's fairness index {fairness['jain_index_rate']:.3f} (rates)"] \
            if fairness.get("jain_index_rate") is not None else []
        discards = sum(r["cutoff_discards"] for r in rows)
        failed = sum(r["swaps_failed"] for r in rows)
        notes.append(f"{sum(r['swaps'] for r in rows)} swaps ({failed} failed), {discards} cut-off discards")
        console.print(f"[dim]{'; '.join(notes)}; multiplexing {meta.get('multiplexing', {}).get('mode', '-')}."
                      "[/dim]")
    refused = [row for row in all_rows if row.get("refused") is not None]
    for row in refused[:10]:
        console.print(f"[yellow]refused[/yellow] {row['name']} ({row['tenant']}): {row['refused']}")
    if len(refused) > 10:
        console.print(f"[yellow]... and {len(refused) - 10} more refused requests (reasons in the JSON report)"
                      "[/yellow]")
    print_tenants(report.get("tenants") or [], console)
    print_faults(report.get("faults") or [], console)
    for warning in report.get("warnings", []):
        console.print(f"[yellow]warning[/yellow]: {warning}")
    links = [row for row in report["links"] if not row["idle"]]
    idle = len(report["links"]) - len(links)
    shown = sorted(links, key=lambda r: -r["attempts"])[:MAX_LINK_ROWS] if len(links) > MAX_LINK_ROWS else links
    title = f"Links ({len(links)} in use" + (f", {idle} idle" if idle else "") + \
        (f"; the {len(shown)} busiest" if len(shown) < len(links) else "") + ")"
    table = Table(title=title, title_justify="left")
    for col in ("link", "km", "attempts", "p sim / model", "pairs/s", "busy", "of PLOB"):
        table.add_column(col, justify="left" if col == "link" else "right")
    for row in shown:
        table.add_row(
            row["name"], _fmt(row["length_km"]), str(row["attempts"]),
            f"{_fmt(row['success_rate'], '.3g')} / {_fmt(row['success_probability'], '.3g')}",
            _fmt(row["pairs_per_s"]), _fmt(row["utilisation"], ".0%"), _fmt(row["fraction_of_plob"], ".2%"),
        )
    console.print(table)
    nodes = sorted((n for n in report.get("nodes", []) if n["memory_utilisation"]),
                   key=lambda n: -n["memory_utilisation"])[:5]
    if nodes:
        console.print("[dim]Busiest memories: " + ", ".join(f"{n['name']} {n['memory_utilisation']:.0%} of "
                                                             f"{n['memory_qubits']}" for n in nodes) + "[/dim]")
    console.print("[dim]busy: share of the link's memory-pair time spent attempting. of PLOB: "
                  "distillable ebit/s (hashing bound) over the repeaterless bound of the link's fibre at its attempt "
                  "rate.[/dim]")
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
                      f"({perf['wall_s_per_simulated_s']:.4f} s wall per simulated s, {perf.get('engine')} engine)"
                      "[/dim]")


def _slo_cell(slo: dict | None) -> str:
    if not slo:
        return "-"
    used = slo["error_budget"]["used_s"]
    text = f"{slo['availability']:.1%}" + (f", {len(slo['violations'])} viol. {used:.3g} s" if used else "")
    return ("[green]" if slo["met"] else "[red]") + text + ("[/green]" if slo["met"] else "[/red]")


def print_tenants(rows: list[dict], console: Console) -> None:
    if not rows:
        return
    table = Table(title="Tenants", title_justify="left")
    for col in ("tenant", "weight", "priority", "requests", "refused", "pairs", "served s"):
        table.add_column(col, justify="left" if col == "tenant" else "right")
    for row in rows:
        usage = row["usage"]
        table.add_row(row["name"], _fmt(row["weight"]), str(row["priority"]), str(row["requests"]),
                      str(row["refused"]), str(usage.get("pairs_delivered", 0)), _fmt(usage.get("service_s", 0.0)))
    console.print(table)


def print_faults(rows: list[dict], console: Console) -> None:
    if not rows:
        return
    table = Table(title=f"Faults ({len(rows)})", title_justify="left")
    for col in ("fault", "at s", "repaired s", "detected after s", "pairs lost", "requests moved (after s)"):
        table.add_column(col, justify="left" if col in ("fault", "requests moved (after s)") else "right")
    for row in rows[:MAX_LINK_ROWS]:
        size = f" +{row['extra_loss_db']:g} dB" if row["extra_loss_db"] else \
            f" x{row['factor']:g}" if row["factor"] else ""
        ttd = row["time_to_detect_s"]
        moved = ", ".join(f"{m['request']} ({m['time_to_reroute_s']:.3g})" for m in row["requests_moved"][:4])
        if len(row["requests_moved"]) > 4:
            moved += f", +{len(row['requests_moved']) - 4}"
        table.add_row(f"{row['kind']} {row['target']}{size}", _fmt(row["start_s"]), _fmt(row["end_s"]),
                      _fmt(ttd, ".3g"), str(row["pairs_lost"]), moved or "-")
    console.print(table)
    if len(rows) > MAX_LINK_ROWS:
        console.print(f"[dim]... and {len(rows) - MAX_LINK_ROWS} more faults (in the JSON and HTML reports)[/dim]")


def print_federated(fl: dict, console: Console) -> None:
    """Accuracy against the baselines, keys, fallbacks, privacy and where the time went."""
    final, wall = fl["final"], fl["wall_time"]
    table = Table(title="Federated training (Flower)", title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("organisations", ", ".join(f"{o['sae']} ({o['examples']} patients)" for o in fl["organisations"]))
    table.add_row("model", f"{fl['model'].get('kind', 'MLP')} {'-'.join(map(str, fl['model']['layers']))}, "
                  f"{fl['model']['parameters']:,} parameters ({fl['training'].get('dataset', 'breast-cancer')} data)")
    table.add_row("rounds", f"{fl['rounds_completed']} of {fl['rounds_requested']} completed")
    runs = final.get("runs") or {}
    shown = [(label, runs.get(key)) for key, label in (("plain", "plain FedAvg"), ("secure_no_dp", "protected, no DP"),
                                                       ("secure_dp", "protected + DP"), ("centralised", "centralised"))]
    if any(r for _, r in shown):
        window = final.get("window_rounds", 1)
        table.add_row(f"test accuracy\n(last {window} rounds)", "\n".join(
            f"{label}: {r['mean']:.3f} ± {r['std']:.3f}" for label, r in shown if r))
    else:
        table.add_row("test accuracy", f"secure {_fmt(final['secure_accuracy'], '.3f')}, plain FedAvg "
                      f"{_fmt(final['plain_accuracy'], '.3f')}, centralised "
                      f"{_fmt(final['centralised_accuracy'], '.3f')}")
    table.add_row("policy", f"{fl['policy']['mode']}, fallback {fl['policy']['fallback']}: "
                  f"{len(fl['fallbacks'])} fallbacks")
    if fl.get("secure_aggregation", {}).get("mode") == "double-masking":
        table.add_row("secure aggregation", "double masking: self-masks whose seeds the organisations share "
                      "(an aggregator faking a dropout cannot unmask an update)")
    keys = sum(r["qkd_keys_fetched"] for r in fl["per_round"])
    table.add_row("QKD keys", f"{keys} fetched over ETSI 014 (both ends count)")
    domains = fl.get("key_supply", {}).get("domains") or []
    if len(domains) > 1:  # keys forwarded between KMEs, from their audit logs
        table.add_row("KME domains", f"{len(domains)} KMEs ({', '.join(d['kme'] for d in domains)}): "
                      f"{fl['key_supply']['forwarded_keys']} keys forwarded between them, "
                      f"{sum(d['forward_transit'] for d in domains)} through a KME on the way, "
                      f"{sum(d['forward_failed'] for d in domains)} forwards failed")
    sources = fl.get("key_supply", {}).get("sources") or {}
    e2e = {pair: n["bbm92_end_to_end"] for pair, n in sources.items() if n.get("bbm92_end_to_end")}
    if e2e:
        table.add_row("keys from entanglement", ", ".join(
            f"{pair.replace('|', '-')}: {n} end to end (BBM92), {sources[pair]['trusted_relay']} relayed"
            for pair, n in e2e.items()))
    privacy = fl.get("privacy")
    if privacy:
        budget = privacy.get("epsilon_budget")
        table.add_row("privacy", f"epsilon {fl['epsilon']:.3g} at delta {privacy['delta']:g} after "
                      f"{fl['rounds_requested']} rounds ({privacy.get('level', 'organisation')}-level DP, noise "
                      f"multiplier {privacy['noise_multiplier']:g}, clip {privacy['clip_norm']:g}"
                      + (f"; budget {budget:g}" if budget is not None else "") + ")"
                      + ("\nencryption and masking cost no accuracy; the gap to plain FedAvg is the DP noise"
                         if runs.get("secure_no_dp") else ""))
    else:
        table.add_row("privacy", "no differential privacy (noise_multiplier 0)")
    table.add_row("wall time", f"rounds {wall['protected_rounds_s']:.2f} s (training {wall['train_seconds']:.2f}, "
                  f"key fetching {wall['kme_seconds']:.2f}, crypto {wall['crypto_seconds']:.2f}); "
                  f"unprotected {_fmt(wall['plain_federation_s'], '.2f')} s")
    console.print(table)
    if privacy and privacy.get("warning"):
        console.print(f"[bold yellow]weak privacy[/bold yellow]: {privacy['warning']}")
    for r in fl["per_round"]:
        if r["failed"]:
            console.print(f"[yellow]round {r['round']} failed[/yellow]: {r['failed']}")
        elif r["dropped"]:
            console.print(f"[yellow]round {r['round']}[/yellow]: " + "; ".join(f"{k} dropped ({v})"
                                                                           for k, v in r["dropped"].items()))
    for f in fl["fallbacks"][:10]:
        console.print(f"[yellow]fallback[/yellow] round {f['round']}: {f.get('sae')} -> {f.get('peer')} "
                      f"{f.get('mode')} ({f.get('reason')})")
