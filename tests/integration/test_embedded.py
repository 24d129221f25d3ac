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
