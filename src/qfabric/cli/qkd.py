"""``qfabric qkd``: simulate and post-process a QKD link; plot key rate against distance."""

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from qfabric.cli.common import fail, out, progress_bar
from qfabric.errors import ParameterError, QfabricError

app = typer.Typer(no_args_is_help=True, help="Simulate QKD links with full post-processing.")




def _count(name: str, text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        fail(ParameterError(name, text, "a number such as 1e8"))
    if not value >= 1 or value != int(value):
        fail(ParameterError(name, text, "a whole number >= 1"))
    return int(value)


def _eve(text: str | None):
    from qfabric.qkd.bb84 import InterceptResend, PhotonNumberSplitting

    if text is None:
        return None
    if text == "pns":
        return PhotonNumberSplitting()
    if text.startswith("intercept-resend"):
        _, _, fraction = text.partition(":")
        try:
            return InterceptResend(float(fraction) if fraction else 1.0)
        except ValueError:
            fail(ParameterError("--eve", text, "intercept-resend[:fraction] or pns"))
    fail(ParameterError("--eve", text, "intercept-resend[:fraction] (fraction of pulses, default 1) or pns"))
    return None


def _with_progress(description: str, quiet: bool, work):
    """``work(progress)`` with a progress callback on a terminal (``None`` when quiet or piped)."""
    if quiet or not sys.stderr.isatty():
        return work(None)
    with progress_bar(quiet) as bar:
        task = bar.add_task(description, total=1.0)
        return work(lambda fraction: bar.update(task, completed=fraction))


Distance = Annotated[float, typer.Option("--distance-km", help="Fibre length between Alice and Bob.")]
Attenuation = Annotated[float, typer.Option("--attenuation-db-per-km")]
DetEff = Annotated[float, typer.Option("--detector-efficiency", help="Bob's detection efficiency (0-1).")]
Y0 = Annotated[float, typer.Option("--dark-count-yield", help="Clicks per pulse with no light (both detectors).")]
EDet = Annotated[float, typer.Option("--misalignment", help="Optical misalignment error e_det (0-0.5).")]
AfterPulse = Annotated[float, typer.Option(
    "--afterpulse-probability", help="Chance a detection is followed by an after-pulse click (Lim et al. 2014: 0.04).")]
FEc = Annotated[float, typer.Option("--f-ec", help="Reconciliation efficiency assumed by the analytic curves.")]


@app.command("link")
def link(
    distance_km: Distance = 50.0, protocol: Annotated[str, typer.Option("--protocol")] = "decoy-bb84",
    pulses: Annotated[str, typer.Option("--pulses", help="Pulses sent (decoy-bb84) or pairs emitted (bbm92).")] = "1e8",
    attenuation_db_per_km: Attenuation = 0.2, detector_efficiency: DetEff = 0.1, dark_count_yield: Y0 = 1e-6,
    misalignment: EDet = 0.01, afterpulse_probability: AfterPulse = 0.0,
    pair_fidelity: Annotated[float, typer.Option("--pair-fidelity", help="bbm92: Werner fidelity per pair.")] = 0.98,
    eve: Annotated[str | None, typer.Option("--eve", help="intercept-resend[:fraction] or pns")] = None,
    variant: Annotated[str, typer.Option("--cascade", help="original, option7 or option8")] = "option8",
    source_rate_hz: Annotated[float, typer.Option("--source-rate-hz")] = 1e9,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the summary as JSON here.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Simulate one link, post-process every block (sift, estimate, Cascade, verify, amplify), report."""
    import numpy as np

    from qfabric.qkd.link import run_bbm92, run_decoy_bb84
    from qfabric.qkd.theory import Channel
    from qfabric.states import BellDiagonal

    n = _count("--pulses", pulses)
    try:
        ch = Channel(distance_km, attenuation_db_per_km, detector_efficiency, dark_count_yield, misalignment,
                     afterpulse_probability=afterpulse_probability)
        baseline = None
        if protocol == "decoy-bb84":
            attacker = _eve(eve)
            run = _with_progress("distilling blocks", quiet, lambda progress: run_decoy_bb84(
                ch, n, eavesdropper=attacker, seed=seed, variant=variant, source_rate_hz=source_rate_hz,
                progress=progress))
            if attacker is not None:  # the same link without her: what she cost
                baseline = _with_progress("the same link without the eavesdropper", quiet, lambda progress:
                                          run_decoy_bb84(ch, n, seed=seed, variant=variant,
                                                         source_rate_hz=source_rate_hz, progress=progress))
        elif protocol == "bbm92":
            if eve is not None:
                raise ParameterError("--eve", eve, "no eavesdropper model for bbm92 here (use decoy-bb84)")
            if afterpulse_probability:
                raise ParameterError("--afterpulse-probability", afterpulse_probability,
                                     "0 for bbm92 (after-pulsing is modelled for decoy-bb84 only)")
            # a pair source at the midpoint: both photons must cross half the fibre and be detected
            arm = ch.detector_efficiency * 10 ** (-attenuation_db_per_km * distance_km / 20)
            rng = np.random.default_rng(seed)
            pairs = int(rng.binomial(n, arm * arm))
            if pairs == 0:
                raise ParameterError("--pulses", n, "enough emitted pairs for at least one coincidence")
            weights = np.tile(BellDiagonal.from_fidelity(pair_fidelity).weights, (pairs, 1))
            run = run_bbm92(weights, e_det=misalignment, seed=seed, variant=variant,
                            pair_rate_hz=source_rate_hz * arm * arm)
            run.pulses, run.source_rate_hz = n, source_rate_hz
        else:
            raise ParameterError("--protocol", protocol, "decoy-bb84 or bbm92")
    except QfabricError as error:
        fail(error)
    summary = run.summary()
    from rich.table import Table

    t = Table(title=f"{protocol} over {distance_km:g} km" + (" with an eavesdropper" if baseline else ""),
              show_header=False, title_justify="left")
    for key, label in (("pulses", "pulses"), ("blocks", "blocks"), ("aborted_blocks", "aborted blocks"),
                       ("sifted_bits", "sifted (bits)"), ("qber", "QBER"), ("leaked_bits", "leaked (bits)"),
                       ("reconciliation_efficiency", "reconciliation efficiency f"), ("key_bits", "key (bits)"),
                       ("secret_bits_per_pulse", "secret key (bits/pulse)"),
                       ("secret_key_rate_bps", "secret key rate (bit/s)"),
                       ("analytic_bits_per_pulse", "analytic rate (bits/pulse)"),
                       ("plob_bits_per_pulse", "PLOB bound (bits/pulse)"), ("fraction_of_plob", "fraction of PLOB")):
        v = summary.get(key)
        t.add_row(label, "-" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v)))
    if summary["abort_reasons"]:
        t.add_row("abort reasons", "; ".join(summary["abort_reasons"]))
    out.print(t)
    if baseline is not None:
        base = baseline.summary()
        summary["without_eavesdropper"] = {k: base[k] for k in ("qber", "key_bits", "secret_key_rate_bps")}
        out.print(f"An eavesdropper was simulated ({eve}). Against the same link without her (same seed): QBER "
                  f"{base['qber']:.2%} -> {summary['qber']:.2%}, key {base['key_bits']} -> {summary['key_bits']} bits "
                  f"({base['secret_key_rate_bps']:.4g} -> {summary['secret_key_rate_bps']:.4g} bit/s)"
                  + (": the post-processing refused the key." if summary["key_bits"] == 0 < base["key_bits"] else "."))
    if json_out:
        json_out.write_text(json.dumps(summary, indent=2, default=float) + "\n")
        out.print(f"summary written to {json_out}")


@app.command("curve")
def curve(
    protocol: Annotated[str, typer.Option("--protocol")] = "decoy-bb84",
    max_km: Annotated[float, typer.Option("--max-km")] = 200.0,
    step_km: Annotated[float, typer.Option("--step-km")] = 5.0,
    simulate: Annotated[str, typer.Option("--simulate-km", help="Distances to simulate, e.g. 25,50,100")] = "25,50,75",
    pulses: Annotated[str, typer.Option("--pulses", help="Pulses per simulated point (and finite-key size).")] = "1e9",
    attenuation_db_per_km: Attenuation = 0.2, detector_efficiency: DetEff = 0.1, dark_count_yield: Y0 = 1e-6,
    misalignment: EDet = 0.01, afterpulse_probability: AfterPulse = 0.0, f_ec: FEc = 1.16,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    html_out: Annotated[Path | None, typer.Option("--html", help="Write the plot as an HTML report here.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Key rate against distance: simulated points against analytic curves and the PLOB bound."""
    from qfabric.observe import figure_to_img, key_rate_figure, page, table
    from qfabric.qkd.curve import key_rate_curve
    from qfabric.qkd.theory import Channel

    if protocol != "decoy-bb84":
        fail(ParameterError("--protocol", protocol, "decoy-bb84 (the only protocol with a distance curve)"))
    n = _count("--pulses", pulses)
    try:
        km = [float(x) for x in simulate.split(",") if x.strip()]
    except ValueError:
        fail(ParameterError("--simulate-km", simulate, "distances separated by commas"))
    try:
        template = Channel(0.0, attenuation_db_per_km, detector_efficiency, dark_count_yield, misalignment, f_ec,
                           afterpulse_probability=afterpulse_probability)
        data = _with_progress("computing the curve", quiet, lambda progress: key_rate_curve(
            template, max_km=max_km, step_km=step_km, simulate_km=km, pulses=n, seed=seed, progress=progress))
    except QfabricError as error:
        fail(error)
    rows = data["simulated"]
    from rich.table import Table

    t = Table(title="simulated points", title_justify="left")
    for col in ("km", "bits/pulse (simulated)", "bits/pulse (finite-key theory)", "QBER", "f"):
        t.add_column(col, justify="right")
    for p in rows:
        t.add_row(f"{p['distance_km']:g}", f"{p['bits_per_pulse']:.4g}", f"{p['analytic_bits_per_pulse']:.4g}",
                  "-" if p["qber"] is None else f"{p['qber']:.4f}",
                  "-" if p["efficiency"] is None else f"{p['efficiency']:.3f}")
    out.print(t)
    if html_out:
        html_out.write_text(page("qfabric: decoy BB84 key rate against distance", [
            ("Key rate", figure_to_img(key_rate_figure(data))),
            ("Simulated points", table(rows)),
            ("Parameters", table([{"attenuation dB/km": attenuation_db_per_km, "detector efficiency":
                                   detector_efficiency, "dark-count yield": dark_count_yield, "e_det": misalignment,
                                   "after-pulse probability": afterpulse_probability,
                                   "f (analytic)": f_ec, "pulses": n}])),
        ]))
        out.print(f"plot written to {html_out}")
    if json_out:
        json_out.write_text(json.dumps(data, indent=2) + "\n")
