"""Consumer positions in Postgres, written in the same transaction as the read models.

``claim`` locks a consumer's position rows for the partitions in a batch. It returns the
partitions whose stored position is exactly where the batch starts. A batch that starts
anywhere else was already applied, or belongs to another instance that moved first; it
is dropped and re-read from the stored position. ``advance`` stores the new positions in
the same transaction, so a crash at any instant loses nothing and duplicates nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import asyncpg

from hub.infra.db import translate_errors
from hub.infra.ports import EventLog, PositionStore, TopicPartition

__all__ = [
    "CHANNEL",
    "CLAIM_LOCK",
    "PositionWatcher",
    "PostgresPositionStore",
    "SharedPositionReads",
    "partitions_of",
    "split_claimed",
]

CHANNEL = "hub_positions"

LOAD = """
SELECT topic, partition, next_offset FROM hub.positions
WHERE consumer = $1 AND (topic, partition) IN (SELECT * FROM unnest($2::text[], $3::int[]))
"""
CLAIM_INSERT = """
INSERT INTO hub.positions (consumer, topic, partition, next_offset)
SELECT $1, * FROM unnest($2::text[], $3::int[], $4::bigint[])
ON CONFLICT (consumer, topic, partition) DO NOTHING
"""
CLAIM_LOCK = """
SELECT topic, partition, next_offset FROM hub.positions
WHERE consumer = $1 AND (topic, partition) IN (SELECT * FROM unnest($2::text[], $3::int[]))
ORDER BY topic, partition
FOR UPDATE
"""
ADVANCE = """
WITH advanced AS (
    UPDATE hub.positions p SET next_offset = u.next_offset, updated_at = now()
    FROM unnest($2::text[], $3::int[], $4::bigint[]) AS u (topic, partition, next_offset)
    WHERE p.consumer = $1 AND p.topic = u.topic AND p.partition = u.partition
), counted AS (
    INSERT INTO hub.consumer_stats AS s (consumer, applied, duplicates, dead_lettered, batches)
    VALUES ($1, $5, $6, $7, 1)
    ON CONFLICT (consumer) DO UPDATE SET
        applied = s.applied + EXCLUDED.applied,
        duplicates = s.duplicates + EXCLUDED.duplicates,
        dead_lettered = s.dead_lettered + EXCLUDED.dead_lettered,
        batches = s.batches + 1,
        updated_at = now()
)
SELECT pg_notify($8, CASE WHEN octet_length(n.payload) <= 7000 THEN n.payload ELSE $1 END)
FROM (SELECT $1 || '|' || array_to_string(ARRAY(
    SELECT u.topic || ':' || u.partition || ':' || u.next_offset
    FROM unnest($2::text[], $3::int[], $4::bigint[]) AS u (topic, partition, next_offset)
), ',') AS payload) n
"""
"""Positions, counts and the notification ``consumer|topic:partition:next_offset,...``
(just ``consumer`` where that would not fit a NOTIFY's 8,000 bytes)."""
NOTIFY_MOVED = "SELECT pg_notify($2, $1)"
"""``consumer``'s positions moved some other way than forward (a rewind, a hand-over)."""
STATS = (
    "SELECT applied, duplicates, dead_lettered, batches FROM hub.consumer_stats WHERE consumer = $1"
)
ALL_FOR = "SELECT topic, partition, next_offset FROM hub.positions WHERE consumer = $1"
OF_CONSUMERS = """
SELECT consumer, topic, partition, next_offset FROM hub.positions
WHERE consumer = ANY($1::text[])
"""
SET = """
INSERT INTO hub.positions (consumer, topic, partition, next_offset)
SELECT $1, * FROM unnest($2::text[], $3::int[], $4::bigint[])
ON CONFLICT (consumer, topic, partition) DO UPDATE
SET next_offset = EXCLUDED.next_offset, updated_at = now()
"""
LOCK_CONSUMERS = """
SELECT 1 FROM hub.positions WHERE consumer = ANY($1::text[]) ORDER BY consumer FOR UPDATE
"""
FORGET = (
    "DELETE FROM hub.positions WHERE consumer = $1",
    "DELETE FROM hub.consumer_stats WHERE consumer = $1",
)
RENAME = (
    "UPDATE hub.positions SET consumer = $2 WHERE consumer = $1",
    "UPDATE hub.consumer_stats SET consumer = $2 WHERE consumer = $1",
)
LOCK_ALL_FOR = ALL_FOR + " ORDER BY topic, partition FOR UPDATE"


class PositionWatcher:
    """Wakes waiters whenever a consumer stores positions (LISTEN ``hub_positions``).

    Take :meth:`changed` *before* reading positions, then wait on it: a change that lands
    in between has already set it, so no change is ever missed.
    """

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._conn: asyncpg.Connection | None = None
        self._event = anyio.Event()
        self.generation = 0
        """How many changes were notified (read with :meth:`changed`, in the same step)."""
        self.latest: dict[tuple[str, TopicPartition], int] = {}
        """Positions as the notifications of their commits named them (a position is
        committed by the time its notification arrives). A consumer whose positions moved
        otherwise, or were not named, is left out: read its positions."""

    async def start(self) -> None:
        if self._conn is None:
            with translate_errors("cannot listen for position changes"):
                conn = await asyncpg.connect(self.dsn, timeout=10)
                await conn.add_listener(CHANNEL, self._notified)
            self._conn = conn

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self._learn(payload)
        event, self._event = self._event, anyio.Event()
        self.generation += 1
        event.set()

    def _learn(self, payload: str) -> None:
        consumer, _, named = payload.partition("|")
        try:
            for item in named.split(",") if named else ():
                topic, partition, offset = item.rsplit(":", 2)
                self.latest[(consumer, TopicPartition(topic, int(partition)))] = int(offset)
            if named:
                return
        except ValueError:
            pass  # not a payload of ours: forget what we knew of the consumer
        self.latest = {k: v for k, v in self.latest.items() if k[0] != consumer}

    def changed(self) -> anyio.Event:
        """An event set at the next position change."""
        if self._conn is not None and self._conn.is_closed():
            self._conn = None  # reconnected by the next start(); waiters fall back to polling
            self.latest = {}  # notifications may be missed meanwhile
        return self._event

    async def stop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            await conn.close(timeout=5)


@dataclass
class _Read:
    generation: int  # the watcher's generation when the read started
    done: anyio.Event = field(default_factory=anyio.Event)
    result: dict[tuple[str, TopicPartition], int] | None = None


class SharedPositionReads:
    """Reads of the projections' positions for read-your-writes, shared: a waiter woken by
    a change joins the read in flight if it started no earlier than the change the waiter
    saw (its ``generation``), else starts one. Each notification used to cost one read
    per waiting reader; now it costs one read."""

    def __init__(
        self, store: PositionStore, watcher: PositionWatcher, consumers: Sequence[str]
    ) -> None:
        self._store = store
        self._watcher = watcher
        self._consumers = sorted(set(consumers))
        self._inflight: _Read | None = None
        self.reads = 0

    async def since(self, generation: int) -> dict[tuple[str, TopicPartition], int]:
        """Every projection's positions, read after change ``generation`` was notified."""
        while True:
            read = self._inflight
            if read is not None and read.generation >= generation:
                await read.done.wait()
                if read.result is not None:
                    return read.result
                continue  # that read failed or was cancelled: read again
            read = self._inflight = _Read(self._watcher.generation)
            try:
                self.reads += 1
                read.result = await self._store.of_consumers(self._consumers)
                return read.result
            finally:
                read.done.set()
                if self._inflight is read:
                    self._inflight = None


async def partitions_of(log: EventLog, topics: Iterable[str]) -> list[TopicPartition]:
    """Every partition of ``topics``, in order."""
    return [
        TopicPartition(str(t), p) for t in topics for p in range(await log.partitions_for(str(t)))
    ]


def split_claimed(
    rows: Iterable[Sequence[Any]], starts: Mapping[TopicPartition, int]
) -> tuple[set[TopicPartition], dict[TopicPartition, int]]:
    """``CLAIM_LOCK``'s rows as (partitions stored at ``starts[tp]``, stored positions of
    the others)."""
    claimed: set[TopicPartition] = set()
    others: dict[TopicPartition, int] = {}
    for topic, partition, stored in rows:
        tp = TopicPartition(topic, partition)
        if stored == starts[tp]:
            claimed.add(tp)
        else:
            others[tp] = stored
    return claimed, others


def _split(tps: Sequence[TopicPartition]) -> tuple[list[str], list[int]]:
    return [tp.topic for tp in tps], [tp.partition for tp in tps]


class PostgresPositionStore:
    """``PositionStore`` over ``hub.positions``."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def load(self, consumer: str, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        """Stored positions of ``consumer`` for ``tps`` (absent: never stored)."""
        topics, parts = _split(tps)
        with translate_errors(f"cannot load positions of {consumer}"):
            rows = await self.pool.fetch(LOAD, consumer, topics, parts)
        return {TopicPartition(r[0], r[1]): r[2] for r in rows}

    @staticmethod
    async def lock_all(tx: asyncpg.Connection, consumer: str) -> dict[TopicPartition, int]:
        """Lock every stored position of ``consumer`` in the caller's transaction (a batch
        of that consumer waits until it ends) and return them."""
        rows = await tx.fetch(LOCK_ALL_FOR, consumer)
        return {TopicPartition(r[0], r[1]): r[2] for r in rows}

    async def all(self, consumer: str) -> dict[TopicPartition, int]:
        with translate_errors(f"cannot load positions of {consumer}"):
            rows = await self.pool.fetch(ALL_FOR, consumer)
        return {TopicPartition(r[0], r[1]): r[2] for r in rows}

    async def of_consumers(self, consumers: Sequence[str]) -> dict[tuple[str, TopicPartition], int]:
        """Stored positions of several consumers, keyed by (consumer, partition)."""
        with translate_errors("cannot load positions"):
            rows = await self.pool.fetch(OF_CONSUMERS, list(consumers))
        return {(r[0], TopicPartition(r[1], r[2])): r[3] for r in rows}

    @staticmethod
    async def rewind(
        tx: asyncpg.Connection, consumer: str, positions: Mapping[TopicPartition, int]
    ) -> None:
        """Store ``positions`` for ``consumer`` whatever they were (a rewind), in ``tx``."""
        tps = sorted(positions)
        topics, parts = _split(tps)
        await tx.execute(SET, consumer, topics, parts, [positions[tp] for tp in tps])
        await tx.execute(NOTIFY_MOVED, consumer, CHANNEL)

    @staticmethod
    async def forget(tx: asyncpg.Connection, consumer: str) -> None:
        """Drop every position and count of ``consumer`` (a dropped shadow or version)."""
        for sql in FORGET:
            await tx.execute(sql, consumer)
        await tx.execute(NOTIFY_MOVED, consumer, CHANNEL)

    @staticmethod
    async def hand_over(tx: asyncpg.Connection, source: str, target: str) -> None:
        """Give ``source``'s positions and counts to ``target`` (whose own are dropped),
        both locked first, in the caller's transaction (a rebuild's swap)."""
        await tx.execute(LOCK_CONSUMERS, [source, target])
        await PostgresPositionStore.forget(tx, target)
        for sql in RENAME:
            await tx.execute(sql, source, target)
        for consumer in (source, target):
            await tx.execute(NOTIFY_MOVED, consumer, CHANNEL)

    async def claim(
        self, tx: asyncpg.Connection, consumer: str, starts: Mapping[TopicPartition, int]
    ) -> tuple[set[TopicPartition], dict[TopicPartition, int]]:
        """Lock positions; return (partitions whose stored position is ``starts[tp]``,
        stored positions of the others).

        A partition never stored before is claimed at whatever offset its first batch
        starts (the log's beginning, which retention may have moved past 0).
        """
        tps = sorted(starts)
        topics, parts = _split(tps)
        rows = await tx.fetch(CLAIM_LOCK, consumer, topics, parts)
        if len(rows) < len(tps):  # a partition's first batch: store it, then lock them all
            await tx.execute(CLAIM_INSERT, consumer, topics, parts, [starts[tp] for tp in tps])
            rows = await tx.fetch(CLAIM_LOCK, consumer, topics, parts)
        return split_claimed(rows, starts)

    async def advance(
        self,
        tx: asyncpg.Connection,
        consumer: str,
        positions: Mapping[TopicPartition, int],
        *,
        applied: int = 0,
        duplicates: int = 0,
        dead_lettered: int = 0,
    ) -> None:
        """Store ``positions`` (next offsets to read) in the caller's transaction, and
        count what the batch did (so counts are exactly-once too)."""
        if not positions:
            return
        tps = list(positions)
        topics, parts = _split(tps)
        offsets = [positions[tp] for tp in tps]
        await tx.execute(  # one statement: positions, counts and the notification
            ADVANCE, consumer, topics, parts, offsets, applied, duplicates, dead_lettered, CHANNEL
        )

    async def stats(self, consumer: str) -> dict[str, int]:
        """Events applied, duplicates skipped, dead letters and batches, over all time."""
        with translate_errors(f"cannot load stats of {consumer}"):
            row = await self.pool.fetchrow(STATS, consumer)
        keys = ("applied", "duplicates", "dead_lettered", "batches")
        return dict(zip(keys, row, strict=True)) if row else dict.fromkeys(keys, 0)
