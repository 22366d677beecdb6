"""Metrics, SLI aggregation and run reports (JSON data, console tables)."""

from qfabric.observe.console import print_report
from qfabric.observe.html import federated_sections, figure_to_img, key_rate_figure, page, run_report_html, table
from qfabric.observe.report import LinkRecord, histogram, jain_index, network_report, rate_with_ci, summarize

__all__ = [
    "federated_sections",
    "figure_to_img",
    "key_rate_figure",
    "page",
    "run_report_html",
    "table",
    "LinkRecord", "histogram", "jain_index", "network_report", "print_report", "rate_with_ci", "summarize"]
