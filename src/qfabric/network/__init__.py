"""The network engine: links with memories, circuits over paths, swapping, purification, cut-offs, delivery."""

from qfabric.network.chain import repeater_chain
from qfabric.network.circuit import Circuit, CircuitStats, Pair
from qfabric.network.engine import Link, LinkStats, MemoryPool, Network
from qfabric.network.models import (
    ClassicalHop,
    LinkModel,
    Multiplexing,
    NodeModel,
    Protocol,
    PurificationProtocol,
    QubitSelection,
    SwapScheme,
    required_capacity,
)


def _engine_build() -> str:
    """``"compiled"`` when mypyc built the engine at install (``setup.py``), else ``"interpreted"``; warns when a
    compiled module is older than its source (edited without reinstalling: ``make`` or ``pip install -e .``)."""
    import warnings
    from pathlib import Path

    from qfabric.network import circuit, engine, models
    from qfabric.sim import kernel

    built = [Path(m.__file__) for m in (kernel, models, circuit, engine) if not m.__file__.endswith(".py")]
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
