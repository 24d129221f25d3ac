"""The README opens with exactly the two commands, and CI runs the second."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_starts_with_exactly_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    block = text.split("```bash\n", 1)[1].split("```", 1)[0].strip().splitlines()
    assert text.index("```bash") < text.index("## ")
    assert len(block) == 2
    up, tests = block
    assert up.startswith("python3.11 -m venv .venv && ") and up.endswith("agent-hub up")
    assert tests.startswith("python3.11 -m venv .venv && ") and tests.endswith("-m pytest")


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'grep -m1 -- "-m pytest" README.md' in ci and "set -euo pipefail" in ci
