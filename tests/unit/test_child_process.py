"""``ChildProcess``: a child stops when its lifeline (stdin) ends, gets SIGTERM if it does
not, and one that exits on its own is an error its owner sees."""

from __future__ import annotations

import os
import sys
import time

import pytest

import hub.infra.child as child_module
from hub.infra.child import ChildProcess
from schemas.errors import HubError

pytestmark = pytest.mark.anyio

LIFELINE_CHILD = """
import anyio
from hub.infra.child import wait_for_lifeline_end
anyio.run(wait_for_lifeline_end)
"""


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


async def test_a_child_stops_when_its_lifeline_ends() -> None:
    env = {"PYTHONPATH": os.pathsep.join(sys.path)}
    child = ChildProcess(_python(LIFELINE_CHILD), env, "a child")
    await child.start()
    started = time.monotonic()
    await child.stop()
    await child.stop()  # idempotent
    await child.watch()  # stopped by its owner: no error
    assert time.monotonic() - started < child_module.LIFELINE_GRACE_S  # no SIGTERM needed


async def test_a_child_that_ignores_its_lifeline_gets_sigterm(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(child_module, "LIFELINE_GRACE_S", 0.2)
    child = ChildProcess(_python("import time; time.sleep(60)"), {}, "a sleeper")
    await child.start()
    started = time.monotonic()
    await child.stop()
    assert time.monotonic() - started < 10


async def test_a_child_exiting_on_its_own_is_an_error() -> None:
    child = ChildProcess(_python("raise SystemExit(3)"), {}, "the helper")
    await child.start()
    with pytest.raises(HubError, match=r"the helper \(pid \d+\) exited with 3"):
        await child.watch()
    await child.stop()


async def test_watching_a_child_never_started_is_an_error() -> None:
    with pytest.raises(HubError, match="not started"):
        await ChildProcess(_python("pass"), {}, "the helper").watch()
    await ChildProcess(_python("pass"), {}, "the helper").stop()  # nothing to stop
