"""The transaction a projector applies a batch in: begun with its commit mode in one round
trip, committed without waiting for the WAL flush, rolled back on any failure; and the
claim of its positions with the recording of its event ids in one statement, which must
decide exactly what a claim followed by a separate recording decides."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import asyncpg
import pytest

from consumers.applied_events import AppliedEvents, create_applied_events, record_new
from consumers.bookkeeping import ensure_bookkeeping
from consumers.positions import PostgresPositionStore
from hub.infra.db import create_pool, derived_transaction
from hub.infra.ports import TopicPartition
from schemas.errors import StoreError

pytestmark = pytest.mark.anyio

A = TopicPartition("agenthub.sessions", 0)
B = TopicPartition("agenthub.sessions", 1)
C = TopicPartition("agenthub.sessions", 2)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, max_size=4)
    try:
        async with pool.acquire() as conn:
            await ensure_bookkeeping(conn)
            await conn.execute("CREATE SCHEMA view; CREATE TABLE view.rows (x int)")
            await create_applied_events(conn, "view")
        yield pool
    finally:
        await pool.close()


async def _rows(pool: asyncpg.Pool) -> list[int]:
    return [r[0] for r in await pool.fetch("SELECT x FROM view.rows ORDER BY x")]


# ── derived_transaction ─────────────────────────────────────────────────────────────────


async def test_it_commits_without_waiting_for_the_flush_and_only_itself(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        async with derived_transaction(conn):
            assert conn.is_in_transaction()
            assert await conn.fetchval("SHOW synchronous_commit") == "off"
            await conn.execute("INSERT INTO view.rows VALUES (1)")
        assert not conn.is_in_transaction()
        assert await conn.fetchval("SHOW synchronous_commit") == "on"  # LOCAL: ends with it
    assert await _rows(pool) == [1]


async def test_a_failure_inside_rolls_everything_back(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(RuntimeError, match="the handler failed"):
            async with derived_transaction(conn):
                await conn.execute("INSERT INTO view.rows VALUES (1)")
                raise RuntimeError("the handler failed")
        assert not conn.is_in_transaction()
        await conn.execute("INSERT INTO view.rows VALUES (2)")  # the connection is usable
    assert await _rows(pool) == [2]


async def test_a_cancelled_batch_is_rolled_back(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        with anyio.move_on_after(0.2):
            async with derived_transaction(conn):
                await conn.execute("INSERT INTO view.rows VALUES (1)")
                await anyio.sleep(5)
        assert not conn.is_in_transaction()
    assert await _rows(pool) == []


async def test_a_commit_that_postgres_turns_into_a_rollback_raises(pool: asyncpg.Pool) -> None:
    """A statement that failed and was caught inside leaves the transaction aborted; its
    COMMIT then rolls back, which must not pass for a commit."""
    async with pool.acquire() as conn:
        with pytest.raises(StoreError, match="rolled back at commit") as raised:
            async with derived_transaction(conn):
                await conn.execute("INSERT INTO view.rows VALUES (1)")
                with pytest.raises(asyncpg.DivisionByZeroError):
                    await conn.execute("SELECT 1 / 0")
        assert raised.value.retriable
        assert not conn.is_in_transaction()
    assert await _rows(pool) == []


# ── claim_new: the claim and the dedupe in one statement ────────────────────────────────


def _ids(n: int) -> list[uuid.UUID]:
    return [uuid.uuid4() for _ in range(n)]


async def _claim_new(
    pool: asyncpg.Pool, starts: dict[TopicPartition, int], ids: list[tuple[Any, TopicPartition]]
) -> tuple[set[TopicPartition], dict[TopicPartition, int], set[Any]]:
    applied = AppliedEvents(pool, "view", window_s=None)
    positions = PostgresPositionStore(pool)
    async with pool.acquire() as conn, derived_transaction(conn):
        result = await applied.claim_new(conn, positions, "c", starts, ids)
        claimed = result[0]
        await positions.advance(conn, "c", {tp: starts[tp] + 10 for tp in claimed})
    return result


async def test_a_first_batch_claims_its_partitions_and_records_its_ids(pool: asyncpg.Pool) -> None:
    a, b = _ids(3), _ids(2)
    ids = [(e, A) for e in a] + [(e, B) for e in b]
    claimed, others, fresh = await _claim_new(pool, {A: 5, B: 0}, ids)
    assert (claimed, others, fresh) == ({A, B}, {}, set(a + b))
    assert await PostgresPositionStore(pool).all("c") == {A: 15, B: 10}


async def test_ids_applied_before_are_not_fresh_and_new_ones_are(pool: asyncpg.Pool) -> None:
    first = _ids(3)
    await _claim_new(pool, {A: 0}, [(e, A) for e in first])
    again = _ids(2)
    # the same events appended again (a re-sent spool batch) among new ones
    ids = [(first[0], A), (again[0], A), (first[2], B), (again[1], B)]
    claimed, others, fresh = await _claim_new(pool, {A: 10, B: 0}, ids)
    assert (claimed, others, fresh) == ({A, B}, {}, set(again))


async def test_a_stale_partitions_ids_are_neither_fresh_nor_recorded(pool: asyncpg.Pool) -> None:
    await _claim_new(pool, {A: 0, B: 0}, [])  # stored: A at 10, B at 10
    stale, live = _ids(2), _ids(2)
    ids = [(e, A) for e in stale] + [(e, B) for e in live]
    claimed, others, fresh = await _claim_new(pool, {A: 4, B: 10}, ids)
    assert (claimed, others, fresh) == ({B}, {A: 10}, set(live))
    # re-read from the stored position, the dropped batch's events are still new there
    claimed, _, fresh = await _claim_new(pool, {A: 10}, [(e, A) for e in stale])
    assert (claimed, fresh) == ({A}, set(stale))


async def test_a_batch_with_a_partition_never_stored_claims_it_and_records_once(
    pool: asyncpg.Pool,
) -> None:
    await _claim_new(pool, {A: 0}, [])
    old, new = _ids(2), _ids(2)
    ids = [(e, A) for e in old] + [(e, C) for e in new]
    claimed, others, fresh = await _claim_new(pool, {A: 10, C: 3}, ids)
    assert (claimed, others, fresh) == ({A, C}, {}, set(old + new))
    async with pool.acquire() as conn:
        assert await record_new(conn, "view", old + new) == set()  # each recorded, once
        assert await conn.fetchval("SELECT count(*) FROM view.applied_events") == 4


async def test_a_concurrent_claim_of_the_same_batch_waits_and_loses(pool: asyncpg.Pool) -> None:
    """Two instances holding the same batch: the second waits for the first's position
    lock, then sees the position moved, claims nothing and records nothing."""
    await _claim_new(pool, {A: 0}, [])
    ids = [(e, A) for e in _ids(3)]
    applied = AppliedEvents(pool, "view", window_s=None)
    positions = PostgresPositionStore(pool)
    results: list[Any] = []
    first_claimed = anyio.Event()

    async def first() -> None:
        async with pool.acquire() as conn, derived_transaction(conn):
            results.append(await applied.claim_new(conn, positions, "c", {A: 10}, ids))
            first_claimed.set()
            await anyio.sleep(0.3)  # the second is blocked meanwhile
            await positions.advance(conn, "c", {A: 13})

    async def second() -> None:
        await first_claimed.wait()
        async with pool.acquire() as conn, derived_transaction(conn):
            results.append(await applied.claim_new(conn, positions, "c", {A: 10}, ids))

    async with anyio.create_task_group() as tg:
        tg.start_soon(first)
        tg.start_soon(second)
    assert results[0] == ({A}, {}, {e for e, _ in ids})
    assert results[1] == (set(), {A: 13}, set())
