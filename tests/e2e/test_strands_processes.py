"""Strands written in one process and restored in another (issue 14): a real ``Agent``,
a ``Swarm`` and a ``Graph`` (scripted models, no network) with ``HubSessionManager`` on
embedded defaults restore exactly what the same run restores with Strands' own
``FileSessionManager``: messages, agent state, conversation-manager state and the
multi-agent states."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import run_module

pytestmark = pytest.mark.timeout(600)


def _run(action: str, store: str, directory: Path) -> str:
    return run_module("tests.support.strands_run", action, store, str(directory))


def _restored(store: str, directory: Path) -> dict[str, Any]:
    _run("write", store, directory)
    out = _run("read", store, directory)
    lines = [line for line in out.splitlines() if line.startswith("RESTORED ")]
    assert len(lines) == 1, out[-3000:]
    restored: dict[str, Any] = json.loads(lines[0].removeprefix("RESTORED "))
    return restored


def test_restored_in_a_new_process_as_strands_own_store_restores(tmp_path: Path) -> None:
    theirs = _restored("file", tmp_path / "file")
    ours = _restored("hub", tmp_path / "hub")
    assert len(theirs["messages"]) == 4 and theirs["state"] == {"city": "Lisbon"}
    assert theirs["swarm"]["node_history"] == ["writer"]
    assert theirs["graph"]["execution_order"] == ["research", "report"]
    for key in ("messages", "state", "conversation_manager", "swarm", "graph"):
        assert ours[key] == theirs[key], key
