"""The qfabric command line (Typer)."""
