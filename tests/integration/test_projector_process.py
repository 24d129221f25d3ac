"""``run_projectors="process"``: a hub runs its projectors in a child process it owns. Its
reads see its writes, the child stops with it, a child that dies makes the hub fail, and
a hub that dies (SIGKILL) leaves no child behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import anyio
import pytest

from hub import Hub
from hub.settings import HubSettings
from schemas.errors import HubError

pytestmark = pytest.mark.anyio


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")


def _child_of(hub: Hub) -> int:
    children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()
    found = [
        int(pid)
        for pid in children
        if b"hub.cli\x00project" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    assert len(found) == 1, f"expected one projector process, found {found}"
    return found[0]


@pytest.mark.parametrize("backend", ["postgres", "kafka"])
async def test_reads_see_writes_projected_in_the_child(hub_settings: HubSettings) -> None:
    settings = hub_settings.model_copy(update={"run_projectors": "process"})
    async with Hub(settings) as hub:
        assert hub.projectors == []  # none in this process
        child = _child_of(hub)
        thread = await hub.sessions.start_thread(agent_id="agent")
        await hub.sessions.append(thread.thread_id, role="user", content="hello")
        messages = await hub.sessions.messages(thread.thread_id)
        assert [m.text for m in messages] == ["hello"]
    assert not _alive(child)  # stopped with the hub


@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_child_that_dies_makes_the_hub_fail(hub_settings: HubSettings) -> None:
    settings = hub_settings.model_copy(update={"run_projectors": "process"})
    with pytest.raises(BaseException) as failed:  # an exception group: checked below
        async with Hub(settings) as hub:
            os.kill(_child_of(hub), signal.SIGKILL)
            await anyio.sleep(30)  # cancelled when the hub fails
    group = failed.value
    assert isinstance(group, BaseExceptionGroup), group
    matched, _ = group.split(HubError)
    assert matched is not None
    assert "the projector process" in str(matched.exceptions[0])
    assert "exited with -9" in str(matched.exceptions[0])


@pytest.mark.parametrize("backend", ["postgres"])
def test_a_killed_hub_leaves_no_projector_process(hub_settings: HubSettings) -> None:
    settings = hub_settings.model_copy(update={"run_projectors": "process"})
    script = textwrap.dedent(
        """
        import os, sys, anyio
        from pathlib import Path
        from hub import Hub
        from hub.settings import HubSettings

        async def main():
            settings = HubSettings.model_validate_json(sys.argv[1])
            async with Hub(settings):
                me = os.getpid()
                children = Path(f"/proc/{me}/task/{me}/children").read_text().split()
                print("children:", *children, flush=True)
                await anyio.sleep(600)

        anyio.run(main)
        """
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", script, settings.model_dump_json()],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert owner.stdout is not None
        line = owner.stdout.readline()
        while line and not line.startswith("children:"):  # (its logs go there too)
            line = owner.stdout.readline()
        children = [int(pid) for pid in line.split()[1:]]
        assert len(children) == 1, children
        assert _alive(children[0])
    finally:
        owner.kill()  # SIGKILL: the hub cannot stop its child itself
        owner.wait()
    deadline = time.monotonic() + 30
    while _alive(children[0]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(children[0]), "the projector process outlived its hub"
