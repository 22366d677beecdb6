"""The HTML page of a sweep: each main SLI against each swept parameter, the mean over replicates with the
replicates' spread (min to max) as a band, one line per value of a second swept parameter.

>>> import pandas as pd
>>> frame = pd.DataFrame({"status": ["ok"] * 4, "x": [1, 1, 2, 2], "chain.rate_hz": [1.0, 1.2, 2.0, 2.2]})
>>> "<img" in sweep_html(frame, ["x"], title="t")
True
"""

from __future__ import annotations

import base64
import html
import io

MAIN_SLIS = ("rate_hz", "fidelity_mean", "waiting_time_mean_s", "waiting_time_p99_s", "secret_key_rate_bps", "qber",
             "slo_availability")
MAX_LINES = 6


def main_slis(frame) -> list[str]:
    """The numeric SLI columns worth a plot (rate, fidelity, waiting time, key rate, QBER, SLO availability)."""
    import pandas as pd

    return [c for c in frame.columns if c.rsplit(".", 1)[-1] in MAIN_SLIS
            and pd.api.types.is_numeric_dtype(frame[c]) and frame[c].notna().any()]


def _plot(frame, x: str, y: str, group: str | None) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    groups = [(None, frame)] if group is None else list(frame.groupby(group, sort=True))
    for value, part in groups:
        stats = part.groupby(x, sort=True)[y].agg(["mean", "min", "max"])
        label = None if group is None else f"{group} = {value}"
        xs = stats.index.to_numpy()
        ax.plot(xs, stats["mean"], marker="o", label=label)
        ax.fill_between(xs, stats["min"], stats["max"], alpha=0.2)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.grid(alpha=0.3)
    if group is not None:
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def sweep_html(frame, swept: list[str], title: str = "sweep", note: str = "") -> str:
    """A self-contained HTML page (plots as inline PNG) of the ``ok`` rows of a sweep table."""
    import pandas as pd

    ok = frame[frame["status"] == "ok"] if "status" in frame.columns else frame
    numeric = [p for p in swept if p in ok.columns and pd.api.types.is_numeric_dtype(ok[p])]
    parts = [f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(note)}</p>" if note else "",
             f"<p>{len(frame)} rows ({len(ok)} ok); lines: the mean over replicates, bands: their min to max.</p>"]
    failed = frame[frame["status"] != "ok"] if "status" in frame.columns else frame.iloc[0:0]
    if len(failed):
        parts.append("<h2>Failed points</h2><ul>" + "".join(
            f"<li>point {int(r['point'])} replicate {int(r['replicate'])}: {html.escape(str(r['error']))}</li>"
            for _, r in failed.head(50).iterrows()) + "</ul>")
    if not numeric:
        parts.append("<p>No numeric swept parameter to plot against.</p>")
    for x in numeric:
        others = [p for p in swept if p != x and p in ok.columns and 1 < ok[p].astype(str).nunique() <= MAX_LINES]
        group = others[0] if others else None
        parts.append(f"<h2>Against {html.escape(x)}</h2>")
        for y in main_slis(ok):
            parts.append(f'<img alt="{html.escape(y)} against {html.escape(x)}" '
                         f'src="data:image/png;base64,{_plot(ok, x, y, group)}">')
    style = "body{font-family:sans-serif;max-width:1100px;margin:2em auto}img{margin:0.5em}"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n")
