"""A projector's commit notifies the positions it stored, so a reader waiting for its
writes learns it may read without reading the positions table; positions that move any
other way (a rewind, a forget, a hand-over) make readers read them again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest

from consumers.bookkeeping import ensure_bookkeeping
from consumers.positions import PositionWatcher, PostgresPositionStore
from hub import Hub
from hub.infra.db import create_pool
from hub.infra.ports import TopicPartition
from hub.settings import HubSettings

pytestmark = pytest.mark.anyio

A = TopicPartition("agenthub.sessions", 0)
B = TopicPartition("agenthub.sessions", 1)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url)
    try:
        async with pool.acquire() as conn:
            await ensure_bookkeeping(conn)
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def watcher(database_url: str) -> AsyncIterator[PositionWatcher]:
    watcher = PositionWatcher(database_url)
    await watcher.start()
    try:
        yield watcher
    finally:
        await watcher.stop()


async def _in_tx(pool: asyncpg.Pool, fn: Any) -> Any:
    async with pool.acquire() as conn, conn.transaction():
        return await fn(conn)


async def _next_change(watcher: PositionWatcher, action: Any) -> None:
    """Run ``action`` and wait for the notification of its commit."""
    changed = watcher.changed()
    await action()
    with anyio.fail_after(5):
        await changed.wait()


def _of(watcher: PositionWatcher, consumer: str) -> dict[TopicPartition, int]:
    return {tp: o for (c, tp), o in watcher.latest.items() if c == consumer}


async def test_the_watcher_learns_positions_from_their_commits_and_forgets_moved_ones(
    pool: asyncpg.Pool, watcher: PositionWatcher
) -> None:
    store = PostgresPositionStore(pool)

    async def advance(consumer: str, positions: dict[TopicPartition, int]) -> None:
        await _in_tx(pool, lambda tx: store.claim(tx, consumer, dict.fromkeys(positions, 0)))
        await _in_tx(pool, lambda tx: store.advance(tx, consumer, positions, applied=1))

    await _next_change(watcher, lambda: advance("c", {A: 5, B: 9}))
    await _next_change(watcher, lambda: advance("d", {A: 3}))
    assert _of(watcher, "c") == {A: 5, B: 9} and _of(watcher, "d") == {A: 3}

    await _next_change(watcher, lambda: _in_tx(pool, lambda tx: store.rewind(tx, "c", {A: 2})))
    assert _of(watcher, "c") == {} and _of(watcher, "d") == {A: 3}  # read c's again

    await _next_change(watcher, lambda: advance("shadow", {A: 7}))
    hand_over = _in_tx(pool, lambda tx: store.hand_over(tx, "shadow", "d"))
    await _next_change(watcher, lambda: hand_over)
    with anyio.fail_after(5):
        while _of(watcher, "shadow") or _of(watcher, "d"):
            await anyio.sleep(0.01)  # the second notification of the hand-over
    assert await store.all("d") == {A: 7}

    await _next_change(watcher, lambda: advance("d", {A: 8}))
    assert _of(watcher, "d") == {A: 8}
    await _next_change(watcher, lambda: _in_tx(pool, lambda tx: store.forget(tx, "d")))
    assert _of(watcher, "d") == {}


async def test_positions_too_many_for_a_notification_are_read_instead(
    pool: asyncpg.Pool, watcher: PositionWatcher
) -> None:
    """NOTIFY takes 8,000 bytes at most: a batch storing more names only its consumer,
    and commits as any other."""
    store = PostgresPositionStore(pool)
    many = {TopicPartition("agenthub." + "t" * 200, p): 10 + p for p in range(60)}
    await _in_tx(pool, lambda tx: store.claim(tx, "wide", dict.fromkeys(many, 0)))
    await _next_change(
        watcher, lambda: _in_tx(pool, lambda tx: store.advance(tx, "wide", many, applied=60))
    )
    assert _of(watcher, "wide") == {}
    assert await store.all("wide") == many


async def test_a_reader_woken_by_the_commit_does_not_read_positions(
    hub_settings: HubSettings, tmp_path: Path
) -> None:
    """Append then read, many times: each read waits for the projector once. It used to
    read the positions before waiting and again when woken; the notification of the
    commit now says what the second read said."""
    settings = hub_settings.model_copy(
        update={"run_projectors": "always", "archive_url": (tmp_path / "blobs").as_uri()}
    )
    async with Hub.connect(settings) as hub:
        thread = await hub.sessions.start_thread(agent_id="a")
        await thread.messages()
        reads = hub.runtime.position_reads
        assert reads is not None
        before, rounds = reads.reads, 20
        for i in range(rounds):
            await thread.append("user", f"message {i}")
            assert [m.text for m in await thread.messages(limit=1)] == [f"message {i}"]
    assert reads.reads - before <= rounds
