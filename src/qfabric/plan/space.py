"""What a sweep varies: ``--set PATH=VALUES`` parsed, checked against the scenario schema, and sampled.

A path addresses scenario fields as the scenario file nests them: ``chain.cutoff_s``, ``links[0].length_km``,
``links[*].length_km`` (every link), ``links[a-north].length_km`` (the link named ``a-north``),
``hardware.metro-nv.memory.t2_s`` (a mapping's key). Values are a range ``a:b:step`` (both ends included), a
comma-separated list (``0.1,0.5,1``; each item read as YAML, so ``none`` and ``[0.1, 0.2]`` work), or one value.

>>> axis = parse_set("links[*].length_km=10:30:10")
>>> axis.path, axis.values
('links[*].length_km', [10, 20, 30])
>>> data = {"links": [{"name": "x", "length_km": 5}, {"name": "y", "length_km": 6}]}
>>> apply_value(data, axis.path, 20)["links"]
[{'name': 'x', 'length_km': 20}, {'name': 'y', 'length_km': 20}]
"""

from __future__ import annotations

import copy
import difflib
import re
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel

from qfabric.errors import QfabricError
from qfabric.scenario.schema import Scenario

_STEP = re.compile(r"([^.\[\]]+)|\[([^\]]*)\]")


class SweepError(QfabricError):
    """A sweep cannot start: a bad ``--set``, an empty grid, an unreachable scheduler, a missing dependency."""


@dataclass(frozen=True)
class Axis:
    """One ``--set``: a path and its values (``low``/``high``: the range's bounds for random and LHS sampling)."""

    text: str
    path: str
    values: list[Any]
    low: float | None = None
    high: float | None = None


def _number(text: str, where: str) -> float | int:
    value = yaml.safe_load(text)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SweepError(f"--set {where!r}: {text!r} is not a number (a range a:b:step takes numbers without units; "
                         "the unit is in the field's name)")
    return value


def parse_set(text: str) -> Axis:
    """``PATH=VALUES`` -> :class:`Axis` (values not yet checked against the schema: see :func:`check_axes`)."""
    if "=" not in text:
        raise SweepError(f"--set {text!r}: expected PATH=VALUES, e.g. 'links[*].length_km=10:60:5'")
    path, _, spec = text.partition("=")
    path, spec = path.strip(), spec.strip()
    if not path or not spec:
        raise SweepError(f"--set {text!r}: expected PATH=VALUES with both parts, e.g. 'chain.cutoff_s=0.1,0.5,1'")
    steps(path, text)
    if re.fullmatch(r"[^,\[\]:]+:[^,\[\]:]+(:[^,\[\]:]+)?", spec):
        parts = [_number(p, text) for p in spec.split(":")]
        low, high = parts[0], parts[1]
        step = parts[2] if len(parts) == 3 else None
        if high < low:
            raise SweepError(f"--set {text!r}: the range {low:g}:{high:g} is empty (its end is before its start)")
        if step is None:
            return Axis(text, path, [low, high], low, high)
        if step <= 0:
            raise SweepError(f"--set {text!r}: the step must be positive, got {step:g}")
        count = int((high - low) / step + 1e-9) + 1
        values = [low + i * step for i in range(count)]
        if all(isinstance(v, int) for v in (low, high, step)):
            values = [int(v) for v in values]
        else:
            values = [round(v, 12) for v in values]
        return Axis(text, path, values, low, high)
    items = [item.strip() for item in _split_list(spec)]
    if any(item == "" for item in items):
        raise SweepError(f"--set {text!r}: an empty value in the list")
    values = [None if item.lower() == "none" else yaml.safe_load(item) for item in items]
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    low, high = (min(numbers), max(numbers)) if len(numbers) == len(values) else (None, None)
    return Axis(text, path, values, low, high)


def _split_list(spec: str) -> list[str]:
    """Split on commas outside brackets: ``0.1,[0.2, 0.3]`` -> ``['0.1', '[0.2, 0.3]']``."""
    out, depth, cur = [], 0, ""
    for ch in spec:
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    return [*out, cur]


def steps(path: str, where: str | None = None) -> list[tuple[str, str]]:
    """``links[*].length_km`` -> ``[('key', 'links'), ('index', '*'), ('key', 'length_km')]``."""
    parts: list[tuple[str, str]] = []
    pos = 0
    for match in _STEP.finditer(path):
        gap = path[pos:match.start()]
        if gap not in ("", "."):
            break
        pos = match.end()
        key, index = match.groups()
        parts.append(("key", key) if key is not None else ("index", index.strip()))
    if pos != len(path) or not parts or parts[0][0] != "key":
        raise SweepError(f"--set {where or path!r}: cannot read the path {path!r}; expected fields joined by dots "
                         "with [index], [*] or [name] after a list, e.g. links[*].length_km")
    return parts


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", None) or ():
        inner = _inner_model(arg)
        if inner is not None:
            return inner
    return None


def _is_mapping(annotation: Any) -> bool:
    if getattr(annotation, "__origin__", None) is dict:
        return True
    return any(_is_mapping(arg) for arg in getattr(annotation, "__args__", None) or ())


def check_path(axis: Axis) -> None:
    """The path names fields of the scenario schema; else a :class:`SweepError` with a did-you-mean hint."""
    model: Any = Scenario
    free_key = False  # inside a mapping of models (hardware profiles): the next key is a name
    done = ""
    for kind, name in steps(axis.path, axis.text):
        if kind == "index":
            done += f"[{name}]"
            continue
        if free_key:
            free_key = False
            done += f".{name}"
            continue
        if model is None:
            raise SweepError(f"--set {axis.text!r}: {done} is a value, it has no field {name!r}")
        fields = {(f.alias or n): f for n, f in model.model_fields.items()}
        fields.update(model.model_fields)
        if name not in fields:
            hint = difflib.get_close_matches(name, list(fields), n=1)
            where = f" of {done}" if done else ""
            raise SweepError(f"--set {axis.text!r}: no field {name!r}{where}" + (
                f"; did you mean {hint[0]!r}?" if hint else f"; expected one of {sorted(fields)}"))
        annotation = fields[name].annotation
        done += ("." if done else "") + name
        free_key = _is_mapping(annotation)
        model = _inner_model(annotation)


def _select(items: list, selector: str, where: str, done: str) -> list[int]:
    if selector == "*":
        return list(range(len(items)))
    if re.fullmatch(r"-?\d+", selector):
        i = int(selector)
        if not -len(items) <= i < len(items):
            raise SweepError(f"--set {where!r}: {done} has {len(items)} entries, no [{selector}]")
        return [i % len(items)]
    named = [i for i, item in enumerate(items) if isinstance(item, dict) and selector in (item.get("name"),
                                                                                        item.get("id"))]
    if not named:
        names = [item.get("name") or item.get("id") for item in items if isinstance(item, dict)]
        hint = difflib.get_close_matches(selector, [n for n in names if n], n=1)
        raise SweepError(f"--set {where!r}: {done} has no entry named {selector!r}" + (
            f"; did you mean {hint[0]!r}?" if hint else f"; names are {names}"))
    return named


def apply_value(data: dict, path: str, value: Any, where: str | None = None) -> dict:
    """A copy of scenario ``data`` with ``value`` at ``path`` (missing mappings on the way are created)."""
    data = copy.deepcopy(data)
    parts = steps(path, where)
    _set(data, parts, value, where or path, "")
    return data


def _set(node: Any, parts: list[tuple[str, str]], value: Any, where: str, done: str) -> None:
    kind, name = parts[0]
    last = len(parts) == 1
    if kind == "index":
        if not isinstance(node, list):
            raise SweepError(f"--set {where!r}: {done or 'the scenario'} is not a list in the scenario file")
        for i in _select(node, name, where, done):
            if last:
                node[i] = copy.deepcopy(value)
            else:
                _set(node[i], parts[1:], value, where, f"{done}[{i}]")
        return
    if not isinstance(node, dict):
        raise SweepError(f"--set {where!r}: {done} is not a mapping in the scenario file")
    here = f"{done}.{name}" if done else name
    if last:
        node[name] = copy.deepcopy(value)
        return
    if node.get(name) is None:
        if parts[1][0] == "index":
            raise SweepError(f"--set {where!r}: the scenario has no {here} list to index")
        node[name] = {}
    _set(node[name], parts[1:], value, where, here)


def check_axes(axes: list[Axis]) -> None:
    """Paths that exist in the schema, no path set twice, no empty value list."""
    seen: set[str] = set()
    for axis in axes:
        check_path(axis)
        if not axis.values:
            raise SweepError(f"--set {axis.text!r}: no values (the grid would be empty)")
        if axis.path in seen:
            raise SweepError(f"--set {axis.text!r}: {axis.path} is set twice")
        seen.add(axis.path)


def sample_points(axes: list[Axis], sample: str = "grid", points: int | None = None, seed: int = 0) -> list[dict]:
    """The points of the sweep, each ``{path: value}``: the full grid, or ``points`` random or Latin-hypercube
    points (axes with a numeric range are drawn in it, uniformly; list axes pick one of their values).

    >>> a = parse_set("x.y=1:3:1"); b = parse_set("x.z=a,b")
    >>> [tuple(p.values()) for p in sample_points([a, b])]
    [(1, 'a'), (1, 'b'), (2, 'a'), (2, 'b'), (3, 'a'), (3, 'b')]
    """
    import itertools

    import numpy as np
    from scipy.stats import qmc

    if sample == "grid":
        grid = [dict(zip([a.path for a in axes], combo, strict=True))
                for combo in itertools.product(*[a.values for a in axes])]
        if not grid:
            raise SweepError("the grid is empty: every --set needs at least one value")
        return grid
    if sample not in ("random", "lhs"):
        raise SweepError(f"--sample {sample!r}: expected grid, random or lhs")
    if not points or points < 1:
        raise SweepError(f"--sample {sample} needs --points N (N >= 1)")
    if not axes:
        raise SweepError(f"--sample {sample} needs at least one --set")
    if sample == "lhs":
        unit = qmc.LatinHypercube(d=len(axes), seed=np.random.default_rng(seed)).random(points)
    else:
        unit = np.random.default_rng(seed).random((points, len(axes)))
    out = []
    for row in unit:
        point = {}
        for axis, u in zip(axes, row, strict=True):
            ranged = axis.low is not None and len(axis.values) == 2 and ":" in axis.text.partition("=")[2] \
                and axis.text.partition("=")[2].count(":") == 1
            if ranged:
                point[axis.path] = float(axis.low + u * (axis.high - axis.low))
            else:
                point[axis.path] = axis.values[min(int(u * len(axis.values)), len(axis.values) - 1)]
        out.append(point)
    return out
