"""The engine's models and the examples of the compiled modules' docstrings."""

import pytest

from qfabric.errors import ParameterError
from qfabric.network import LinkModel, Network, Protocol
from qfabric.network.models import nesting_levels, required_capacity
from qfabric.sim import Simulator


def test_link_model_expected_time_per_pair():
    link = LinkModel(success_probability=0.1, attempt_period=10, herald_delay=10, state=(0.9, 0.05, 0.03, 0.02))
    assert link.expected_ticks_per_pair == 100.0  # (1/p - 1) attempts of 10 ticks, then the herald's 10
    with pytest.raises(ParameterError, match="success_probability"):
        LinkModel(success_probability=0.0, attempt_period=10, herald_delay=10, state=(1, 0, 0, 0))


def test_capacity_and_nesting_levels():
    assert [required_capacity(1, 1), required_capacity(2, 1), required_capacity(1, 2), required_capacity(0, 3)] == \
        [2, 3, 3, 1]
    assert [nesting_levels(n) for n in (1, 2, 3, 4, 5, 8)] == [0, 1, 2, 2, 3, 3]


def test_protocol_checks_its_fields():
    assert Protocol(scheme="nested", cutoffs=[3, 6]).cutoffs_for(4) == [3, 6]
    assert Protocol(scheme="nested", cutoffs=5).cutoffs_for(5) == [5, 5, 5]
    with pytest.raises(ParameterError, match="one cut-off per nesting level"):
        Protocol(scheme="nested", cutoffs=[3]).cutoffs_for(4)
    with pytest.raises(ParameterError, match="scheme"):
        Protocol(scheme="fastest")
    with pytest.raises(ParameterError, match="fidelity_min"):
        Protocol(fidelity_min=1.5)


def test_the_engine_module_example():
    # qfabric/network/engine.py's docstring: two links, p = 1/2 per tick, pairs every (3 - 2p) / (p (2 - p)) ticks
    sim = Simulator(seed=1)
    net = Network(sim, seconds_per_tick=1.0)
    fresh = LinkModel(success_probability=0.5, attempt_period=1, herald_delay=1, state=(1.0, 0.0, 0.0, 0.0))
    for a, b in [("a", "r"), ("r", "b")]:
        net.add_link(f"{a}-{b}", a, b, fresh)
    net.install_route("a-to-b", ["a", "r", "b"])
    circuit = net.open_circuit("a-to-b", "a", Protocol(scheme="swap-asap"))
    net.activate(circuit)
    sim.run(until=30_000)
    assert len(circuit.stats.delivery_ticks) == pytest.approx(30_000 / (8 / 3), rel=0.03)


def test_the_engine_is_compiled_where_a_compiler_is():
    # setup.py compiles the kernel and the engine with mypyc and falls back to pure Python quietly (a missing
    # compiler, or a type error mypy rejects): this catches the second case, which would cost 2.5-4x in speed
    import os
    import shutil

    from qfabric.network import ENGINE_BUILD

    if os.environ.get("QFABRIC_PURE_PYTHON"):
        pytest.skip("QFABRIC_PURE_PYTHON is set: installed as pure Python on purpose")
    if not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("no C compiler on this machine: the engine runs as pure Python")
    assert ENGINE_BUILD == "compiled", "setup.py did not compile the engine: pip install -v -e . shows why"
