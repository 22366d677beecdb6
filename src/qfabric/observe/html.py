"""HTML reports: sections of tables and matplotlib figures embedded as PNG (one self-contained file)."""

from __future__ import annotations

import base64
import html
import io

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
.scroll{overflow-x:auto;max-width:100%}table{border-collapse:collapse;margin:1em 0;font-size:90%}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}th{background:#f3f3f3;vertical-align:bottom}
td:first-child,th:first-child{text-align:left}img{max-width:100%}.note{color:#666;font-size:90%}"""

UNIT_SUFFIXES = (("_ebits_per_s", " (ebit/s)"), ("_bits_per_pulse", " (bit/pulse)"), ("_per_s", " (/s)"),
                 ("_bps", " (bit/s)"), ("_km", " (km)"), ("_hz", " (Hz)"), ("_ms", " (ms)"), ("_s", " (s)"),
                 ("_db", " (dB)"))


def human(column: str) -> str:
    """A report key as a column heading: words, and its unit in brackets.

    >>> human("length_km"), human("pairs_per_s"), human("fraction_of_plob"), human("pairs/s")
    ('length (km)', 'pairs (/s)', 'fraction of plob', 'pairs/s')
    """
    if " " in column or "/" in column or "_" not in column:
        return column
    for suffix, unit in UNIT_SUFFIXES:
        if column.endswith(suffix):
            return column.removesuffix(suffix).replace("_", " ") + unit
    return column.replace("_", " ")


def figure_to_img(fig: Figure) -> str:
    """An ``<img>`` tag holding the figure as a base64 PNG; closes the figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="figure" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def table(rows: list[dict], columns: list[str] | None = None) -> str:
    """An HTML table of ``rows`` (human headings with units; scrolls sideways when wider than the page)."""
    if not rows:
        return "<p class='note'>none</p>"
    columns = columns or list(rows[0])
    head = "".join(f"<th>{html.escape(human(c))}</th>" for c in columns)
    body = ""
    for row in rows:
        cells = []
        for c in columns:
            v = row.get(c)
            text = f"{v:.4g}" if isinstance(v, float) else ("-" if v is None else str(v))
            cells.append(f"<td>{html.escape(text)}</td>")
        body += "<tr>" + "".join(cells) + "</tr>"
    return f"<div class='scroll'><table><tr>{head}</tr>{body}</table></div>"


def page(title: str, sections: list[tuple[str, str]]) -> str:
    """A whole HTML document: a title and ``(heading, html)`` sections."""
    parts = [f"<h2>{html.escape(h)}</h2>{body}" for h, body in sections]
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{''.join(parts)}</body></html>")


def key_rate_figure(curve: dict) -> Figure:
    """Secret bits per pulse against distance: analytic curves, simulated points, PLOB."""
    fig, ax = plt.subplots(figsize=(8, 5))
    d = curve["distance_km"]

    def positive(values):
        return [v if v and v > 0 else float("nan") for v in values]

    ax.semilogy(d, positive(curve["plob"]), "k--", label="PLOB bound (repeaterless)")
    ax.semilogy(d, positive(curve["asymptotic"]), label="decoy BB84, infinite decoys (asymptotic)")
    ax.semilogy(d, positive(curve["vacuum_weak"]), label="vacuum + weak decoy (asymptotic)")
    ax.semilogy(d, positive(curve["no_decoy"]), label="no decoys (GLLP)")
    ax.semilogy(d, positive(curve["finite_key"]), label=f"finite key, {curve['pulses']:.0e} pulses")
    sim = curve.get("simulated") or []
    if sim:
        ax.semilogy([p["distance_km"] for p in sim], positive([p["bits_per_pulse"] for p in sim]), "o",
                    color="crimson", label="simulated + post-processed")
    ax.set_xlabel("distance (km)")
    ax.set_ylabel("secret bits per pulse")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def network_figure(report: dict) -> Figure:
    """The network: links coloured by utilisation (idle grey), each request's paths drawn over them."""
    import networkx as nx

    graph = nx.Graph()
    nodes = report.get("nodes", [])
    graph.add_nodes_from(n["name"] for n in nodes)
    for row in report["links"]:
        graph.add_edge(*row["between"], utilisation=row["utilisation"] or 0.0, idle=row["idle"])
    positions = {n["name"]: n.get("position_km") for n in nodes}
    if nodes and all(p is not None for p in positions.values()):
        pos = {k: tuple(v) for k, v in positions.items()}
    else:
        pos = nx.kamada_kawai_layout(graph) if graph.number_of_nodes() <= 300 else nx.spring_layout(graph, seed=1)
    big = graph.number_of_nodes() > 60
    fig, ax = plt.subplots(figsize=(9, 6.5))
    idle = [(a, b) for a, b, d in graph.edges(data=True) if d["idle"]]
    used = [(a, b) for a, b, d in graph.edges(data=True) if not d["idle"]]
    nx.draw_networkx_edges(graph, pos, edgelist=idle, edge_color="#cccccc", width=0.8, ax=ax)
    if used:
        colours = [graph.edges[e]["utilisation"] for e in used]
        drawn = nx.draw_networkx_edges(graph, pos, edgelist=used, edge_color=colours, edge_cmap=plt.cm.viridis,
                                       edge_vmin=0, edge_vmax=1, width=2.5, ax=ax)
        fig.colorbar(drawn, ax=ax, label="link utilisation (share of memory-pair time attempting)", shrink=0.7)
    shown = report["requests"][:20]  # beyond twenty, colours stop telling requests apart
    palette = plt.cm.tab10.colors if len(shown) <= 10 else plt.cm.tab20.colors
    for i, row in enumerate(shown):
        for path in row["paths"]:
            edges = list(zip(path, path[1:], strict=False))
            nx.draw_networkx_edges(graph, pos, edgelist=edges, edge_color=[palette[i]], width=6, alpha=0.35, ax=ax)
        ax.plot([], [], color=palette[i], linewidth=6, alpha=0.5, label=row["name"])
    memory = {n["name"]: n.get("memory_utilisation") or 0.0 for n in nodes}
    sizes = [30 + 300 * memory.get(n, 0.0) for n in graph.nodes] if not big else 12
    nx.draw_networkx_nodes(graph, pos, node_size=sizes, node_color="#333333", ax=ax)
    if not big:  # labels above the markers, on a light box so links under them stay readable
        ys = [p[1] for p in pos.values()]
        lift = 0.03 * ((max(ys) - min(ys)) or 1.0)
        nx.draw_networkx_labels(graph, {n: (p[0], p[1] + lift) for n, p in pos.items()}, font_size=7, ax=ax,
                                verticalalignment="bottom",
                                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8})
    if report["requests"]:
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.01), title="requests (paths)",
                  ncol=min(5, len(shown)), frameon=False)
    ax.set_axis_off()
    ax.set_title("Network: node size = memory utilisation")
    return fig


def request_figure(rows: list[dict]) -> Figure:
    """Per request: delivered rate with its 95 % interval and target, fidelity spread, waiting percentiles."""
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13, 3.8))
    names = [r["name"] for r in rows]
    x = range(len(rows))
    rates = [r["rate_hz"] for r in rows]
    errors = [[r["rate_hz"] - r["rate_ci95_hz"][0] for r in rows], [r["rate_ci95_hz"][1] - r["rate_hz"] for r in rows]]
    ax1.bar(x, rates, yerr=errors, color="tab:blue", capsize=3)
    targets = [(i, r["target"]["rate_hz"]) for i, r in enumerate(rows) if r["target"] and "rate_hz" in r["target"]]
    if targets:
        ax1.plot([t[0] for t in targets], [t[1] for t in targets], "r_", markersize=18, label="target")
        ax1.legend(fontsize=8)
    ax1.set_ylabel("pairs/s (95% CI)")
    ax1.set_title("Delivered rate")
    for i, r in enumerate(rows):
        f = r["fidelity"]
        if f.get("count"):
            ax2.vlines(i, f["min"], f["max"], color="grey", linewidth=1)
            ax2.vlines(i, f["p5"], f["p95"], color="tab:blue", linewidth=8)
            ax2.plot(i, f["p50"], "o", color="white", markeredgecolor="black", markersize=5)
    ax2.set_ylabel("delivered fidelity")
    ax2.set_title("Fidelity: min-max, p5-p95, median")
    for key, marker in (("p50", "o"), ("p99", "^")):
        ax3.plot(list(x), [r["waiting_time_s"][key] * 1e3 if r["waiting_time_s"].get("count") else float("nan")
                           for r in rows], marker, label=key)
    ax3.set_yscale("log")
    ax3.yaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))  # labels in a decade
    ax3.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax3.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax3.set_ylabel("time between pairs (ms)")
    ax3.set_title("Waiting time")
    ax3.legend(fontsize=8)
    for ax in (ax1, ax2, ax3):
        ax.set_xticks(list(x), names, rotation=45 if len(rows) > 6 else 0, fontsize=7)
    fig.tight_layout()
    return fig


def _shade_faults(ax, faults: list[dict], end_s: float) -> None:
    for i, f in enumerate(faults):
        if f["kind"] in ("cut", "node"):
            ax.axvspan(f["start_s"], f["end_s"] if f["end_s"] is not None else end_s, color="grey", alpha=0.15,
                       label="link or node down" if i == 0 else None)


def timeline_figure(report: dict) -> Figure | None:
    """One timeline: each request's rate and fidelity (SLO floors, violations in red), each QKD link's key rate,
    and the federation's KMS pools, with the outages shaded."""
    rows = [r for r in report["requests"] if r.get("timeline") and r["timeline"]["t_s"]][:12]
    qkd = [q for q in report.get("qkd", []) if q.get("conditions")]
    fl = report.get("federated")
    panels = (2 if rows else 0) + (1 if qkd else 0) + (1 if fl and fl.get("per_round") else 0)
    if not panels or not (report.get("faults") or any(r.get("slo") for r in rows)):
        return None
    end = report["scenario"]["duration_s"]
    faults = report.get("faults") or []
    fig, axes = plt.subplots(panels, 1, figsize=(11, 2.6 * panels), sharex=True, squeeze=False)
    axes = list(axes[:, 0])
    if rows:
        rate_ax, fid_ax = axes.pop(0), axes.pop(0)
        for r in rows:
            tl = r["timeline"]
            line, = rate_ax.step(tl["t_s"], tl["rate_hz"], where="post", label=r["name"])
            fid_ax.plot(tl["t_s"], [f if f is not None else float("nan") for f in tl["fidelity"]], ".-",
                        markersize=3, color=line.get_color())
            slo = r.get("slo")
            if slo:
                objectives = slo["objectives"]
                if "rate_hz_min" in objectives:
                    rate_ax.axhline(objectives["rate_hz_min"], color=line.get_color(), linestyle=":", linewidth=1)
                if "fidelity_min" in objectives:
                    fid_ax.axhline(objectives["fidelity_min"], color=line.get_color(), linestyle=":", linewidth=1)
                for v in slo["violations"]:
                    rate_ax.axvspan(v["start_s"], v["end_s"] if v["end_s"] is not None else end, color="tab:red",
                                    alpha=0.12)
        _shade_faults(rate_ax, faults, end)
        _shade_faults(fid_ax, faults, end)
        rate_ax.set_ylabel("pairs/s")
        rate_ax.set_title("Requests: rate (dotted: SLO floor; red: SLO violated) and fidelity", fontsize=9)
        rate_ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fid_ax.set_ylabel("mean fidelity")
    if qkd:
        ax = axes.pop(0)
        for q in qkd:
            xs = [c["start_s"] for c in q["conditions"]] + [q["conditions"][-1]["end_s"]]
            ys = [c["secret_key_rate_bps"] for c in q["conditions"]]
            ax.step(xs, ys + ys[-1:], where="post", label=q["name"])
        _shade_faults(ax, faults, end)
        ax.set_yscale("symlog", linthresh=1e3)
        ax.set_ylabel("secret key bit/s")
        ax.set_title("QKD links", fontsize=9)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if fl and fl.get("per_round"):
        ax = axes.pop(0)
        rounds = fl["per_round"]
        for pair in rounds[0]["pools_start"]:
            ax.step([r["simulated_s"] for r in rounds], [r["pools_start"][pair] for r in rounds], where="post",
                    label=pair)
        for f in fl.get("fallbacks", []):
            ax.axvline(next(r["simulated_s"] for r in rounds if r["round"] == f["round"]), color="tab:red",
                       linewidth=0.8)
        _shade_faults(ax, faults, end)
        ax.set_ylabel("keys in the pool")
        ax.set_title("KMS pools at each round's start (red lines: fallbacks)", fontsize=9)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.axes[-1].set_xlabel("simulated time (s)")
    fig.tight_layout()
    return fig


def control_sections(report: dict) -> list[tuple[str, str]]:
    """Tenants, faults with their detection and reroutes, and the event log."""
    sections: list[tuple[str, str]] = []
    if report.get("tenants"):
        sections.append(("Tenants", table([{
            "tenant": t["name"], "weight": t["weight"], "priority": t["priority"], "requests": t["requests"],
            "refused": t["refused"], "pairs": t["usage"].get("pairs_delivered", 0),
            "served s": t["usage"].get("service_s", 0.0),
            "quota": ", ".join(f"{k} {v:g}" for k, v in t["quota"].items() if v is not None and k != "window_s")
            or "none"} for t in report["tenants"]])))
    if report.get("faults"):
        rows = [{"fault": f"{f['kind']} {f['target']}", "at s": f["start_s"], "repaired s": f["end_s"],
                 "detected s": f["detected_s"], "time to detect s": f["time_to_detect_s"],
                 "pairs lost": f["pairs_lost"],
                 "requests moved": ", ".join(f"{m['request']} after {m['time_to_reroute_s']:.3g} s"
                                             for m in f["requests_moved"][:5]) or "-"} for f in report["faults"]]
        control = report.get("control") or {}
        note = (f"<p class='note'>The controller at {html.escape(str(control.get('controller')))} learns of a cut "
                f"when the link's ends miss {control.get('heartbeat_misses')} heartbeats "
                f"({control.get('heartbeat_s'):g} s apart) and their report reaches it over the classical network "
                "that is left.</p>")
        sections.append(("Faults", table(rows[:100]) + note))
    refused = [r for r in report["requests"] if r.get("refused")]
    if refused:
        sections.append(("Refused requests", table([{"request": r["name"], "tenant": r["tenant"],
                                                     "reason": r["refused"]} for r in refused[:200]])))
    events = report.get("events") or []
    if report.get("faults") or refused or len(events) > 3 * len(report["requests"]):
        shown = [{"t s": e["t_s"], "event": e["event"], "request or target": e.get("request") or e.get("target"),
                  "detail": "; ".join(f"{k} {v}" for k, v in e.items()
                                      if k not in ("t_s", "event", "request", "target"))} for e in events[:300]]
        sections.append(("Event log", table(shown) + f"<p class='note'>{min(len(events), 300)} of "
                         f"{report.get('events_total', len(events))} events.</p>"))
    return sections


def run_report_html(report: dict) -> str:
    """The HTML page of a ``qfabric run`` report: SLI tables and the plots an operator reads."""
    meta = report.get("scenario", {})
    if "requests" not in report:  # a federation-only report (qfabric fl)
        return page(f"qfabric fl: {meta.get('name', '')}", federated_sections(report["federated"]))
    sections: list[tuple[str, str]] = [("Network", figure_to_img(network_figure(report)))]
    rows = report["requests"]
    if rows:
        summary = []
        for r in rows:
            f, w = r["fidelity"], r["waiting_time_s"]
            lo, hi = r["rate_ci95_hz"]
            summary.append({
                "request": r["name"], "tenant": r["tenant"],
                "path": " + ".join(dict.fromkeys(" > ".join(p) for p in r["paths"])),  # each route once
                "pairs": r["pairs_delivered"], "pairs/s": r["rate_hz"], "95% CI": f"{lo:.4g} - {hi:.4g}",
                "fidelity mean": f.get("mean"), "fidelity p5": f.get("p5"),
                "first pair (ms)": r["time_to_first_pair_s"] * 1e3 if r["time_to_first_pair_s"] is not None else None,
                "wait p50 (ms)": w["p50"] * 1e3 if w.get("count") else None,
                "wait p99 (ms)": w["p99"] * 1e3 if w.get("count") else None,
                "of target": r["share_of_target"], "cut-off discards": r["cutoff_discards"],
            })
        fairness = report.get("fairness") or {}
        note = "".join(f"<p class='note'>warning: {html.escape(w)}</p>" for w in report.get("warnings", []))
        if fairness.get("jain_index_rate") is not None:
            note += f"<p class='note'>Jain's fairness index over the requests' rates: " \
                    f"{fairness['jain_index_rate']:.3f}.</p>"
        sections.append(("Requests", table(summary) + figure_to_img(request_figure(rows)) + note))
    timeline_fig = timeline_figure(report)
    if timeline_fig is not None:
        sections.append(("Timeline", figure_to_img(timeline_fig)))
    sections += control_sections(report)
    links = sorted(report["links"], key=lambda r: -r["attempts"])
    used = [row for row in links if not row["idle"]][:40]
    fig, ax = plt.subplots(figsize=(10, 3.4))
    names = [row["name"] for row in used]
    ax.bar([i - 0.2 for i in range(len(used))], [row["success_rate"] or 0 for row in used], 0.4, label="simulated")
    ax.bar([i + 0.2 for i in range(len(used))], [row["success_probability"] for row in used], 0.4, label="model")
    ax.set_xticks(range(len(used)), names, rotation=60 if len(used) > 8 else 0, fontsize=7)
    ax.set_ylabel("success probability per attempt")
    ax.legend()
    columns = ["name", "length_km", "requests", "scheme", "attempts", "success_rate", "success_probability",
               "pairs_per_s", "utilisation", "heralded_fidelity", "hashing_ebits_per_s", "plob_bound_ebits_per_s",
               "fraction_of_plob"]
    link_rows = [row | {"requests": ", ".join(row["requests"])} for row in links]
    sections.append(("Links", table(link_rows, columns) + figure_to_img(fig)))
    nodes = sorted(report.get("nodes", []), key=lambda n: -(n["memory_utilisation"] or 0))
    sections.append(("Nodes", table([{"node": n["name"], "memory qubits": n["memory_qubits"],
                                      "memory utilisation": n["memory_utilisation"]} for n in nodes[:60]])))
    if report.get("qkd"):
        qkd = report["qkd"]
        fig, ax = plt.subplots(figsize=(8, 3.4))
        names = [row["name"] for row in qkd]
        ax.bar(names, [row.get("secret_key_rate_bps") or 0 for row in qkd], color="tab:green", label="secret key")
        plob = [(row.get("plob_bits_per_pulse") or 0) * (row.get("source_rate_hz") or 0) for row in qkd]
        ax.plot(names, plob, "k_", markersize=30, label="PLOB bound")
        ax.set_yscale("log")
        ax.set_ylabel("bit/s")
        ax.legend()
        cols = ["name", "protocol", "between", "secret_key_rate_bps", "qber", "reconciliation_efficiency",
                "leaked_bits", "aborted_blocks", "blocks", "simulated_seconds"]
        rows = [{c: (" - ".join(r[c]) if c == "between" and r.get(c) else r.get(c)) for c in cols} for r in qkd]
        sections.append(("QKD services", table(rows, cols) + figure_to_img(fig)
                         + "<p class='note'>Key rates are measured on the simulated seconds shown and reported "
                           "per second.</p>"))
    if report.get("satellite"):
        sections.append(satellite_section(report["satellite"], meta.get("duration_s")))
    if report.get("federated"):
        sections += federated_sections(report["federated"])
    perf = report.get("performance", {})
    sections.append(("Run", table([{"seed": meta.get("seed"), "simulated s": meta.get("duration_s"),
                                    "events": perf.get("events"), "wall s (network)": perf.get("wall_time_s"),
                                    "wall s (QKD)": perf.get("qkd_wall_time_s")}])))
    return page(f"qfabric run: {meta.get('name', '')}", sections)


def satellite_figure(rows: list[dict], duration_s: float | None) -> Figure:
    """Each satellite service's link windows over the run, one line per service, labelled with what each pass
    gave (secret bits or pairs)."""
    fig, ax = plt.subplots(figsize=(10, 0.6 + 0.55 * len(rows)))
    end_s = duration_s or max((p["end_s"] for r in rows for p in r["passes"]), default=1.0)
    hours, unit = (3600.0, "h") if end_s > 7200 else (60.0, "min")
    for i, row in enumerate(rows):
        spans = [(p["start_s"] / hours, (p["end_s"] - p["start_s"]) / hours) for p in row["passes"]]
        colour = "tab:green" if row["kind"] == "decoy-bb84" else "tab:purple"
        ax.broken_barh(spans, (i - 0.3, 0.6), color=colour)
        for p in row["passes"]:
            got = f"{p['key_bits']:.3g} bits" if row["kind"] == "decoy-bb84" else f"{p['pairs']:.3g} pairs"
            ax.annotate(f"{got}, {p['max_elevation_deg']:.0f}°", (p["end_s"] / hours, i + 0.32),
                        fontsize=7, ha="left", va="bottom")
    ax.set_yticks(range(len(rows)), [f"{r['satellite']} → {', '.join(r['stations'])}" for r in rows], fontsize=8)
    ax.set_ylim(-0.6, len(rows) - 0.2)
    ax.set_xlim(0, end_s / hours)
    ax.set_xlabel(f"time into the run ({unit})")
    ax.set_title("link windows above the minimum elevation: decoy BB84 (green), entangled pairs (purple)",
                 fontsize=9)
    fig.tight_layout()
    return fig


def satellite_section(rows: list[dict], duration_s: float | None) -> tuple[str, str]:
    """The satellites' passes: one table row per pass and the windows over the run."""
    passes = [{"satellite": r["satellite"], "service": r["kind"], "stations": ", ".join(r["stations"]),
               "window (s)": f"{p['start_s']:.0f} - {p['end_s']:.0f}", "max elevation (deg)": p["max_elevation_deg"],
               "loss (dB)": f"{p['loss_db_min']:.1f} - {p['loss_db_max']:.1f}",
               "secret bits": p.get("key_bits"), "pairs": p.get("pairs"),
               "trusted relay": "yes" if r.get("trusted_relay") else None}
              for r in rows for p in r["passes"]]
    quiet = [r for r in rows if not r["passes"]]
    note = "".join(f"<p class='note'>{html.escape(r['satellite'])} ({r['kind']}, {', '.join(r['stations'])}): no "
                   "pass above the minimum elevation in the run.</p>" for r in quiet)
    note += ("<p class='note'>Loss from the source to detection (pairs: both photons); secret bits: finite-key "
             "decoy BB84 on each pass's counts. A trusted relay's pass keys feed the KMS.</p>")
    return "Satellite passes", (table(passes) if passes else "") + figure_to_img(satellite_figure(rows, duration_s)) \
        + note


def federated_sections(fl: dict) -> list[tuple[str, str]]:
    """The federation's part of a report: accuracy against the baselines, key supply against consumption,
    privacy spent, fallbacks, and where a round's wall time went."""
    sections: list[tuple[str, str]] = []
    curves = fl["curves"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    dp_on = bool(fl.get("privacy"))
    for name, style, label in (("secure", "-o", "protected + DP" if dp_on else "protected"),
                               ("secure_no_dp", "-s", "protected, no DP"), ("plain", "--", "plain FedAvg"),
                               ("centralised", ":", "centralised")):
        curve = curves.get(name)
        if curve:
            ax1.plot([c["round"] for c in curve], [c["accuracy"] for c in curve], style, label=label, markersize=3)
            ax2.plot([c["round"] for c in curve], [c["loss"] for c in curve], style, label=label, markersize=3)
    ax1.set_xlabel("round")
    ax1.set_ylabel("test accuracy")
    ax2.set_xlabel("round")
    ax2.set_ylabel("test loss (cross-entropy)")
    ax1.legend()
    ax1.grid(alpha=0.3)
    ax2.grid(alpha=0.3)
    final = fl["final"]
    summary = [{"organisations": ", ".join(f"{o['sae']} ({o['examples']})" for o in fl["organisations"]),
                "model": f"{fl['model'].get('kind', 'MLP')} {'-'.join(map(str, fl['model']['layers']))} "
                         f"({fl['model']['parameters']:,} params)",
                "data": fl["training"].get("dataset", "breast-cancer"),
                "rounds": f"{fl['rounds_completed']} of {fl['rounds_requested']}",
                "policy": f"{fl['policy']['mode']} (fallback {fl['policy']['fallback']})",
                "epsilon": fl["epsilon"] if fl.get("epsilon") is not None else "no DP"}]
    runs = final.get("runs") or {}
    window = final.get("window_rounds", 1)
    accuracy = [{"run": label, f"mean accuracy, last {window} rounds": r["mean"], "spread (std)": r["std"],
                 "min": r["min"], "max": r["max"], "last round": r["last"]}
                for key, label in (("plain", "plain FedAvg"), ("secure_no_dp", "protected, no DP"),
                                   ("secure_dp", "protected + DP"), ("centralised", "centralised"))
                if (r := runs.get(key))]
    warning = (fl.get("privacy") or {}).get("warning")
    sections.append(("Federated training", table(summary) + (table(accuracy) if accuracy else "") + figure_to_img(fig)
                     + (f"<p class='note'><b>Weak privacy.</b> {html.escape(warning)}</p>" if warning else "")
                     + "<p class='note'>protected: qfabric's protection (sealed, masked updates), with and without "
                       "differential privacy; plain: Flower's FedAvg without protection; centralised: the same "
                       f"model on the pooled data. Accuracy on {fl['test_examples']} held-out examples; the final "
                       f"accuracy is the mean over the last {window} rounds, with its spread.</p>"
                     + "<p class='note'>Encryption and masking cost no accuracy: without noise the protected "
                       "federation predicts exactly as FedAvg with the same seed (tests/apps/test_federated_flower.py)"
                       "; the gap between the protected runs with and without DP is the differential-privacy "
                       + (f"noise (epsilon {fl['epsilon']:.3g})." if fl.get("epsilon") is not None
                          else "noise (none in this run).") + "</p>"))

    rounds = fl["per_round"]
    pairs = list(rounds[0]["pools_start"]) if rounds else []
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    for pair in pairs:
        ax1.step([r["round"] for r in rounds], [r["pools_start"][pair] for r in rounds], where="mid", label=pair)
    ax1.set_xlabel("round")
    ax1.set_ylabel("keys in the pool at round start")
    ax1.legend(fontsize=7)
    supply = {p["pair"]: p["supply_keys_per_round"] for p in fl["key_supply"]["pairs"]}
    used = {pair: sum(r["pools_start"][pair] - r.get("pools_after", r["pools_start"])[pair] for r in rounds)
            / max(len(rounds), 1) for pair in pairs}
    x = range(len(pairs))
    ax2.bar([i - 0.2 for i in x], [supply.get(p, 0) for p in pairs], 0.4, label="supply capacity")
    ax2.bar([i + 0.2 for i in x], [used[p] for p in pairs], 0.4, label="consumed")
    ax2.set_yscale("log")
    ax2.set_xticks(list(x), [p.replace("|", "\n") for p in pairs], fontsize=7)
    ax2.set_ylabel("keys per round")
    ax2.legend(fontsize=8)
    sources = fl["key_supply"].get("sources") or {}
    rows = [{"pair": p["pair"], "path": " > ".join(p["path"]), "hops": p["hops"],
             "supply keys/round": p["supply_keys_per_round"], "used keys/round": used.get(p["pair"]),
             "keys end to end (BBM92)": sources.get(p["pair"], {}).get("bbm92_end_to_end"),
             "keys relayed (QKD links)": sources.get(p["pair"], {}).get("trusted_relay")}
            for p in fl["key_supply"]["pairs"]]
    sections.append(("Key supply vs consumption", table(rows) + figure_to_img(fig)
                     + f"<p class='note'>One round every {fl['round_period_s']:g} s of simulated network time; "
                       "supply capacity is each pair's share of its slowest link's secret-key rate; pools are "
                       "capped by the KMS's max_key_count.</p>"))

    fallbacks = fl["fallbacks"]
    trouble = [{"round": r["round"], "dropped": "; ".join(f"{k}: {v}" for k, v in r["dropped"].items()) or None,
                "failed": r["failed"], "waited s": r["waited_s"] or None} for r in rounds
               if r["dropped"] or r["failed"] or r["waited_s"]]
    if fallbacks or trouble:
        listed = table([{"round": f["round"], "sae": f.get("sae"), "peer": f.get("peer"), "mode": f.get("mode"),
                         "reason": f.get("reason")} for f in fallbacks]) if fallbacks else ""
        sections.append(("Fallbacks and incidents", listed + (table(trouble) if trouble else "")))
    else:
        sections.append(("Fallbacks and incidents", "<p class='note'>No fallback and no incident.</p>"))

    if fl.get("privacy"):
        p = fl["privacy"]
        fig, ax = plt.subplots(figsize=(6, 3.2))
        ax.plot([e["round"] for e in p["epsilon_by_round"]], [e["epsilon"] for e in p["epsilon_by_round"]])
        ax.set_xlabel("round")
        ax.set_ylabel(f"epsilon (delta = {p['delta']:g})")
        ax.grid(alpha=0.3)
        budget = p.get("epsilon_budget")
        sections.append(("Differential privacy", figure_to_img(fig) + f"<p class='note'>{html.escape(p['model'])}; "
                         f"noise multiplier {p['noise_multiplier']:g}, clip norm {p['clip_norm']:g}"
                         + (f", epsilon budget {budget:g}" if budget is not None else "") + ". See docs/federated.md "
                         "for record-level (DP-SGD) vs organisation-level DP.</p>"
                         + (f"<p class='note'><b>Weak privacy.</b> {html.escape(p['warning'])}</p>"
                            if p.get("warning") else "")))

    wall = fl["wall_time"]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    names = ["train_seconds", "kme_seconds", "crypto_seconds"]
    ax.bar([r["round"] for r in rounds], [r["train_seconds"] for r in rounds], label="training")
    bottom = [r["train_seconds"] for r in rounds]
    for key, label in (("kme_seconds", "key fetching (ETSI 014)"), ("crypto_seconds", "cryptography")):
        ax.bar([r["round"] for r in rounds], [r[key] for r in rounds], bottom=bottom, label=label)
        bottom = [b + r[key] for b, r in zip(bottom, rounds, strict=True)]
    ax.set_xlabel("round")
    ax.set_ylabel("wall s (all organisations)")
    ax.legend(fontsize=8)
    sections.append(("Where the time went", table([{k: wall.get(k) for k in
                                                    ["protected_rounds_s", "plain_federation_s", *names,
                                                     "protection_share_of_rounds", "supply_simulation_s"]}])
                     + figure_to_img(fig)))
    return sections
