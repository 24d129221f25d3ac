"""User memory as a user meets it: a script remembers facts through the SDK while
``agent-hub up`` serves; ``agent-hub memory`` and the HTTP API read, change and erase
them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import agent_hub, local_api, python

pytestmark = pytest.mark.slow

SCRIPT = """
import anyio
from hub import Hub

async def main():
    async with Hub.connect() as hub:
        await hub.memory.set("alice", "city", "Lisbon", category="places")
        await hub.memory.set("alice", "languages", ["pt", "en"])
        await hub.wait_for_projections()

anyio.run(main)
"""


def test_memory_from_the_sdk_the_cli_and_http(up: tuple[str, subprocess.Popen[str], Path]) -> None:
    url, _, home = up
    api = local_api(url, home)
    done = python(SCRIPT, cwd=home, timeout=120)
    assert done.returncode == 0, done.stderr

    listed = agent_hub("memory", "list", "alice", cwd=home)
    assert listed.returncode == 0, listed.stderr
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert [(r[0], json.loads(r[1]), r[2]) for r in rows] == [
        ("city", "Lisbon", "places"),
        ("languages", ["pt", "en"], ""),
    ]
    changed = agent_hub("memory", "set", "alice", "city", "Porto", "--category", "places", cwd=home)
    assert changed.returncode == 0, changed.stderr
    fact = api.get("/v1/users/alice/memory/city").json()
    assert fact["value"] == "Porto" and fact["category"] == "places"
    history = api.get("/v1/users/alice/memory/city/history").json()["versions"]
    assert [v["value"] for v in history] == ["Lisbon", "Porto"]
    shown = agent_hub("memory", "history", "alice", "city", cwd=home)
    assert [json.loads(line.split("\t")[1]) for line in shown.stdout.splitlines()] == [
        "Lisbon",
        "Porto",
    ]
    put = api.put("/v1/users/alice/memory/drink", json={"value": "tea"})
    assert put.status_code == 200 and put.json()["value"] == "tea"
    assert agent_hub("memory", "get", "alice", "drink", cwd=home).stdout.strip() == '"tea"'

    erased = agent_hub("memory", "erase", "alice", cwd=home)
    assert erased.returncode == 0, erased.stderr
    assert api.get("/v1/users/alice/memory").json() == {"facts": []}
    assert api.get("/v1/users/alice/memory/city/history").json() == {"versions": []}
    missing = agent_hub("memory", "get", "alice", "city", cwd=home)
    assert missing.returncode != 0 and "has no fact 'city'" in missing.stderr
