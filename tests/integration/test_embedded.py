"""The embedded Postgres: shared by every process using a home, stopped by the last."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from hub.infra.embedded import EmbeddedPostgres, prune_dead_handles

pytestmark = pytest.mark.anyio


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_prune_keeps_the_living(tmp_path: Path) -> None:
    import os

    (tmp_path / ".handle_pids.json").write_text(json.dumps([os.getpid(), _dead_pid()]))
    assert len(prune_dead_handles(tmp_path)) == 1
    assert json.loads((tmp_path / ".handle_pids.json").read_text()) == [os.getpid()]
    assert prune_dead_handles(tmp_path / "nothing-here") == []


async def test_a_killed_user_does_not_keep_the_server_alive(tmp_path: Path) -> None:
    """Regression (issue 11, finding 5): after a SIGKILL the dead pid stayed in pgserver's
    list, so the embedded server was never stopped, even after a clean exit."""
    home = tmp_path / "home"
    pg = EmbeddedPostgres(home)
    await pg.start()
    handles = home / "pg" / ".handle_pids.json"
    pids = json.loads(handles.read_text())
    handles.write_text(json.dumps([*pids, _dead_pid()]))  # a user that was SIGKILLed
    assert (home / "pg" / "postmaster.pid").exists()
    await pg.stop()
    assert not (home / "pg" / "postmaster.pid").exists()  # the last live user stopped it


async def test_a_hub_restarts_its_embedded_postgres_when_it_dies(tmp_path: Path) -> None:
    """Regression (issue 11, finding 4): ``agent-hub up`` never restarted an embedded
    Postgres that died; writes and reads failed until a person restarted everything."""
    import os
    import signal

    import anyio

    from hub import Hub
    from hub.settings import HubSettings

    settings = HubSettings.model_validate(
        {"home": tmp_path / "home", "run_projectors": "always", "spool_retry_s": 0.5}
    )
    async with Hub.connect(settings) as hub:
        await hub.registry.register("before")
        embedded = hub.runtime.embedded
        assert embedded is not None and embedded.is_running()
        pid = int((tmp_path / "home" / "pg" / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        with anyio.fail_after(60):
            while not embedded.is_running():
                await anyio.sleep(0.2)
            while True:  # the pool reconnects to the restarted server
                try:
                    await hub.registry.register("after")
                    agent = await hub.registry.get("after")
                except Exception:
                    await anyio.sleep(0.5)
                    continue
                if agent is not None:
                    break
                await anyio.sleep(0.5)
        assert await hub.registry.get("before") is not None
