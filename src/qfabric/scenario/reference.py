"""The scenario file reference, generated from the schema: every section, field, type, unit, default, allowed values.

    python -m qfabric.scenario.reference > docs/scenario-reference.md

``tests/scenario/test_reference.py`` fails when the committed file and the schema drift apart.

>>> "| `length_km` |" in scenario_reference()
True
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen, MultipleOf
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from qfabric.scenario.schema import Scenario

UNITS = {"_s": "s", "_km": "km", "_hz": "Hz", "_db": "dB", "_db_per_km": "dB/km", "_bits": "bits", "_bps": "bit/s"}


def _unit(name: str) -> str:
    for suffix in sorted(UNITS, key=len, reverse=True):
        if name.endswith(suffix):
            return UNITS[suffix]
    return ""


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation holds (in a list, a dict's values, an optional, a union)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        out += _models(arg)
    return out


def _type(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        parts = [_type(a) for a in args if a is not type(None)]
        return " or ".join(parts)
    if origin in (list, tuple):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"[{', '.join(_type(a) for a in args)}]"
        return f"list of {_type(args[0])}" if args else "list"
    if origin is dict:
        return f"map of {_type(args[0])} to {_type(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{_section_name(annotation)}](#{_anchor(annotation)})"
    names = {float: "number", int: "whole number", str: "text", bool: "true/false"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _section_name(model: type[BaseModel]) -> str:
    return model.__name__.removesuffix("Spec") or model.__name__


def _anchor(model: type[BaseModel]) -> str:
    return _section_name(model).lower()


def _bounds(metadata: list) -> str:
    parts = []
    for m in metadata:
        for kind, symbol in ((Gt, ">"), (Ge, ">="), (Lt, "<"), (Le, "<=")):
            if isinstance(m, kind):
                parts.append(f"{symbol} {getattr(m, kind.__name__.lower()):g}")
        if isinstance(m, MultipleOf):
            parts.append(f"multiple of {m.multiple_of}")
        if isinstance(m, MinLen):
            parts.append(f"at least {m.min_length} item(s)" if m.min_length > 1 else "not empty")
        if isinstance(m, MaxLen):
            parts.append(f"at most {m.max_length}")
    return ", ".join(parts)


def _default(field) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        value = field.default_factory()
        return "empty" if value in ({}, [], ()) else "its defaults" if isinstance(value, BaseModel) else f"`{value}`"
    value = field.default
    if value is None or value is PydanticUndefined:
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if value == "":
        return '`""`'
    return f"`{value:g}`" if isinstance(value, float) else f"`{value}`"


def _table(model: type[BaseModel]) -> str:
    rows = ["| field | type | unit | default | allowed | meaning |", "|---|---|---|---|---|---|"]
    for name, field in model.model_fields.items():
        key = field.alias or name
        doc = (field.description or "").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{key}` | {_type(field.annotation)} | {_unit(name)} | {_default(field)} | "
                    f"{_bounds(field.metadata)} | {doc} |")
    return "\n".join(rows)


def scenario_reference() -> str:
    """The whole reference, as Markdown: the top level, then each section in the order it first appears."""
    order: list[type[BaseModel]] = []
    queue = [Scenario]
    while queue:
        model = queue.pop(0)
        if model in order:
            continue
        order.append(model)
        for field in model.model_fields.values():
            queue += [m for m in _models(field.annotation) if m not in order]
    parts = ["# Scenario reference", "",
             "Generated from the schema (`python -m qfabric.scenario.reference > docs/scenario-reference.md`); "
             "a test fails when it drifts. How to write a scenario, with examples: [scenarios.md](scenarios.md).",
             ""]
    for model in order:
        title = "Top level" if model is Scenario else _section_name(model)
        doc = " ".join((model.__doc__ or "").strip().split("\n\n")[0].split())
        parts += [f"## {title}" if model is Scenario else f'## <a id="{_anchor(model)}"></a>{title}', ""]
        if doc and model is not Scenario:
            parts += [doc, ""]
        parts += [_table(model), ""]
    return "\n".join(parts)


def main() -> None:
    print(scenario_reference(), end="")


if __name__ == "__main__":
    main()
