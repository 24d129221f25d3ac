"""A LangGraph ``StateGraph`` chat agent with ``HubCheckpointSaver`` (issue 14): two turns
in one process (sync ``invoke``), then in another (async ``ainvoke``) the restored state,
a third turn, ``get_state_history`` and a fork from an earlier checkpoint with
``update_state``: all as LangGraph's own ``InMemorySaver`` gives them in one process. The
conversation also shows in ``hub.sessions`` (read and search)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import run_module

pytestmark = pytest.mark.timeout(600)


def _run(action: str, directory: Path) -> str:
    return run_module("tests.support.langgraph_run", action, str(directory))


def _result(out: str) -> dict[str, Any]:
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 1, out[-3000:]
    found: dict[str, Any] = json.loads(lines[0].removeprefix("RESULT "))
    return found


def test_a_langgraph_agent_restored_in_a_new_process(tmp_path: Path) -> None:
    theirs = _result(_run("memory", tmp_path / "memory"))
    _run("write", tmp_path / "hub")
    ours = _result(_run("read", tmp_path / "hub"))

    assert theirs["restored"] == [
        "hello",
        "Hello! Where to?",
        "Where should I go?",
        "Lisbon, in spring.",
    ]
    assert theirs["fork"][-2:] == ["Actually, somewhere sunny?", "Seville, it is sunny."]
    assert len(theirs["main_still"]) == 6 and len(theirs["history"]) == 9
    for key in ("restored", "third_turn", "history", "fork", "main_still"):
        assert ours[key] == theirs[key], key

    # the conversation as hub.sessions shows it: every message, the fork's too, in order
    texts = [*theirs["third_turn"], *theirs["fork"][-2:]]
    roles = ["user", "assistant"] * 4
    assert ours["sessions"] == [list(pair) for pair in zip(roles, texts, strict=True)]
    assert ours["search"] == ["trip-planner"]
