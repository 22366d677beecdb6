"""The exception root of qfabric; every error qfabric raises on purpose derives from it."""

from __future__ import annotations


class QfabricError(Exception):
    """Root of every error qfabric raises on purpose (bad input, impossible requests)."""


class ParameterError(QfabricError, ValueError):
    """A parameter is outside its allowed range: ``ParameterError("p_gen", 1.5, "a probability in (0, 1]")``."""

    def __init__(self, name: str, value: object, expected: str):
        self.name, self.value, self.expected = name, value, expected
        super().__init__(f"{name} = {value!r}: expected {expected}")


class ScenarioError(QfabricError):
    """A scenario file is wrong. ``problems`` lists ``(field_path, message)``, one per mistake."""

    def __init__(self, path: str, problems: list[tuple[str, str]]):
        self.path = str(path)
        self.problems = problems
        lines = [f"{self.path}: {len(problems)} problem{'s' if len(problems) != 1 else ''}"]
        lines += [f"  {field or '<file>'}: {message}" for field, message in problems]
        super().__init__("\n".join(lines))
