"""Metrics, SLI aggregation and run reports (JSON data, console tables)."""

from qfabric.observe.console import print_report
from qfabric.observe.report import LinkRecord, chain_report, histogram, rate_with_ci, summarize

__all__ = ["LinkRecord", "chain_report", "histogram", "print_report", "rate_with_ci", "summarize"]
