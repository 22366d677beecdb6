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
    if "end_to_end" not in report:  # a federation-only report (qfabric fl)
        return page(f"qfabric fl: {meta.get('name', '')}", federated_sections(report["federated"]))
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
    if report.get("federated"):
        sections += federated_sections(report["federated"])
    perf = report.get("performance", {})
    sections.append(("Run", table([{"seed": meta.get("seed"), "simulated s": meta.get("duration_s"),
                                    "events": perf.get("events"), "wall s (chain)": perf.get("wall_time_s"),
                                    "wall s (QKD)": perf.get("qkd_wall_time_s")}])))
    return page(f"qfabric run: {meta.get('name', '')}", sections)


def federated_sections(fl: dict) -> list[tuple[str, str]]:
    """The federation's part of a report: accuracy against the baselines, key supply against consumption,
    privacy spent, fallbacks, and where a round's wall time went."""
    sections: list[tuple[str, str]] = []
    curves = fl["curves"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    for name, style in (("secure", "-o"), ("plain", "--"), ("centralised", ":")):
        curve = curves.get(name)
        if curve:
            ax1.plot([c["round"] for c in curve], [c["accuracy"] for c in curve], style, label=name, markersize=3)
            ax2.plot([c["round"] for c in curve], [c["loss"] for c in curve], style, label=name, markersize=3)
    ax1.set_xlabel("round")
    ax1.set_ylabel("test accuracy")
    ax2.set_xlabel("round")
    ax2.set_ylabel("test loss (cross-entropy)")
    ax1.legend()
    ax1.grid(alpha=0.3)
    ax2.grid(alpha=0.3)
    final = fl["final"]
    summary = [{"organisations": ", ".join(f"{o['sae']} ({o['examples']})" for o in fl["organisations"]),
                "model": f"MLP {'-'.join(map(str, fl['model']['layers']))} ({fl['model']['parameters']:,} params)",
                "rounds": f"{fl['rounds_completed']} of {fl['rounds_requested']}",
                "policy": f"{fl['policy']['mode']} (fallback {fl['policy']['fallback']})",
                "secure acc.": final["secure_accuracy"], "plain acc.": final["plain_accuracy"],
                "centralised acc.": final["centralised_accuracy"],
                "epsilon": fl["epsilon"] if fl.get("epsilon") is not None else "no DP"}]
    sections.append(("Federated training", table(summary) + figure_to_img(fig)
                     + "<p class='note'>secure: qfabric's protection (sealed, masked updates); plain: Flower's "
                       "FedAvg without protection; centralised: the same model on the pooled data. Accuracy on "
                       f"{fl['test_examples']} held-out patients.</p>"))

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
    rows = [{"pair": p["pair"], "path": " > ".join(p["path"]), "hops": p["hops"],
             "supply keys/round": p["supply_keys_per_round"], "used keys/round": used.get(p["pair"])}
            for p in fl["key_supply"]["pairs"]]
    sections.append(("Key supply vs consumption", table(rows) + figure_to_img(fig)
                     + f"<p class='note'>One round every {fl['round_period_s']:g} s of simulated network time; "
                       "supply capacity is each pair's share of its slowest link's secret-key rate; pools are "
                       "capped by the KMS's max_key_count.</p>"))

    fallbacks = fl["fallbacks"]
    trouble = [{"round": r["round"], "dropped": "; ".join(f"{k}: {v}" for k, v in r["dropped"].items()) or None,
                "failed": r["failed"], "waited s": r["waited_s"] or None} for r in rounds
               if r["dropped"] or r["failed"] or r["waited_s"]]
    sections.append(("Fallbacks and incidents", table(
        [{"round": f["round"], "sae": f.get("sae"), "peer": f.get("peer"), "mode": f.get("mode"),
          "reason": f.get("reason")} for f in fallbacks]) + table(trouble)))

    if fl.get("privacy"):
        p = fl["privacy"]
        fig, ax = plt.subplots(figsize=(6, 3.2))
        ax.plot([e["round"] for e in p["epsilon_by_round"]], [e["epsilon"] for e in p["epsilon_by_round"]])
        ax.set_xlabel("round")
        ax.set_ylabel(f"epsilon (delta = {p['delta']:g})")
        ax.grid(alpha=0.3)
        sections.append(("Differential privacy", figure_to_img(fig) + f"<p class='note'>{html.escape(p['model'])}; "
                         f"noise multiplier {p['noise_multiplier']:g}, clip norm {p['clip_norm']:g}.</p>"))

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
