"""Remote mode as a user on another machine meets it (issue 12): ``agent-hub up`` serves,
and a separate process holding only ``HUB_URL`` and ``HUB_API_KEY`` (no database, no
log, an empty directory) runs the README's Python examples and the Agent Hub seed's
Quick Start unchanged; what it wrote is read back through the server."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import agent_hub, free_port, local_api, python, start_up, user_env
from tests.e2e.test_readme_examples import BLOCKS
from tests.e2e.test_seed import CHECK, QUICK_START

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _remote_env(url: str, home: Path, tenant: str, role: str = "writer") -> dict[str, str]:
    made = agent_hub(
        "keys", "create", "--tenant", tenant, "--role", role, "--name", "remote e2e", cwd=home
    )
    assert made.returncode == 0, made.stderr
    return {**user_env(), "HUB_URL": url, "HUB_API_KEY": made.stdout.strip()}


def test_readme_examples_and_the_seed_quick_start_run_remotely(
    up: tuple[str, subprocess.Popen[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    url, _, home = up
    env = readme_env = _remote_env(url, home, "readme-reader")
    elsewhere = tmp_path_factory.mktemp("another-machine")
    for i, code in enumerate(BLOCKS):
        done = python(code, cwd=elsewhere, env=env, timeout=300)
        assert done.returncode == 0, f"README block {i + 1} failed remotely:\n{done.stderr[-3000:]}"
    assert not (elsewhere / ".agent_hub" / "pg").exists()  # no database here: all over HTTP

    env = _remote_env(url, home, "seed-user")  # a tenant of its own: nothing shared
    seed_dir = tmp_path_factory.mktemp("seed-user")
    (seed_dir / ".env").write_text("USE_S3=false\n")
    for _ in range(2):  # twice, as the seed's users run it: idempotent
        done = python(QUICK_START, cwd=seed_dir, env=env, timeout=300)
        assert done.returncode == 0, done.stderr[-4000:]
    checked = python(CHECK, cwd=seed_dir, env=env, timeout=300)
    assert checked.returncode == 0, checked.stderr[-4000:]
    state = json.loads(checked.stdout.strip().splitlines()[-1])
    assert state["agent"]["description"] == "My awesome agent"
    assert state["agent"]["revision"] == 1 and state["agent"]["run_count"] == 2
    assert state["current"] == "You are a helpful assistant." and state["versions"] == ["v1"]
    assert [r[1:] for r in state["runs"]] == [["success", "v1"], ["success", "v1"]]
    # the artifacts went to the server's archive, not this machine's
    assert state["artifacts"][0].startswith((home / ".agent_hub").resolve().as_uri())

    api = local_api(url, home)
    for used, runs in ((env, 2), (readme_env, 1)):  # each tenant sees its own agent
        key = {"Authorization": f"Bearer {used['HUB_API_KEY']}"}
        assert api.get("/v1/agents/my-agent", headers=key).json()["run_count"] == runs
    assert api.get("/v1/agents/my-agent").status_code == 404  # the local admin's tenant


WRITER = """
import anyio, json, pathlib, sys
from hub import Hub

N = int(sys.argv[1])

async def main() -> None:
    async with Hub.connect() as hub:
        thread = await hub.sessions.start_thread(agent_id="offline", thread_id="offline-thread")
        for i in range(N):
            await thread.append("user", f"message {i:04d}")  # queued, sent or spooled
            if i == N // 3:
                await hub.flush()
                pathlib.Path("progress").write_text("stop the server now")
                while not pathlib.Path("stopped").exists():  # the rest while it is down
                    await anyio.sleep(0.05)
            await anyio.sleep(0.002)
    print(json.dumps({"spooled": hub.context.producer.spooled}))

anyio.run(main)
"""


def test_remote_writes_while_the_server_is_down_are_synced_exactly_once(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    server_dir = tmp_path_factory.mktemp("server")
    client_dir = tmp_path_factory.mktemp("client")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_up(server_dir, port)
    try:
        env = _remote_env(url, server_dir, "offline-tenant")
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, "300"],
            cwd=client_dir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 120
        while not (client_dir / "progress").exists():
            assert writer.poll() is None, writer.communicate()[1][-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        server.send_signal(signal.SIGTERM)  # the server stops mid-stream
        server.wait(timeout=60)
        (client_dir / "stopped").write_text("")
        out, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err[-3000:]
        assert json.loads(out.strip().splitlines()[-1])["spooled"] >= 1
        assert list((client_dir / ".agent_hub" / "spool").glob("*.batch"))

        server = start_up(server_dir, port)  # back
        synced = agent_hub("sync", cwd=client_dir, env=env)
        assert synced.returncode == 0, synced.stderr
        assert not list((client_dir / ".agent_hub" / "spool").glob("*.batch"))
        again = agent_hub("sync", cwd=client_dir, env=env)  # nothing left: nothing twice
        assert again.returncode == 0, again.stderr

        key = {"Authorization": f"Bearer {env['HUB_API_KEY']}"}
        page = httpx.get(
            f"{url}/v1/threads/offline-thread/messages", params={"limit": 1000}, headers=key
        ).json()
        texts = [m["text"] for m in page["messages"]]
        assert texts == [f"message {i:04d}" for i in range(300)]  # each once, in order
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_operators_run_operations_on_a_remote_hub(
    up: tuple[str, subprocess.Popen[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """``agent-hub verify|replay|rebuild|dlq`` with ``HUB_URL``: jobs on the server, run
    with an admin key of its own tenant; another tenant's admin key is refused."""
    url, _, home = up
    laptop = tmp_path_factory.mktemp("operator-laptop")
    writer = _remote_env(url, home, "default")
    wrote = python(
        "from hub.registry import AgentRegistry\n"
        "r = AgentRegistry()\n"
        "for n in range(5): r.register(f'ops-{n}', description='x')\n",
        cwd=laptop,
        env=writer,
        timeout=300,
    )
    assert wrote.returncode == 0, wrote.stderr[-3000:]
    operator = _remote_env(url, home, "default", role="admin")  # the hub's own tenant

    verified = agent_hub("verify", "registry", cwd=laptop, env=operator, timeout=300)
    assert verified.returncode == 0, verified.stderr
    rows = dict(line.split("\t")[:3:2] for line in verified.stdout.splitlines())
    assert rows["agents"] == "same", verified.stdout
    replayed = agent_hub(
        "replay", "--projection", "registry", "--reset", cwd=laptop, env=operator, timeout=300
    )
    assert replayed.returncode == 0 and "caught up" in replayed.stdout, replayed.stderr
    rebuilt = agent_hub(
        "rebuild", "registry", "--grace", "0", cwd=laptop, env=operator, timeout=300
    )
    assert rebuilt.returncode == 0 and "swapped in" in rebuilt.stdout, rebuilt.stderr
    assert agent_hub("dlq", "list", cwd=laptop, env=operator).returncode == 0
    listed = agent_hub("agents", "list", cwd=laptop, env=writer)
    assert all(f"ops-{n}" in listed.stdout for n in range(5)), listed.stdout

    tenant_admin = _remote_env(url, home, "another-team", role="admin")
    refused = agent_hub("verify", "registry", cwd=laptop, env=tenant_admin)
    assert refused.returncode != 0 and "own tenant" in refused.stderr, refused.stderr
