"""The network engine: links with memories, circuits over paths, swapping, purification, cut-offs, delivery."""

import importlib.machinery
import warnings
from pathlib import Path

from qfabric.lazy import lazy_exports

# Imported on first use: the engine imports the kernel and numpy, and ``qfabric validate`` needs only ``models``.
_EXPORTS = {
    "chain": ["repeater_chain"],
    "circuit": ["Circuit", "CircuitStats", "Pair"],
    "engine": ["Link", "LinkStats", "MemoryPool", "Network"],
    "models": ["ClassicalHop", "LinkModel", "Multiplexing", "NodeModel", "Protocol", "PurificationProtocol",
               "QubitSelection", "SwapScheme", "required_capacity"],
}
__getattr__, _lazy_dir, _ = lazy_exports(__name__, _EXPORTS)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_lazy_dir()))


def _engine_build() -> str:
    """``"compiled"`` when mypyc built the engine at install (``setup.py``), else ``"interpreted"``; warns when a
    compiled module is older than its source (edited without reinstalling: ``make`` or ``pip install -e .``).

    Python imports a module from an extension file when one sits next to its source (extensions come first in
    the import path's search), so the files decide it without importing the engine."""
    package = Path(__file__).resolve().parent
    modules = [package.parent / "sim" / "kernel"] + [package / name for name in ("models", "circuit", "engine")]
    built = [binary for module in modules for suffix in importlib.machinery.EXTENSION_SUFFIXES
             if (binary := module.with_name(module.name + suffix)).exists()]
    for binary in built:
        source = binary.with_name(binary.name.split(".")[0] + ".py")
        if source.exists() and source.stat().st_mtime > binary.stat().st_mtime:
            warnings.warn(f"{binary.name} is older than {source.name}: the compiled engine does not run your edits; "
                          "reinstall (make, or pip install -e .) or install with QFABRIC_PURE_PYTHON=1", stacklevel=2)
    return "compiled" if built else "interpreted"


ENGINE_BUILD = _engine_build()

__all__ = [
    "ENGINE_BUILD",
    "Circuit",
    "CircuitStats",
    "ClassicalHop",
    "Link",
    "LinkModel",
    "LinkStats",
    "MemoryPool",
    "Multiplexing",
    "Network",
    "NodeModel",
    "Pair",
    "Protocol",
    "PurificationProtocol",
    "QubitSelection",
    "SwapScheme",
    "repeater_chain",
    "required_capacity",
]
