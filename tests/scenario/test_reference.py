"""docs/scenario-reference.md is generated from the schema and must not drift from it."""

from pathlib import Path

from qfabric.scenario.reference import scenario_reference
from qfabric.scenario.schema import Scenario

DOC = Path(__file__).parents[2] / "docs" / "scenario-reference.md"


def test_the_committed_reference_is_what_the_schema_generates():
    assert DOC.read_text() == scenario_reference(), (
        "docs/scenario-reference.md is stale: python -m qfabric.scenario.reference > docs/scenario-reference.md")


def test_every_field_of_every_section_is_in_the_reference():
    text = scenario_reference()
    seen, queue = set(), [Scenario]
    while queue:
        model = queue.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, field in model.model_fields.items():
            assert f"| `{field.alias or name}` |" in text, (model.__name__, name)
            queue += [m for m in _nested(field.annotation)]
    assert len(seen) > 25  # every section was walked


def _nested(annotation):
    import typing

    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _nested(arg)]
