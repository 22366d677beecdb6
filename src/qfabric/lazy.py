"""Package attributes imported on first use (PEP 562), so ``qfabric --help`` does not load numpy, scipy,
matplotlib, numba or the web stack.

>>> getattr_, dir_, all_ = lazy_exports("qfabric.control", {"slo": ["SLO"]})
>>> getattr_("SLO").__name__, all_
('SLO', ['SLO'])
"""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_exports(package: str, exports: dict[str, list[str]]) -> tuple[Callable, Callable, list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package``, exporting each name of ``exports[module]`` from
    ``package.module`` when first asked for."""
    where = {name: f"{package}.{module}" for module, names in exports.items() for name in names}

    def __getattr__(name: str):
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(where[name]), name)

    def __dir__() -> list[str]:
        return sorted(where)

    return __getattr__, __dir__, sorted(where)
