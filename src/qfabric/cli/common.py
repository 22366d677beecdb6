"""What every qfabric command shares: the consoles and the way bad input ends a command (exit code 2)."""

from __future__ import annotations

import typer
from rich.console import Console

out = Console()
err = Console(stderr=True)


def fail(error: Exception | str) -> None:
    """Print ``error`` without a traceback and exit with code 2."""
    err.print(f"[bold red]error:[/bold red] {error}", highlight=False)
    raise typer.Exit(code=2)


def choice(*values: str):
    """A fixed set of values for an option: ``--help`` lists them, anything else is refused with exit code 2.

    >>> choice("nested", "swap-asap").choices
    ('nested', 'swap-asap')
    """
    import click

    return click.Choice(values)
