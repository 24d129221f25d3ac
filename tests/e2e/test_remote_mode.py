"""Remote mode as a user on another machine meets it (issue 12): ``agent-hub up`` serves,
and a separate process holding only ``HUB_URL`` and ``HUB_API_KEY`` (no database, no
log, an empty directory) runs the README's Python examples and the Agent Hub seed's
Quick Start unchanged; what it wrote is read back through the server."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import agent_hub, local_api, python, user_env
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
