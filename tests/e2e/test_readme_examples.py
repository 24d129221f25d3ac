"""Every Python example in README.md runs as pasted, on the embedded defaults, in a fresh
directory of a user who configured nothing (regression for issue 11, finding 9)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.conftest import python

ROOT = Path(__file__).resolve().parents[2]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_the_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 5


@pytest.mark.slow
def test_every_python_example_runs_as_pasted(tmp_path: Path) -> None:
    for i, code in enumerate(BLOCKS):  # in order, in one directory, as a reader would
        done = python(code, cwd=tmp_path, timeout=300)
        assert done.returncode == 0, f"README python block {i + 1} failed:\n{done.stderr[-3000:]}"
