"""Metrics, SLI aggregation and run reports (JSON data, console tables)."""

from qfabric.lazy import lazy_exports

_EXPORTS = {
    "console": ["print_report"],
    "html": ["federated_sections", "figure_to_img", "key_rate_figure", "page", "run_report_html", "table"],
    "report": ["LinkRecord", "histogram", "jain_index", "network_report", "rate_with_ci", "summarize"],
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
