"""Parameter sweeps: every point of a grid (or sample) over scenario fields, with replicates, on local processes or
a Dask cluster, into one tidy table (one row per point and replicate).

>>> from qfabric.plan.space import parse_set
>>> base = {"name": "s", "seed": 7, "duration_s": 1, "chain": {"from": "a", "to": "b"}}
>>> tasks = make_tasks(base, [parse_set("chain.cutoff_s=0.1,0.2")], replicates=2, validate=False)
>>> [(t["point"], t["replicate"], t["data"]["chain"]["cutoff_s"]) for t in tasks]
[(0, 0, 0.1), (0, 1, 0.1), (1, 0, 0.2), (1, 1, 0.2)]
>>> tasks[0]["seed"] == 7 and tasks[1]["seed"] != 7 and tasks[1]["seed"] == tasks[3]["seed"]
True
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qfabric.plan.space import Axis, SweepError, apply_value, check_axes, sample_points

KEY_COLUMNS = ("point", "replicate", "seed", "point_key", "engine", "status", "error", "attempts", "wall_s")
MISSING_DEPENDENCY = "the sweep needs pandas, pyarrow and dask: pip install 'qfabric[plan]'"


def replicate_seed(seed: int, replicate: int) -> int:
    """Replicate 0 runs with the scenario's own seed (it reproduces ``qfabric run``); replicate ``r`` with a seed
    derived from it by name (``stream_seed(seed, 'sweep/replicate-r')``), the same at every point (common random
    numbers: differences between points are not drowned in seed noise).

    >>> replicate_seed(5, 0), replicate_seed(5, 1) == replicate_seed(5, 1), replicate_seed(5, 1) != 5
    (5, True, True)
    """
    if replicate == 0:
        return seed
    from qfabric.sim.kernel import stream_seed

    return int(stream_seed(seed, f"sweep/replicate-{replicate}").generate_state(1)[0])


def point_key(point: dict[str, Any], scenario_hash: str) -> str:
    """A stable key of a point's values and the base scenario (what resumption matches on)."""
    text = json.dumps({"scenario": scenario_hash, "point": point}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def scenario_hash(data: dict) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def make_tasks(data: dict, axes: list[Axis], replicates: int = 1, sample: str = "grid", points: int | None = None,
               engine: str = "auto", trials: int = 100_000, file: str | None = None, base_dir: str | None = None,
               validate: bool = True) -> list[dict]:
    """One task per point and replicate. With ``validate`` every point is checked by ``parse_scenario`` first; a
    bad value is a :class:`SweepError` naming the ``--set`` and the field."""
    if replicates < 1:
        raise SweepError(f"--replicates {replicates}: expected at least 1")
    if engine not in ("auto", "event", "batch"):
        raise SweepError(f"--engine {engine!r}: expected auto, event or batch")
    check_axes(axes)
    seed = int(data.get("seed", 0) or 0)
    chosen = sample_points(axes, sample, points, seed)
    digest = scenario_hash(data) + f"/{engine}/{trials}"  # another engine or trial count is another run
    tasks = []
    for i, point in enumerate(chosen):
        point_data = data
        for axis in axes:
            point_data = apply_value(point_data, axis.path, point[axis.path], axis.text)
        if validate:
            _validate(point_data, point, axes, file, base_dir)
        key = point_key(point, digest)
        for r in range(replicates):
            point_data_r = dict(point_data) | {"seed": replicate_seed(seed, r)}
            tasks.append({"point": i, "replicate": r, "seed": point_data_r["seed"], "values": point, "key": key,
                          "data": point_data_r, "file": file, "base_dir": base_dir, "engine": engine,
                          "trials": trials})
    return tasks


def _validate(data: dict, point: dict, axes: list[Axis], file: str | None, base_dir: str | None) -> None:
    from qfabric.errors import ScenarioError
    from qfabric.scenario import parse_scenario

    try:
        parse_scenario(data, file or "<scenario>", Path(base_dir) if base_dir else None)
    except ScenarioError as error:
        lines = []
        for where, message in error.problems:
            axis = next((a for a in axes if _touches(a.path, where)), None)
            culprit = f"--set {axis.text!r} (value {point[axis.path]!r})" if axis else "the base scenario"
            lines.append(f"{culprit}: {where or '<file>'}: {message}")
        raise SweepError("a sweep point is not a valid scenario:\n  " + "\n  ".join(lines)) from None


def _touches(path: str, field_path: str) -> bool:
    """Does ``--set`` ``path`` (with [*] or [name]) cover the scenario field ``field_path`` (``links[1].x``)?"""
    import re

    pattern = re.escape(path).replace(r"\[\*\]", r"\[\d+\]")
    pattern = re.sub(r"\\\[[^\]\d*][^\]]*\\\]", r"\\[\\d+\\]", pattern)
    return re.match(pattern, field_path) is not None or re.match(re.escape(field_path), path) is not None


# ---- backends -------------------------------------------------------------------------------------------------


@dataclass
class SweepResult:
    """The rows this call ran (``ran`` tasks; ``skipped`` were already done), failures, wall time, backend."""

    rows: list[dict]
    ran: int
    skipped: int
    failed: int
    seconds: float
    backend: str


def _local_backend(workers: int):
    from concurrent.futures import Future, ProcessPoolExecutor, as_completed

    if workers == 0:  # in this process, one task after another (debugging, small tests)
        def run_here(task):
            from qfabric.plan.engines import run_point

            future: Future = Future()
            future.set_result(run_point(task))
            return future

        return run_here, as_completed, lambda abort=False: None, "this process"
    from concurrent.futures.process import BrokenProcessPool

    def new_pool() -> ProcessPoolExecutor:  # workers leave Ctrl-C to this process, which stops them
        return ProcessPoolExecutor(max_workers=workers, initializer=signal.signal,
                                   initargs=(signal.SIGINT, signal.SIG_IGN))

    pools = [new_pool()]

    def submit(task):
        from qfabric.plan.engines import run_point

        try:
            return pools[-1].submit(run_point, task)
        except BrokenProcessPool:  # a worker died (killed, out of memory): a fresh pool for the runs still to go
            pools.append(new_pool())
            return pools[-1].submit(run_point, task)

    def close(abort: bool = False):
        for pool in pools:
            if abort:  # interrupted: stop the running points now (their rows are not needed)
                for process in list(getattr(pool, "_processes", {}).values()):
                    process.terminate()
            pool.shutdown(wait=not abort, cancel_futures=True)

    return submit, as_completed, close, f"local processes ({workers})"


def connect(scheduler: str | Any, timeout_s: float = 3.0):
    """A Dask ``Client`` to ``scheduler`` (an address or a ``LocalCluster``); an unreachable address is a
    :class:`SweepError` within ``timeout_s``."""
    try:
        from distributed import Client
    except ImportError:
        raise SweepError(MISSING_DEPENDENCY) from None
    try:
        return Client(scheduler, timeout=f"{timeout_s}s", set_as_default=False)
    except (OSError, TimeoutError) as error:
        raise SweepError(f"--scheduler {scheduler}: cannot reach a Dask scheduler within {timeout_s:g} s "
                         f"({type(error).__name__}: {error}); is 'dask scheduler' running there?") from None


def _dask_backend(scheduler: str | Any):
    from distributed import as_completed

    from qfabric.plan.engines import run_point

    own = not hasattr(scheduler, "submit")
    client = connect(scheduler) if own else scheduler

    pending: set = set()

    def submit(task):
        future = client.submit(run_point, task, pure=False)
        pending.add(future)
        return future

    def completed(futures):
        return as_completed(futures)

    def close(abort: bool = False):
        if abort:
            client.cancel(list(pending))
        if own:
            client.close()

    return submit, completed, close, f"dask ({client.scheduler.address})"


def run_sweep(tasks: list[dict], *, workers: int | None = None, scheduler: str | Any = None, retries: int = 1,
              done: Iterable[str] = (), on_row: Callable[[dict], None] | None = None,
              progress: Callable[[int, int], None] | None = None) -> SweepResult:
    """Run ``tasks`` (skipping those whose ``key/replicate`` is in ``done``) on ``workers`` local processes (0: in
    this process) or on the Dask ``scheduler`` (an address or a ``Client``). A task that fails is run again up to
    ``retries`` times; after that its row says ``status = 'error'``. ``on_row`` gets every finished row."""
    done = set(done)
    todo = [t for t in tasks if f"{t['key']}/{t['replicate']}" not in done]
    skipped = len(tasks) - len(todo)
    if scheduler is not None:
        submit, completed, close, backend = _dask_backend(scheduler)
    else:
        submit, completed, close, backend = _local_backend(os.cpu_count() or 1 if workers is None else workers)
    start = time.perf_counter()
    rows, failed = [], 0
    futures: dict = {}
    try:
        futures = {submit(t): (t, 1) for t in todo}
        finished = 0
        while futures:
            for future in completed(list(futures)):
                task, attempt = futures.pop(future)
                try:
                    row = future.result()
                except Exception as error:  # the worker itself died (or was lost): a failed attempt
                    row = {"point": task["point"], "replicate": task["replicate"], "seed": task["seed"],
                           "status": "error", "error": f"worker lost: {type(error).__name__}: {error}", "wall_s": None}
                if row["status"] != "ok" and attempt <= retries:
                    futures[submit(task)] = (task, attempt + 1)
                    break  # re-enter as_completed with the new future
                row |= {"point_key": task["key"], "attempts": attempt}
                row |= {path: value for path, value in task["values"].items()}
                failed += row["status"] != "ok"
                rows.append(row)
                finished += 1
                if on_row is not None:
                    on_row(row)
                if progress is not None:
                    progress(finished + skipped, len(tasks))
    except BaseException:  # Ctrl-C or a bug here: stop the workers, keep the rows (the caller writes them)
        close(abort=True)
        raise
    close()
    return SweepResult(rows, len(todo), skipped, failed, time.perf_counter() - start, backend)


# ---- the table ------------------------------------------------------------------------------------------------


def _pandas():
    try:
        import pandas as pd
        import pyarrow  # noqa: F401  (Parquet)
    except ImportError:
        raise SweepError(MISSING_DEPENDENCY) from None
    return pd


def read_table(path: Path):
    """The rows already in ``path`` (Parquet or CSV), or ``None`` when it does not exist."""
    pd = _pandas()
    if not path.exists():
        return None
    try:
        return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as error:
        raise SweepError(f"--out {path}: cannot read the existing table to resume ({error}); move it away") from None


def finished_keys(table) -> set[str]:
    """``point_key/replicate`` of the rows that succeeded (failed rows are run again on resumption)."""
    if table is None or "point_key" not in table.columns:
        return set()
    ok = table[table["status"] == "ok"]
    return {f"{k}/{int(r)}" for k, r in zip(ok["point_key"], ok["replicate"], strict=True)}


def write_table(rows: list[dict], path: Path, previous=None, axes: list[Axis] | None = None):
    """Write ``rows`` (after the ``previous`` table's rows, replacing the same point and replicate) atomically;
    returns the DataFrame. Columns: the key columns, the swept paths, then the SLIs in name order."""
    pd = _pandas()
    frame = pd.DataFrame(rows)
    if previous is not None and len(previous):
        if len(frame):
            keys = set(zip(frame["point_key"], frame["replicate"], strict=True))
            keep = [(k, r) not in keys for k, r in zip(previous["point_key"], previous["replicate"], strict=True)]
            previous = previous[keep]
        frame = pd.concat([previous, frame], ignore_index=True)
    if frame.empty:
        return frame
    swept = [a.path for a in axes or []]
    first = [c for c in (*KEY_COLUMNS, *swept) if c in frame.columns]
    rest = sorted(c for c in frame.columns if c not in first)
    frame = frame[first + rest].sort_values(["point", "replicate"], kind="stable").reset_index(drop=True)
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix == ".parquet":
        for column in swept:  # a column mixing numbers and text (or lists) is stored as text
            if column in frame.columns and frame[column].map(type).nunique() > 1:
                frame[column] = frame[column].map(str)
        frame.to_parquet(tmp, index=False)
    else:
        frame.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return frame
