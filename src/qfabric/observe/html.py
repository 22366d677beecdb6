"""HTML reports: sections of tables and matplotlib figures embedded as PNG (one self-contained file)."""

from __future__ import annotations

import base64
import html
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%}
.note{color:#666;font-size:90%}"""


def figure_to_img(fig: Figure) -> str:
    """An ``<img>`` tag holding the figure as a base64 PNG; closes the figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="figure" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def table(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return "<p class='note'>none</p>"
    columns = columns or list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = ""
    for row in rows:
        cells = []
        for c in columns:
            v = row.get(c)
            text = f"{v:.4g}" if isinstance(v, float) else ("-" if v is None else str(v))
            cells.append(f"<td>{html.escape(text)}</td>")
        body += "<tr>" + "".join(cells) + "</tr>"
    return f"<table><tr>{head}</tr>{body}</table>"


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


def run_report_html(report: dict) -> str:
    """The HTML page of a ``qfabric run`` report: SLI tables and the plots an operator reads."""
    meta = report.get("scenario", {})
    sections: list[tuple[str, str]] = []
    for e2e in report["end_to_end"]:
        f, w = e2e["fidelity"], e2e["waiting_time_s"]
        lo, hi = e2e["rate_ci95_hz"]
        summary = [{"path": " > ".join(e2e["path"]), "scheme": e2e["scheme"], "pairs": e2e["pairs_delivered"],
                    "rate (pairs/s)": e2e["rate_hz"], "95% CI": f"{lo:.4g} - {hi:.4g}",
                    "fidelity mean": f.get("mean"), "QBER Z": e2e["qber_z_mean"], "QBER X": e2e["qber_x_mean"],
                    "wait mean (ms)": w["mean"] * 1e3 if w.get("count") else None}]
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
        hist = f.get("histogram") or {}
        if hist.get("counts"):
            edges = hist["edges"]
            ax1.bar(edges[:-1], hist["counts"], width=[b - a for a, b in zip(edges, edges[1:], strict=False)],
                    align="edge", color="tab:blue")
        ax1.set_xlabel("delivered fidelity")
        ax1.set_ylabel("pairs")
        ax1.set_title("Fidelity of delivered pairs")
        if w.get("count"):
            pct = ["p5", "p50", "p90", "p95", "p99"]
            ax2.bar(pct, [w[k] * 1e3 for k in pct], color="tab:orange")
        ax2.set_ylabel("waiting time (ms)")
        ax2.set_title("Time between deliveries")
        sections.append((f"End to end: {' - '.join(e2e['between'])}", table(summary) + figure_to_img(fig)))
    links = report["links"]
    fig, ax = plt.subplots(figsize=(8, 3.4))
    names = [row["name"] for row in links]
    ax.bar([i - 0.2 for i in range(len(links))], [row["success_rate"] or 0 for row in links], 0.4, label="simulated")
    ax.bar([i + 0.2 for i in range(len(links))], [row["success_probability"] for row in links], 0.4, label="model")
    ax.set_xticks(range(len(links)), names)
    ax.set_ylabel("success probability per attempt")
    ax.legend()
    columns = ["name", "length_km", "scheme", "attempts", "success_rate", "success_probability", "pairs_per_s",
               "heralded_fidelity", "hashing_ebits_per_s", "plob_bound_ebits_per_s", "fraction_of_plob"]
    sections.append(("Links", table(links, columns) + figure_to_img(fig)))
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
    perf = report.get("performance", {})
    sections.append(("Run", table([{"seed": meta.get("seed"), "simulated s": meta.get("duration_s"),
                                    "events": perf.get("events"), "wall s (chain)": perf.get("wall_time_s"),
                                    "wall s (QKD)": perf.get("qkd_wall_time_s")}])))
    return page(f"qfabric run: {meta.get('name', '')}", sections)
