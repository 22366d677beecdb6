"""Every Python block of docs/python-api.md runs as written from the repository's root and prints something."""

import contextlib
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "python-api.md"
BLOCKS = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)


def test_the_guide_has_its_examples():
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize("code", BLOCKS, ids=[block.splitlines()[0][:40] for block in BLOCKS])
def test_a_block_of_the_guide_runs(code, monkeypatch):
    if "import pandas" in code:
        pytest.importorskip("pandas", reason="the pandas block needs pandas (a dev dependency)")
    monkeypatch.chdir(ROOT)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, str(GUIDE), "exec"), {"__name__": "guide"})
    assert printed.getvalue().strip(), "every block prints what it shows"
