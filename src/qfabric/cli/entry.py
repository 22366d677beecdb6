"""The ``qfabric`` command's entry point.

``qfabric validate FILE`` on a valid file is answered here, without loading the command-line framework (typer,
click and rich would add about 75 ms to its 0.19-0.26 s, ``benchmarks/bench_cli.py``); everything else, and a
file with problems (whose report the full command prints, exit code 2), goes to :data:`qfabric.cli.main.app`.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> None:
    args = sys.argv[1:]
    if len(args) == 2 and args[0] == "validate" and not args[1].startswith("-") and _valid(Path(args[1])):
        return
    from qfabric.cli.main import app

    app()


def load_quickly(path: Path):
    """:func:`~qfabric.scenario.load_scenario` with the garbage collector out of the way: importing the schema
    (pydantic) makes many objects and no garbage (collecting costs ~10 %), and Python's last collection at exit
    walks every object of every module loaded (~15 %): nothing here needs either. Loading imports no networkx
    (routes are found on a plain adjacency mapping), and numpy only to draw a random topology."""
    import atexit
    import gc

    atexit.register(gc.freeze)
    collecting = gc.isenabled()
    gc.disable()
    try:
        from qfabric.scenario import load_scenario

        return load_scenario(path)
    finally:
        if collecting:
            gc.enable()


def ok_line(path: Path, sc) -> str:
    """What ``qfabric validate`` prints for a valid scenario."""
    return (f"{path}: ok ({sc.name}: {len(sc.nodes)} nodes, {len(sc.links)} links, "
            f"{len(sc.all_requests())} request(s), {sc.duration_s:g} s)")


def _valid(path: Path) -> bool:
    from qfabric.errors import QfabricError

    try:
        sc = load_quickly(path)
    except QfabricError:
        return False  # the full command reports the problems
    print(ok_line(path, sc))
    return True
