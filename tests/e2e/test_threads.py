"""The conversation store as a user meets it: a script writes through the SDK while
``agent-hub up`` serves; the HTTP API and ``agent-hub threads`` read and fork."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from hub.core.cursor import encode_cursor
from tests.e2e.conftest import agent_hub, local_api, python

pytestmark = pytest.mark.slow

SCRIPT = """
import anyio, json
from hub import Hub

async def main():
    async with Hub.connect() as hub:
        assert not hub.projectors  # `agent-hub up` serves this directory: it projects
        t = await hub.sessions.start_thread(agent_id="planner", user_id="ana", title="Lisbon")
        roles = ["user", "assistant"]
        ids = [await t.append(roles[i % 2], f"trip note {i} about the budget") for i in range(7)]
        await hub.wait_for_projections()
        print(json.dumps({"thread": t.thread_id, "ids": [str(i) for i in ids]}))

anyio.run(main)
"""


def test_threads_over_http_and_cli(up: tuple[str, subprocess.Popen[str], Path]) -> None:
    url, _, home = up
    api = local_api(url, home)
    run = python(SCRIPT, cwd=home, timeout=120)
    assert run.returncode == 0, run.stderr
    made = json.loads(run.stdout.strip().splitlines()[-1])
    thread, ids = made["thread"], made["ids"]

    listed = api.get("/v1/threads", params={"user_id": "ana", "limit": 10}).json()
    assert [t["thread_id"] for t in listed["threads"]] == [thread] and listed["next_cursor"] is None
    detail = api.get(f"/v1/threads/{thread}").json()
    assert detail["thread"]["title"] == "Lisbon" and detail["stats"]["message_count"] == 7

    page = api.get(f"/v1/threads/{thread}/messages", params={"limit": 3}).json()
    assert [m["seq"] for m in page["messages"]] == [5, 6, 7] and page["before"] == 5
    older = api.get(
        f"/v1/threads/{thread}/messages", params={"limit": 3, "before": page["before"]}
    ).json()
    assert [m["seq"] for m in older["messages"]] == [2, 3, 4]
    by_cursor = api.get(
        f"/v1/threads/{thread}/messages", params={"limit": 3, "cursor": page["next_cursor"]}
    ).json()
    assert by_cursor["messages"] == older["messages"]
    oldest = api.get(
        f"/v1/threads/{thread}/messages",
        params={"limit": 3, "cursor": by_cursor["next_cursor"]},
    ).json()
    assert [m["seq"] for m in oldest["messages"]] == [1] and oldest["next_cursor"] is None
    foreign = api.get(
        f"/v1/threads/{thread}/messages",
        params={"cursor": encode_cursor("threads", "2026-01-01T00:00:00+00:00", thread)},
    )
    assert foreign.status_code == 400 and foreign.json()["error"]["field"] == "cursor"

    forked = api.post(
        f"/v1/threads/{thread}/fork", json={"at_message_id": ids[2], "title": "cheaper"}
    )
    assert forked.status_code == 201, forked.text
    fork = forked.json()
    assert (fork["forked_from"], fork["fork_seq"], fork["message_count"]) == (thread, 3, 3)
    tree = api.get(f"/v1/threads/{fork['thread_id']}/tree").json()
    assert tree["thread_id"] == thread and [c["thread_id"] for c in tree["children"]] == [
        fork["thread_id"]
    ]

    hits = api.get("/v1/search", params={"q": "budgets", "user_id": "ana"}).json()["hits"]
    assert len(hits) == 7 and all(h["thread_id"] == thread for h in hits)

    missing = api.get("/v1/threads/nope")
    assert missing.status_code == 404 and missing.json()["error"] == {
        "type": "NotFoundError",
        "message": "no thread 'nope'",
        "field": None,
    }
    bad = api.post(f"/v1/threads/{thread}/fork", json={"at_message": ids[0]})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "at_message"
    foreign = api.post(
        f"/v1/threads/{thread}/fork",
        json={"at_message_id": "0190b2a0-0000-7000-8000-000000000001"},
    )
    assert foreign.status_code == 404 and "is not in thread" in foreign.json()["error"]["message"]
    assert api.get("/v1/search", params={"q": ""}).status_code == 400

    shown = agent_hub("threads", "show", thread, "--limit", "2", cwd=home)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == [
        "# Lisbon  (7 messages)",
        "[6] assistant: trip note 5 about the budget",
        "[7] user: trip note 6 about the budget",
    ]
    cli_fork = agent_hub("threads", "fork", thread, "--at", ids[0], "--title", "cli", cwd=home)
    assert cli_fork.returncode == 0, cli_fork.stderr
    names = agent_hub("threads", "list", "--user", "ana", cwd=home).stdout
    assert cli_fork.stdout.strip() in names and thread in names
    found = agent_hub("threads", "search", "note", "--user", "ana", cwd=home).stdout
    assert len(found.splitlines()) == 7
    nope = agent_hub("threads", "show", "missing", cwd=home)
    assert nope.returncode == 1 and nope.stderr.strip() == "agent-hub: error: no thread 'missing'"
