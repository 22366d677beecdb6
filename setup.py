"""Compile the event kernel and the network engine with mypyc when installing (the same typed Python source, as C).

Without a C compiler, or with QFABRIC_PURE_PYTHON=1, qfabric installs as pure Python and runs the same engine
about 2.5x slower (``qfabric run`` reports which one ran). Everything else is configured in pyproject.toml.
"""

import os

from setuptools import setup

COMPILED = [
    "src/qfabric/sim/kernel.py",
    "src/qfabric/network/models.py",
    "src/qfabric/network/circuit.py",
    "src/qfabric/network/engine.py",
]


def ext_modules() -> list:
    if os.environ.get("QFABRIC_PURE_PYTHON"):
        return []
    try:
        from mypyc.build import mypycify

        # mypy checks the compiled modules only; third-party types (numpy) are not needed to compile them
        flags = ["--follow-imports=silent", "--ignore-missing-imports"]
        return mypycify([*flags, *COMPILED], opt_level="3", debug_level="0", group_name="qfabric_engine")
    except (Exception, SystemExit) as error:  # no compiler, or mypy rejects a type: build pure Python instead
        print(f"qfabric: not compiling the network engine ({error}); it will run as pure Python")
        return []


setup(ext_modules=ext_modules())
