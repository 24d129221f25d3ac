"""API keys as an operator uses them (issue 12): ``agent-hub up`` on loopback makes an
owner-only local admin key, ``agent-hub keys`` creates, lists and revokes keys, a server
on a public address refuses to start before any key exists, and every file under the
local directory is owner-only."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import agent_hub, free_port, local_api, start_up, user_env
from tests.support.procs import children

pytestmark = pytest.mark.slow


def _private(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


def test_keys_create_list_revoke_against_a_running_server(
    up: tuple[str, subprocess.Popen[str], Path],
) -> None:
    url, _, home = up
    local = home / ".agent_hub" / "api_key"
    assert local.read_text().startswith("ahk_") and _private(local)
    admin = local_api(url, home)
    assert admin.get("/v1/keys").json()["keys"][0]["name"] == "local admin (agent-hub up)"

    made = agent_hub(
        "keys", "create", "--tenant", "acme", "--role", "writer", "--name", "ci", cwd=home
    )
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("ahk_") and "not shown again" in made.stderr
    writer = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"})
    started = writer.post("/v1/threads", json={"agent_id": "bot", "thread_id": "t"})
    assert started.status_code == 201, started.text
    assert writer.get("/v1/threads/t").status_code == 200
    assert admin.get("/v1/threads/t").status_code == 404  # the local key is another tenant's
    assert writer.get("/v1/keys").status_code == 403

    listed = agent_hub("keys", "list", "--tenant", "acme", cwd=home)
    assert listed.returncode == 0, listed.stderr
    (row,) = listed.stdout.splitlines()[1:]
    key_id, tenant, role, name, _, last_used, revoked = row.split("\t")
    assert (tenant, role, name, revoked) == ("acme", "writer", "ci", "-")
    assert last_used != "-"  # the server wrote its use
    assert key_id in token

    gone = agent_hub("keys", "revoke", key_id, "--reason", "leaked", cwd=home)
    assert gone.returncode == 0, gone.stderr
    deadline = time.monotonic() + 10  # the server trusts a lookup for HUB_API_KEY_CACHE_S
    while writer.get("/v1/threads/t").status_code != 401:
        assert time.monotonic() < deadline, "the revoked key still works"
        time.sleep(0.2)
    assert agent_hub("keys", "revoke", "0123456789abcdef", cwd=home).returncode == 1

    for path in (home / ".agent_hub").rglob("*"):
        if path.is_file() and "pg" not in path.relative_to(home / ".agent_hub").parts[:1]:
            assert _private(path), path
    mode = stat.S_IMODE((home / ".agent_hub").stat().st_mode)
    # owner-only; as root, the user pgserver runs Postgres as may traverse it (not list it)
    assert mode & 0o066 == 0 and (mode & 0o077 == 0 or os.geteuid() == 0), oct(mode)


def test_a_public_address_needs_a_key_first(tmp_path: Path) -> None:
    port = free_port()
    refused = agent_hub("up", "--host", "0.0.0.0", "--port", str(port), cwd=tmp_path)
    assert refused.returncode == 1
    assert "refusing to listen on 0.0.0.0" in refused.stderr
    assert not (tmp_path / ".agent_hub" / "api_key").exists()  # no local key off loopback

    made = agent_hub("keys", "create", "--role", "admin", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "up", "--host", "0.0.0.0", "--port", str(port)],
        cwd=tmp_path,
        env=user_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.3)
        key = {"Authorization": f"Bearer {made.stdout.strip()}"}
        assert httpx.get(f"{url}/v1/agents", headers=key).status_code == 200
        assert httpx.get(f"{url}/v1/agents").status_code == 401
        other_name = httpx.get(f"{url}/v1/agents", headers=key | {"host": "attacker.example"})
        assert other_name.status_code == 400
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_api_workers_share_the_port_and_read_your_writes_across_them(tmp_path: Path) -> None:
    """``up --api-workers 2``: two API processes; a write's ``X-Hub-Position`` passed back
    as ``X-Hub-Read-After`` makes whichever worker answers the read wait for it."""
    port = free_port()
    # HUB_URL (a client's setting, here pointing nowhere) does not make a server remote
    (tmp_path / ".env").write_text("HUB_URL=http://127.0.0.1:9\n")
    proc = start_up(tmp_path, port, "--api-workers", "2", env={"HUB_URL": "http://127.0.0.1:9"})
    try:
        api = local_api(f"http://127.0.0.1:{port}", tmp_path)
        assert api.post("/v1/threads", json={"agent_id": "a", "thread_id": "t"}).status_code == 201
        for i in range(30):
            written = api.post(
                "/v1/threads/t/messages", json={"messages": [{"role": "user", "content": f"m{i}"}]}
            )
            assert written.status_code == 201, written.text
            position = written.headers["x-hub-position"]
            assert position.startswith("agenthub.sessions:")
            read = api.get(
                "/v1/threads/t/messages",
                params={"limit": 1},
                headers={"X-Hub-Read-After": position},
            )
            assert [m["text"] for m in read.json()["messages"]] == [f"m{i}"]
        bad = api.get("/v1/threads/t/messages", headers={"X-Hub-Read-After": "nonsense"})
        assert bad.status_code == 400 and bad.json()["error"]["field"] == "X-Hub-Read-After"
        workers = subprocess.run(
            ["pgrep", "-f", "hub.http.worker"], capture_output=True, text=True
        ).stdout.split()
        assert len(workers) >= 2
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert proc.returncode == 0


def test_projector_processes_share_the_partitions_and_a_dead_one_stops_the_server(
    tmp_path: Path,
) -> None:
    """``up --workers 2``: a second process runs the projectors too, every write is
    projected once between them, and when that process dies the server stops with an
    error naming it (never silently projecting half the partitions)."""
    port = free_port()
    proc = start_up(tmp_path, port, "--workers", "2", "--api-workers", "2")
    try:
        helpers = children(proc.pid, "hub.cli project")
        assert len(helpers) == 1
        api = local_api(f"http://127.0.0.1:{port}", tmp_path)
        for i in range(60):
            put = api.put(f"/v1/agents/agent-{i:02d}", json={"description": f"d{i}"})
            assert put.status_code in (200, 201), put.text
        deadline = time.monotonic() + 60
        while True:
            agents = api.get("/v1/agents", params={"limit": 1000}).json()["agents"]
            if len(agents) == 60 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert sorted(a["agent_id"] for a in agents) == [f"agent-{i:02d}" for i in range(60)]
        assert {a["revision"] for a in agents} == {1}
        os.kill(helpers[0], signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert f"a projector process (pid {helpers[0]}) exited with -9" in out
