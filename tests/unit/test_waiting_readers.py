"""WaitingReaders: a reader waiting for a projection ends its projector's linger, and no
linger starts while one waits."""

from __future__ import annotations

import anyio
import pytest

from consumers.readers import WaitingReaders

pytestmark = pytest.mark.anyio


async def test_waiting_readers_end_a_linger_and_prevent_the_next() -> None:
    readers = WaitingReaders()
    ended = anyio.Event()

    async def linger() -> None:
        await readers.linger("proj_x", 600)
        ended.set()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(linger)
            await anyio.sleep(0.05)
            assert not ended.is_set()
            with readers.waiting(["proj_y"]):  # another projection's reader: no effect
                await anyio.sleep(0.05)
                assert not ended.is_set()
            with readers.waiting(["proj_x", "proj_y"]):
                await ended.wait()
                assert readers.is_waited_for("proj_x")
                assert not await readers.linger("proj_x", 600)  # at once while one waits
                with readers.waiting(["proj_x"]):
                    pass
                assert readers.is_waited_for("proj_x")  # nested readers counted
        assert not readers.is_waited_for("proj_x")
        assert not readers.is_waited_for("proj_y")
