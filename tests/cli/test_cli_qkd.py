"""``qfabric qkd``: JSON summaries, the HTML curve, and clear errors for bad flags."""

import json

from typer.testing import CliRunner

from qfabric.cli.main import app

runner = CliRunner()


def test_qkd_link_json(tmp_path):
    out = tmp_path / "link.json"
    result = runner.invoke(app, ["qkd", "link", "--distance-km", "30", "--pulses", "1e8", "--json", str(out), "-q"])
    assert result.exit_code == 0, result.output
    summary = json.loads(out.read_text())
    assert summary["key_bits"] > 0 and summary["aborted_blocks"] == 0
    assert summary["secret_bits_per_pulse"] < summary["plob_bits_per_pulse"]


def test_qkd_link_with_eavesdropper_reports_the_abort():
    result = runner.invoke(app, ["qkd", "link", "--distance-km", "20", "--pulses", "1e8", "--eve", "intercept-resend",
                                 "-q"])
    assert result.exit_code == 0, result.output
    assert "threshold" in result.output


def test_qkd_curve_writes_html_with_a_plot(tmp_path):
    html = tmp_path / "curve.html"
    result = runner.invoke(app, ["qkd", "curve", "--max-km", "100", "--step-km", "25", "--simulate-km", "50",
                                 "--pulses", "1e8", "--html", str(html), "-q"])
    assert result.exit_code == 0, result.output
    text = html.read_text()
    assert "data:image/png;base64," in text and "Simulated points" in text


def test_qkd_bad_flags_exit_2():
    for args, message in ((["--pulses", "many"], "a number"), (["--distance-km", "-3"], "distance_km"),
                          (["--eve", "mitm"], "intercept-resend"), (["--protocol", "e91"], "decoy-bb84 or bbm92"),
                          (["--pulses", "1e5", "--distance-km", "80"], "pulses per block")):
        result = runner.invoke(app, ["qkd", "link", *args, "-q"])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output


def test_qkd_link_with_after_pulsing_has_more_errors(tmp_path):
    # Lim et al. 2014's detector model: after-pulses add detections with random bits, so the QBER rises
    summaries = []
    for p_ap in ("0", "0.04"):
        out = tmp_path / f"link-{p_ap}.json"
        result = runner.invoke(app, ["qkd", "link", "--distance-km", "40", "--pulses", "1e8",
                                     "--afterpulse-probability", p_ap, "--json", str(out), "-q"])
        assert result.exit_code == 0, result.output
        summaries.append(json.loads(out.read_text()))
    assert summaries[1]["qber"] > summaries[0]["qber"] + 0.01
    result = runner.invoke(app, ["qkd", "link", "--protocol", "bbm92", "--afterpulse-probability", "0.04", "-q"])
    assert result.exit_code == 2 and "decoy-bb84 only" in " ".join(result.output.split())


def test_an_eavesdropper_run_says_so_and_what_she_cost(tmp_path):
    out = tmp_path / "eve.json"
    result = runner.invoke(app, ["qkd", "link", "--distance-km", "20", "--pulses", "1e8", "--eve",
                                 "intercept-resend:0.2", "--quiet", "--json", str(out)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "An eavesdropper was simulated (intercept-resend:0.2)" in text and "refused the key" in text
    summary = json.loads(out.read_text())
    assert summary["key_bits"] == 0 < summary["without_eavesdropper"]["key_bits"]
    assert summary["qber"] > summary["without_eavesdropper"]["qber"] + 0.03  # 20 % intercepted: about +5 %
