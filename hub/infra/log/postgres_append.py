"""Appending to the Postgres log: group commit in one statement, the outbox.

Concurrent appends queue; whoever holds the write lock writes everything queued
meanwhile. When each caller's records go to one partition (every batch of one thread's
messages does), all the partitions are appended with one autocommitted statement (lock
them in order, allocate the offsets, insert, notify): one round trip and one WAL flush
however many partitions the callers wrote to. A caller writing to several partitions makes the batch
one transaction: the partitions' rows are locked in a fixed order, the records go in as
one binary COPY (:mod:`hub.infra.log.copy_rows`), then NOTIFY.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import attrgetter

import anyio
import asyncpg

from hub.infra.db import translate_log_errors
from hub.infra.log.copy_rows import COLUMNS as COPY_COLUMNS
from hub.infra.log.copy_rows import RecordRow, copy_payload
from hub.infra.log.partitioner import partition_for
from hub.infra.log.postgres_group import append_channel
from hub.infra.log.postgres_tail import notify_payload
from hub.infra.ports import Headers, Position, ProducerRecord, TopicPartition
from schemas.errors import LogError

__all__ = ["Appender"]

_TOPIC_AND_KEY = attrgetter("topic", "key")

ALLOCATE_ONE = """
UPDATE {s}.partitions SET next_offset = next_offset + $3
WHERE topic = $1 AND partition = $2
RETURNING next_offset - $3
"""
LOCK_MANY = """
SELECT topic, partition FROM {s}.partitions
WHERE (topic, partition) IN (SELECT * FROM unnest($1::text[], $2::int[]))
ORDER BY topic, partition
FOR UPDATE
"""
ALLOCATE_MANY = """
UPDATE {s}.partitions p SET next_offset = p.next_offset + u.n
FROM unnest($1::text[], $2::int[], $3::bigint[]) AS u (topic, partition, n)
WHERE p.topic = u.topic AND p.partition = u.partition
RETURNING p.topic, p.partition, p.next_offset - u.n
"""
NOTIFY = "SELECT pg_notify($1, $2)"
APPEND_TO_PARTITION = """
WITH allocated AS (
    UPDATE {s}.partitions SET next_offset = next_offset + $3
    WHERE topic = $1 AND partition = $2
    RETURNING next_offset - $3 AS base
), stored AS (
    INSERT INTO {s}.records
        (topic, partition, "offset", key, value, header_keys, header_values, ts)
    SELECT $1, $2, a.base + r.i - 1, r.key, r.value,
           ($6::text[])[r.first:r.last], ($7::bytea[])[r.first:r.last], $10
    FROM allocated a,
         unnest($4::bytea[], $5::bytea[], $8::int[], $9::int[])
             WITH ORDINALITY AS r (key, value, first, last, i)
)
SELECT a.base, pg_notify($11, $1 || '|' || $2::text || ':' || (a.base + $3)::text)
FROM allocated a
"""
"""One partition's records of a group commit (the usual case of one agent at a time):
as :data:`APPEND_TO_PARTITIONS`, without its locking step and join, which cost this
case about 0.4 ms a statement."""
APPEND_TO_PARTITIONS = """
WITH parts AS (
    SELECT * FROM unnest($1::text[], $2::int[], $3::int[], $4::text[]) WITH ORDINALITY
        AS u (topic, partition, n, channel, j)
), locked AS MATERIALIZED (
    SELECT p.topic, p.partition FROM {s}.partitions p
    JOIN parts u ON p.topic = u.topic AND p.partition = u.partition
    ORDER BY p.topic, p.partition
    FOR UPDATE OF p
), allocated AS (
    UPDATE {s}.partitions p SET next_offset = p.next_offset + u.n
    FROM parts u
    WHERE p.topic = u.topic AND p.partition = u.partition
      AND (SELECT count(*) FROM locked) = cardinality($1::text[])
    RETURNING u.j, u.topic, u.partition, u.n, u.channel, p.next_offset - u.n AS base
), stored AS (
    INSERT INTO {s}.records
        (topic, partition, "offset", key, value, header_keys, header_values, ts)
    SELECT a.topic, a.partition, a.base + r.k - 1, r.key, r.value,
           ($9::text[])[r.first:r.last], ($10::bytea[])[r.first:r.last], $11
    FROM unnest($5::bigint[], $6::int[], $7::bytea[], $8::bytea[], $12::int[], $13::int[])
        AS r (j, k, key, value, first, last)
    JOIN allocated a ON a.j = r.j
)
SELECT a.j, a.base,
       pg_notify(a.channel, a.topic || '|' || a.partition::text || ':' || (a.base + a.n)::text)
FROM allocated a
"""
"""Every partition's records of a group commit in one autocommitted statement: the
partitions' rows locked in a fixed order (as :data:`LOCK_MANY` does) before any is
updated, the offsets allocated, the records stored and each partition's new end
notified. Nothing is written unless every partition is known."""


@dataclass
class _Append:
    """One caller's records, waiting for (or done by) a group commit."""

    records: Sequence[ProducerRecord]
    done: bool = False
    positions: list[Position] | None = None
    error: BaseException | None = None


class Appender:
    """Appends records to the log's tables (schema ``schema``)."""

    def __init__(
        self,
        schema: str,
        pool: Callable[[], asyncpg.Pool],
        partitions: Callable[[str], int],
    ) -> None:
        self._schema = schema
        self._pool = pool
        self._partitions = partitions  # a known topic's partition count
        self._queue: list[_Append] = []
        self._write_lock = anyio.Lock()
        self._sql = {
            name: sql.format(s=schema)
            for name, sql in {
                "allocate_one": ALLOCATE_ONE,
                "append_to_partition": APPEND_TO_PARTITION,
                "append_to_partitions": APPEND_TO_PARTITIONS,
                "lock_many": LOCK_MANY,
                "allocate_many": ALLOCATE_MANY,
            }.items()
        }

    async def append(self, records: Sequence[ProducerRecord]) -> list[Position]:
        """Append records; concurrent appends share one transaction (group commit).

        Whoever holds the write lock writes everything queued meanwhile, so many small
        concurrent appends cost one round of statements, not one each. The write is
        shielded: a cancelled caller cannot roll back the others' records.
        """
        if not records:
            return []
        request = _Append(records)
        self._queue.append(request)
        async with self._write_lock:
            if not request.done:
                batch, self._queue = self._queue, []
                with anyio.CancelScope(shield=True):
                    await self._write(batch)
        if request.error is not None:
            raise request.error
        assert request.positions is not None
        return request.positions

    async def _write(self, batch: list[_Append]) -> None:
        """Every partition's appends in one autocommitted statement (all or none), each
        partition's records in the order the callers gave them, whatever partitions one
        caller's records go to (a checkpoint and its new messages: two topics)."""
        by_partition: dict[TopicPartition, list[ProducerRecord]] = {}
        partition_of: dict[tuple[str, bytes], TopicPartition] = {}
        spots: list[list[tuple[TopicPartition, int]]] = []  # per request: each record's place
        for request in batch:
            places = []
            for rec in request.records:
                tp = partition_of.get((rec.topic, rec.key))
                if tp is None:
                    tp = partition_of[(rec.topic, rec.key)] = self._partition_of(rec.topic, rec.key)
                records = by_partition.setdefault(tp, [])
                places.append((tp, len(records)))
                records.append(rec)
            spots.append(places)
        try:
            with translate_log_errors("cannot append to the Postgres log"):
                async with self._pool().acquire() as conn:
                    bases = await self._write_partitions(conn, by_partition)
        except BaseException as exc:
            for request in batch:
                request.error, request.done = exc, True
            return
        for request, places in zip(batch, spots, strict=True):
            request.positions = [
                Position(tp.topic, tp.partition, bases[tp] + i) for tp, i in places
            ]
            request.done = True

    def _partition_of(self, topic: str, key: bytes) -> TopicPartition:
        return TopicPartition(topic, partition_for(key, self._partitions(topic)))

    async def _write_partitions(
        self, conn: asyncpg.Connection, by_partition: Mapping[TopicPartition, list[ProducerRecord]]
    ) -> dict[TopicPartition, int]:
        """Store each partition's records, in order; each partition's first offset."""
        tps = list(by_partition)
        parts, ordinals, keys, values, firsts, lasts = [], [], [], [], [], []
        header_keys: list[str] = []
        header_values: list[bytes] = []
        spans: dict[Headers, tuple[int, int]] = {}
        for j, tp in enumerate(tps, start=1):
            for k, rec in enumerate(by_partition[tp], start=1):
                span = spans.get(rec.headers)
                if span is None:  # each distinct header set once; a record names its slice
                    span = spans[rec.headers] = (
                        len(header_keys) + 1,
                        len(header_keys) + len(rec.headers),
                    )
                    header_keys += [hk for hk, _ in rec.headers]
                    header_values += [hv for _, hv in rec.headers]
                parts.append(j)
                ordinals.append(k)
                keys.append(rec.key)
                values.append(rec.value)
                firsts.append(span[0])
                lasts.append(span[1])
        if len(tps) == 1:
            (tp,) = tps
            base = await conn.fetchval(
                self._sql["append_to_partition"],
                tp.topic,
                tp.partition,
                len(keys),
                keys,
                values,
                header_keys,
                header_values,
                firsts,
                lasts,
                datetime.now(UTC),
                append_channel(tp.topic),
            )
            if base is None:
                raise LogError(f"unknown partition {tp}", retriable=False)
            return {tp: base}
        rows = await conn.fetch(
            self._sql["append_to_partitions"],
            [tp.topic for tp in tps],
            [tp.partition for tp in tps],
            [len(by_partition[tp]) for tp in tps],
            [append_channel(tp.topic) for tp in tps],
            parts,
            ordinals,
            keys,
            values,
            header_keys,
            header_values,
            datetime.now(UTC),
            firsts,
            lasts,
        )
        if len(rows) < len(tps):
            raise LogError(f"unknown partition among {', '.join(map(str, tps))}", retriable=False)
        return {tps[j - 1]: base for j, base, _ in rows}

    async def append_in(
        self, conn: asyncpg.Connection, records: Sequence[ProducerRecord]
    ) -> list[Position]:
        """Append inside the caller's transaction (the partitions stay locked until it ends)."""
        groups: dict[TopicPartition, list[int]] = {}
        for i, rec in enumerate(records):
            tp = TopicPartition(rec.topic, partition_for(rec.key, self._partitions(rec.topic)))
            groups.setdefault(tp, []).append(i)
        bases = await self._allocate(conn, {tp: len(ix) for tp, ix in groups.items()})
        positions: list[Position | None] = [None] * len(records)
        rows: list[RecordRow] = []
        for tp, indexes in groups.items():
            offset = bases[tp]
            for i in indexes:
                rec = records[i]
                rows.append((tp.topic, tp.partition, offset, rec.key, rec.value, rec.headers))
                positions[i] = Position(tp.topic, tp.partition, offset)
                offset += 1
        await conn.copy_to_table(
            "records",
            # a memoryview: asyncpg would take bytes for a file path
            source=memoryview(copy_payload(rows, datetime.now(UTC))),
            schema_name=self._schema,
            columns=COPY_COLUMNS,
            format="binary",
        )
        ends: dict[str, dict[int, int]] = {}
        for tp, indexes in groups.items():
            ends.setdefault(tp.topic, {})[tp.partition] = bases[tp] + len(indexes)
        for topic, topic_ends in ends.items():
            await conn.execute(NOTIFY, append_channel(topic), notify_payload(topic, topic_ends))
        return [p for p in positions if p is not None]

    async def _allocate(
        self, conn: asyncpg.Connection, counts: Mapping[TopicPartition, int]
    ) -> dict[TopicPartition, int]:
        if len(counts) == 1:
            ((tp, n),) = counts.items()
            base = await conn.fetchval(self._sql["allocate_one"], tp.topic, tp.partition, n)
            if base is None:
                raise LogError(f"unknown partition {tp}", retriable=False)
            return {tp: base}
        tps = sorted(counts)
        topics = [tp.topic for tp in tps]
        parts = [tp.partition for tp in tps]
        await conn.fetch(self._sql["lock_many"], topics, parts)  # row locks in a fixed order
        rows = await conn.fetch(
            self._sql["allocate_many"], topics, parts, [counts[tp] for tp in tps]
        )
        bases = {TopicPartition(r[0], r[1]): r[2] for r in rows}
        missing = set(tps) - set(bases)
        if missing:
            raise LogError(f"unknown partitions {sorted(map(str, missing))}", retriable=False)
        return bases
