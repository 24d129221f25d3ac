"""Every Python example in README.md runs as pasted, on the embedded defaults, in a fresh
directory of a user who configured nothing (regression for issue 11, finding 9)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import python

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)
SHELL_BLOCKS = re.findall(r"```sh\n(.*?)```", README, re.S)


def test_the_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 5


@pytest.mark.slow
def test_every_python_example_runs_as_pasted(tmp_path: Path) -> None:
    for i, code in enumerate(BLOCKS):  # in order, in one directory, as a reader would
        done = python(code, cwd=tmp_path, timeout=300)
        assert done.returncode == 0, f"README python block {i + 1} failed:\n{done.stderr[-3000:]}"


@pytest.mark.slow
def test_every_shell_example_runs_against_agent_hub_up(
    up: tuple[str, subprocess.Popen[str], Path],
) -> None:
    """The ``sh`` examples (curl with the local key) against ``agent-hub up``, as pasted
    but for the port this test's server listens on."""
    url, _, home = up
    assert SHELL_BLOCKS
    for i, code in enumerate(SHELL_BLOCKS):
        script = code.replace("http://127.0.0.1:8000", url)
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=home,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"README sh block {i + 1} failed:\n{done.stdout}{done.stderr}"
    assert "hello over HTTP" in done.stdout
