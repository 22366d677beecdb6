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


class _NoBar:
    """What a progress bar offers, doing nothing (quiet runs, output not on a terminal)."""

    def add_task(self, *args, **kwargs) -> int:
        return 0

    def update(self, *args, **kwargs) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def progress_bar(quiet: bool, counts: bool = False):
    """A transient rich progress bar on stderr (percent, or ``done/total`` with ``counts``), or nothing when
    ``quiet`` or when stderr is not a terminal: ``with progress_bar(q) as bar: task = bar.add_task(...)``."""
    import sys

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    if quiet or not sys.stderr.isatty():
        return _NoBar()
    done = MofNCompleteColumn() if counts else TextColumn("{task.percentage:>3.0f}%")
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), done, TimeElapsedColumn(),
                    TimeRemainingColumn(), console=err, transient=True)
