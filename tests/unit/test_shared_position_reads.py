"""Read-your-writes waiters share one read of positions per change, and never take a
read that started before the change they saw."""

from __future__ import annotations

from typing import Any, cast

import anyio
import pytest

from consumers.positions import PositionWatcher, SharedPositionReads
from hub.infra.ports import PositionStore, TopicPartition

pytestmark = pytest.mark.anyio

TP = TopicPartition("agenthub.sessions", 0)


class GatedStore:
    """Answers each read with its number, once the test opens the gate."""

    def __init__(self) -> None:
        self.calls = 0
        self.gate = anyio.Event()

    async def of_consumers(self, consumers: Any) -> dict[tuple[str, TopicPartition], int]:
        self.calls += 1
        n = self.calls
        await self.gate.wait()
        return {("proj_sessions_v1", TP): n}


class Watcher:
    generation = 0


def shared(store: GatedStore, watcher: Watcher) -> SharedPositionReads:
    return SharedPositionReads(
        cast(PositionStore, store), cast(PositionWatcher, watcher), ["proj_sessions_v1"]
    )


async def test_waiters_of_one_change_share_one_read() -> None:
    store, watcher = GatedStore(), Watcher()
    reads = shared(store, watcher)
    got: list[int] = []

    async def waiter() -> None:
        got.append((await reads.since(0))[("proj_sessions_v1", TP)])

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(waiter)
        await anyio.sleep(0.05)
        store.gate.set()
    assert store.calls == 1 and reads.reads == 1 and got == [1] * 20


async def test_a_read_from_before_the_change_a_waiter_saw_is_not_taken() -> None:
    store, watcher = GatedStore(), Watcher()
    reads = shared(store, watcher)
    results: dict[str, int] = {}

    async def early() -> None:
        results["early"] = (await reads.since(0))[("proj_sessions_v1", TP)]

    async def late() -> None:
        results["late"] = (await reads.since(1))[("proj_sessions_v1", TP)]

    async with anyio.create_task_group() as tg:
        tg.start_soon(early)
        await anyio.sleep(0.05)  # the first read is in flight
        watcher.generation = 1  # a change is notified
        tg.start_soon(late)
        await anyio.sleep(0.05)
        store.gate.set()
    assert store.calls == 2 and results == {"early": 1, "late": 2}


async def test_when_the_reader_is_cancelled_the_others_read_again() -> None:
    store, watcher = GatedStore(), Watcher()
    reads = shared(store, watcher)
    got: list[int] = []

    async def starter(scope: anyio.CancelScope) -> None:
        with scope:
            await reads.since(0)

    async def joiner() -> None:
        got.append((await reads.since(0))[("proj_sessions_v1", TP)])

    async with anyio.create_task_group() as tg:
        scope = anyio.CancelScope()
        tg.start_soon(starter, scope)
        await anyio.sleep(0.02)  # its read is in flight
        tg.start_soon(joiner)
        tg.start_soon(joiner)
        await anyio.sleep(0.02)
        scope.cancel()  # the read the joiners wait on ends without a result
        await anyio.sleep(0.02)
        store.gate.set()
    assert got == [2, 2] and store.calls == 2  # not a CancelledError: one read again
