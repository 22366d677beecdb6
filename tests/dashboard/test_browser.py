"""The dashboard and the HTML report in a real browser: Playwright driving Debian's Chromium.

Screenshots are saved as test artefacts: under ``$QFABRIC_TEST_ARTIFACTS`` when it is set (CI can keep that
directory), else in pytest's temporary directory; the path is printed.
"""

import os
import re
import shutil
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (pip, the dev extra) is not installed")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists() or shutil.which(str(CHROMIUM)) is None,
                                reason="/usr/bin/chromium is absent (Debian package chromium; .ci/run installs it)")


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def artefacts(tmp_path) -> Path:
    root = os.environ.get("QFABRIC_TEST_ARTIFACTS")
    path = Path(root) if root else tmp_path
    path.mkdir(parents=True, exist_ok=True)
    return path


def _seconds(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+) (s|ms)", text.strip()).groups()
    return float(number) / (1000 if unit == "ms" else 1)


def test_live_dashboard_shows_the_network_and_advances(browser, artefacts, small_scenario):
    from qfabric.dashboard import DashboardServer, Hub, scenario_topology, start_live

    sc = small_scenario
    hub = Hub(scenario_topology(sc), mode="live", speed=sc.duration_s / 2.0)  # the network in about 2 s
    server = DashboardServer(hub).start()
    errors: list[str] = []
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url)
        start_live(sc, hub)
        page.wait_for_function("() => typeof cy !== 'undefined' && cy !== null && cy.nodes().length > 0",
                               timeout=15_000)
        assert page.evaluate("() => cy.nodes().map(n => n.id()).sort()") == sorted(n.name for n in sc.nodes)
        assert page.evaluate("() => cy.edges().map(e => e.id()).sort()") == sorted(x.name for x in sc.links)
        page.wait_for_function("() => document.querySelector('#kpi-pairs').textContent !== '–'", timeout=10_000)
        t1, pairs1 = _seconds(page.inner_text("#sim-time")), page.inner_text("#kpi-pairs")
        page.wait_for_timeout(700)
        t2, pairs2 = _seconds(page.inner_text("#sim-time")), page.inner_text("#kpi-pairs")
        assert 0 < t1 < t2 <= sc.duration_s and pairs1 != pairs2, (t1, t2, pairs1, pairs2)
        # the run ends: the QKD link's rate arrives after the network simulation, the cut is in the event log
        page.wait_for_function("() => document.querySelector('#kpi-qkd').textContent.includes('bit/s')",
                               timeout=30_000)
        assert hub.status == "done" and "fault" in page.inner_text("#events")
        assert page.inner_text("#sim-time").strip() == "2.00 s"
        requests = page.inner_text("#requests")
        assert "clinic-link" in requests and "bank-link" in requests
        shot = artefacts / "dashboard-live.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot: {shot}")
        assert shot.stat().st_size > 20_000
        assert not errors, errors
    finally:
        server.stop()


def test_html_report_renders(browser, artefacts, small_report, tmp_path):
    from qfabric.observe import run_report_html

    html = tmp_path / "report.html"
    html.write_text(run_report_html(small_report))  # what qfabric run --html writes
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(html.as_uri())
    assert page.inner_text("h1").startswith("qfabric run: dashboard-small")
    headings = page.eval_on_selector_all("h2", "hs => hs.map(h => h.textContent)")
    assert {"Network", "Requests", "Timeline", "QKD services"} <= set(headings)
    sizes = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.naturalWidth, i.complete])")
    assert sizes and all(width > 0 and done for width, done in sizes), "every figure decodes"
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"the report is {overflow} px wider than the window"
    shot = artefacts / "html-report.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    assert shot.stat().st_size > 20_000
