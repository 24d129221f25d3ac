"""One contract for every PositionStore (today: ``hub.positions`` in Postgres): where each
consumer has got to, moved in the caller's transaction with the rows it wrote."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from consumers.bookkeeping import ensure_bookkeeping
from consumers.positions import PostgresPositionStore
from hub.infra.db import create_pool
from hub.infra.ports import PositionStore, TopicPartition

pytestmark = pytest.mark.anyio

A = TopicPartition("agenthub.registry", 0)
B = TopicPartition("agenthub.registry", 1)


@pytest.fixture(params=["postgres"])
async def pool_and_store(
    request: pytest.FixtureRequest, database_url: str
) -> AsyncIterator[tuple[asyncpg.Pool, PositionStore]]:
    pool = await create_pool(database_url)
    try:
        async with pool.acquire() as conn:
            await ensure_bookkeeping(conn)
        yield pool, PostgresPositionStore(pool)
    finally:
        await pool.close()


async def _in_tx(pool: asyncpg.Pool, fn: Any) -> Any:
    async with pool.acquire() as conn, conn.transaction():
        return await fn(conn)


async def test_nothing_stored_at_first(pool_and_store: tuple[asyncpg.Pool, PositionStore]) -> None:
    _, store = pool_and_store
    assert await store.load("c", [A, B]) == {}
    assert await store.all("c") == {}
    assert await store.of_consumers(["c"]) == {}
    assert await store.stats("c") == dict.fromkeys(
        ("applied", "duplicates", "dead_lettered", "batches"), 0
    )


async def test_claim_then_advance(pool_and_store: tuple[asyncpg.Pool, PositionStore]) -> None:
    pool, store = pool_and_store
    # a partition never stored is claimed wherever its first batch starts
    claimed, others = await _in_tx(pool, lambda tx: store.claim(tx, "c", {A: 5, B: 0}))
    assert claimed == {A, B} and others == {}
    await _in_tx(pool, lambda tx: store.advance(tx, "c", {A: 8, B: 2}, applied=5))
    assert await store.load("c", [A, B]) == {A: 8, B: 2}
    assert await store.stats("c") == {
        "applied": 5,
        "duplicates": 0,
        "dead_lettered": 0,
        "batches": 1,
    }
    # a batch that does not start at the stored position is not claimed
    claimed, others = await _in_tx(pool, lambda tx: store.claim(tx, "c", {A: 5, B: 2}))
    assert claimed == {B} and others == {A: 8}


async def test_a_rolled_back_advance_leaves_nothing(
    pool_and_store: tuple[asyncpg.Pool, PositionStore],
) -> None:
    pool, store = pool_and_store
    await _in_tx(pool, lambda tx: store.claim(tx, "c", {A: 0}))

    async def fail(tx: asyncpg.Connection) -> None:
        await store.advance(tx, "c", {A: 10}, applied=10)
        raise RuntimeError("the batch failed")

    with pytest.raises(RuntimeError):
        await _in_tx(pool, fail)
    assert await store.all("c") == {A: 0}
    assert (await store.stats("c"))["applied"] == 0


async def test_rewind_lock_forget_and_hand_over(
    pool_and_store: tuple[asyncpg.Pool, PositionStore],
) -> None:
    pool, store = pool_and_store
    await _in_tx(pool, lambda tx: store.claim(tx, "live", {A: 0, B: 0}))
    await _in_tx(pool, lambda tx: store.advance(tx, "live", {A: 7, B: 3}, applied=10))
    await _in_tx(pool, lambda tx: store.rewind(tx, "live", {A: 2}))
    assert await _in_tx(pool, lambda tx: store.lock_all(tx, "live")) == {A: 2, B: 3}

    await _in_tx(pool, lambda tx: store.claim(tx, "shadow", {A: 0, B: 0}))
    await _in_tx(pool, lambda tx: store.advance(tx, "shadow", {A: 9, B: 4}, applied=13))
    assert await store.of_consumers(["live", "shadow"]) == {
        ("live", A): 2,
        ("live", B): 3,
        ("shadow", A): 9,
        ("shadow", B): 4,
    }
    await _in_tx(pool, lambda tx: store.hand_over(tx, "shadow", "live"))
    assert await store.all("live") == {A: 9, B: 4}
    assert await store.all("shadow") == {}
    assert (await store.stats("live"))["applied"] == 13

    await _in_tx(pool, lambda tx: store.forget(tx, "live"))
    assert await store.all("live") == {}
    assert (await store.stats("live"))["batches"] == 0
