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
