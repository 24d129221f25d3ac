"""The Postgres log: the embedded and small-deployment ``EventLog``.

Records live in ``hub_log.records`` keyed by ``(topic, partition, offset)``. An append
takes the row lock of each partition it writes (``UPDATE ... next_offset``) until it
commits, so offsets have no gaps (an aborted append rolls its allocation back) and commit
in offset order: a reader that sees offset N also sees every offset before it, and a
tailing consumer never skips a record that committed late. Appends NOTIFY the channel
``hub_log``, and consumers wait on it instead of polling. Keys map to partitions with
Kafka's murmur2 partitioner, so a key lands on the same partition on both backends.
Group membership (partitions shared among a group's members) is in
:mod:`hub.infra.log.postgres_group`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import asyncpg
import structlog

from hub.infra.db import create_pool, redact, translate_log_errors
from hub.infra.lifecycle import Lifecycle
from hub.infra.log.copy_rows import COLUMNS as COPY_COLUMNS
from hub.infra.log.copy_rows import RecordRow, copy_payload
from hub.infra.log.partitioner import partition_for
from hub.infra.log.postgres_group import CHANNEL, PostgresConsumer
from hub.infra.ports import (
    Headers,
    LogConsumer,
    Position,
    ProducerRecord,
    RebalanceListener,
    TopicPartition,
)
from schemas.errors import LogError

__all__ = ["PostgresLog"]

log = structlog.get_logger(__name__)

_MIGRATION_LOCK = 0x6875625F6C6F67  # "hub_log"

SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.topics (
    topic       text PRIMARY KEY,
    partitions  int NOT NULL CHECK (partitions > 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {s}.partitions (
    topic         text NOT NULL REFERENCES {s}.topics (topic),
    partition     int NOT NULL,
    next_offset   bigint NOT NULL DEFAULT 0,
    start_offset  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS {s}.records (
    topic          text NOT NULL,
    partition      int NOT NULL,
    "offset"       bigint NOT NULL,
    key            bytea,
    value          bytea NOT NULL,
    header_keys    text[] NOT NULL,
    header_values  bytea[] NOT NULL,
    ts             timestamptz NOT NULL,
    PRIMARY KEY (topic, partition, "offset")
);
CREATE TABLE IF NOT EXISTS {s}.members (
    group_id   text NOT NULL,
    member_id  text NOT NULL,
    lock_key   bigint NOT NULL,
    topics     text[] NOT NULL,
    joined_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, member_id)
);
CREATE TABLE IF NOT EXISTS {s}.group_offsets (
    group_id    text NOT NULL,
    topic       text NOT NULL,
    partition   int NOT NULL,
    "offset"    bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);
"""

INSERT_TOPIC = """
INSERT INTO {s}.topics (topic, partitions) VALUES ($1, $2)
ON CONFLICT (topic) DO NOTHING
"""
INSERT_PARTITIONS = """
INSERT INTO {s}.partitions (topic, partition)
SELECT $1, p FROM generate_series(0, $2 - 1) AS p
ON CONFLICT DO NOTHING
"""
SELECT_TOPICS = "SELECT topic, partitions FROM {s}.topics"
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
SELECT a.base, pg_notify($11, $1 || '|' || $2::text) FROM allocated a
"""
END_OFFSETS = """
SELECT topic, partition, next_offset, start_offset FROM {s}.partitions
WHERE (topic, partition) IN (SELECT * FROM unnest($1::text[], $2::int[]))
"""
READ = """
SELECT r.partition, r."offset", r.key, r.value, r.header_keys, r.header_values,
       floor(extract(epoch FROM r.ts) * 1000)::bigint AS ts_ms
FROM unnest($2::int[], $3::bigint[]) AS p (partition, pos)
CROSS JOIN LATERAL (
    SELECT * FROM {s}.records r
    WHERE r.topic = $1 AND r.partition = p.partition AND r."offset" >= p.pos
    ORDER BY r."offset"
    LIMIT $4
) r
ORDER BY r.partition, r."offset"
"""
TRUNCATE_BEFORE = """
WITH moved AS (
    UPDATE {s}.partitions SET start_offset = GREATEST(start_offset, LEAST($3, next_offset))
    WHERE topic = $1 AND partition = $2
    RETURNING start_offset
)
DELETE FROM {s}.records
WHERE topic = $1 AND partition = $2 AND "offset" < (SELECT start_offset FROM moved)
"""
COMMIT_OFFSETS = """
INSERT INTO {s}.group_offsets (group_id, topic, partition, "offset")
SELECT $1, * FROM unnest($2::text[], $3::int[], $4::bigint[])
ON CONFLICT (group_id, topic, partition)
DO UPDATE SET "offset" = EXCLUDED."offset", updated_at = now()
"""


@dataclass
class _Append:
    """One caller's records, waiting for (or done by) a group commit."""

    records: Sequence[ProducerRecord]
    done: bool = False
    positions: list[Position] | None = None
    error: BaseException | None = None


class PostgresLog(Lifecycle):
    """``EventLog`` over Postgres tables (schema ``hub_log`` by default)."""

    name = "postgres"

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "hub_log",
        pool_size: int = 10,
    ) -> None:
        if not schema.isidentifier():
            raise LogError(f"invalid log schema name {schema!r}", retriable=False)
        self.dsn = dsn
        self.schema = schema
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._partitions: dict[str, int] = {}
        self._queue: list[_Append] = []
        self._write_lock = anyio.Lock()
        self._sql = {
            name: sql.format(s=schema)
            for name, sql in {
                "schema": SCHEMA_SQL,
                "insert_topic": INSERT_TOPIC,
                "insert_partitions": INSERT_PARTITIONS,
                "select_topics": SELECT_TOPICS,
                "allocate_one": ALLOCATE_ONE,
                "append_to_partition": APPEND_TO_PARTITION,
                "lock_many": LOCK_MANY,
                "allocate_many": ALLOCATE_MANY,
                "end_offsets": END_OFFSETS,
                "read": READ,
                "truncate": TRUNCATE_BEFORE,
                "commit": COMMIT_OFFSETS,
            }.items()
        }

    # ── lifecycle ───────────────────────────────────────────────────────────────────────

    async def start(self) -> None:
        if self._pool is not None:
            return
        self._pool = await create_pool(self.dsn, max_size=self._pool_size)
        try:
            with translate_log_errors("cannot create the Postgres log tables"):
                async with self._pool.acquire() as conn, conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
                    await conn.execute(self._sql["schema"])
            await self._load_topics()
        except BaseException:
            await self.stop()
            raise
        log.debug("postgres_log.started", dsn=redact(self.dsn), schema=self.schema)

    async def stop(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise LogError("the Postgres log is not started", retriable=False)
        return self._pool

    def sql(self, name: str) -> str:
        return self._sql[name]

    # ── topics ──────────────────────────────────────────────────────────────────────────

    async def _load_topics(self) -> None:
        with translate_log_errors("cannot read the Postgres log's topics"):
            rows = await self.pool.fetch(self._sql["select_topics"])
        self._partitions = {r["topic"]: r["partitions"] for r in rows}

    async def ensure_topics(self, topics: Mapping[str, int]) -> None:
        with translate_log_errors("cannot create topics in the Postgres log"):
            async with self.pool.acquire() as conn, conn.transaction():
                for topic, partitions in topics.items():
                    if partitions < 1:
                        raise LogError(f"topic {topic}: partitions must be >= 1", retriable=False)
                    await conn.execute(self._sql["insert_topic"], topic, partitions)
                    await conn.execute(self._sql["insert_partitions"], topic, partitions)
        await self._load_topics()
        for topic, wanted in topics.items():
            actual = self._partitions.get(topic)
            if actual != wanted:
                log.warning(
                    "postgres_log.partition_count_differs",
                    topic=topic,
                    wanted=wanted,
                    actual=actual,
                )

    async def partitions_for(self, topic: str) -> int:
        count = self._partitions.get(topic)
        if count is None:
            await self._load_topics()
            count = self._partitions.get(topic)
        if count is None:
            raise LogError(
                f"unknown topic {topic!r} (create it with ensure_topics)", retriable=False
            )
        return count

    # ── append ──────────────────────────────────────────────────────────────────────────

    async def append(self, records: Sequence[ProducerRecord]) -> list[Position]:
        """Append records; concurrent appends share one transaction (group commit).

        Whoever holds the write lock writes everything queued meanwhile, so many small
        concurrent appends cost one round of statements, not one each. The write is
        shielded: a cancelled caller cannot roll back the others' records.
        """
        if not records:
            return []
        for rec in records:  # an unknown topic fails this call only, before it is queued
            await self.partitions_for(rec.topic)
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
        """Each partition's appends in one statement of its own, when every caller's
        records go to one partition (an autocommitted statement is all or none); a caller
        writing to several partitions makes it one transaction for the whole batch."""
        by_partition: dict[TopicPartition, list[_Append]] = {}
        for request in batch:
            tps = {self._partition_of(rec) for rec in request.records}
            if len(tps) != 1:
                await self._write_in_transaction(batch)
                return
            by_partition.setdefault(tps.pop(), []).append(request)
        try:
            with translate_log_errors("cannot append to the Postgres log"):
                async with self.pool.acquire() as conn:
                    for tp, requests in by_partition.items():
                        await self._write_partition(conn, tp, requests)
        except BaseException as exc:  # no connection: whatever is not done failed
            for request in batch:
                if not request.done:
                    request.error, request.done = exc, True

    def _partition_of(self, rec: ProducerRecord) -> TopicPartition:
        return TopicPartition(rec.topic, partition_for(rec.key, self._partitions[rec.topic]))

    async def _write_partition(
        self, conn: asyncpg.Connection, tp: TopicPartition, requests: list[_Append]
    ) -> None:
        records = [rec for request in requests for rec in request.records]
        header_keys: list[str] = []
        header_values: list[bytes] = []
        spans: dict[Headers, tuple[int, int]] = {}
        firsts, lasts = [], []
        for rec in records:
            span = spans.get(rec.headers)
            if span is None:  # each distinct header set once; a record names its slice
                span = spans[rec.headers] = (
                    len(header_keys) + 1,
                    len(header_keys) + len(rec.headers),
                )
                header_keys += [k for k, _ in rec.headers]
                header_values += [v for _, v in rec.headers]
            firsts.append(span[0])
            lasts.append(span[1])
        try:
            with translate_log_errors("cannot append to the Postgres log"):
                base = await conn.fetchval(
                    self._sql["append_to_partition"],
                    tp.topic,
                    tp.partition,
                    len(records),
                    [rec.key for rec in records],
                    [rec.value for rec in records],
                    header_keys,
                    header_values,
                    firsts,
                    lasts,
                    datetime.now(UTC),
                    CHANNEL,
                )
                if base is None:
                    raise LogError(f"unknown partition {tp}", retriable=False)
        except BaseException as exc:
            for request in requests:
                request.error, request.done = exc, True
            return
        for request in requests:
            request.positions = [
                Position(tp.topic, tp.partition, offset)
                for offset in range(base, base + len(request.records))
            ]
            request.done = True
            base += len(request.records)

    async def _write_in_transaction(self, batch: list[_Append]) -> None:
        flat = [rec for request in batch for rec in request.records]
        try:
            with translate_log_errors("cannot append to the Postgres log"):
                async with self.pool.acquire() as conn, conn.transaction():
                    positions = await self.append_in(conn, flat)
        except BaseException as exc:
            for request in batch:
                request.error, request.done = exc, True
            return
        start = 0
        for request in batch:
            request.positions = positions[start : start + len(request.records)]
            request.done = True
            start += len(request.records)

    async def append_in(
        self, conn: asyncpg.Connection, records: Sequence[ProducerRecord]
    ) -> list[Position]:
        """Append inside the caller's transaction (an outbox: atomic with other writes).

        The partitions written stay locked for appends until the transaction ends.
        """
        groups: dict[TopicPartition, list[int]] = {}
        for i, rec in enumerate(records):
            tp = TopicPartition(
                rec.topic, partition_for(rec.key, await self.partitions_for(rec.topic))
            )
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
            schema_name=self.schema,
            columns=COPY_COLUMNS,
            format="binary",
        )
        topics: dict[str, list[str]] = {}
        for tp in groups:
            topics.setdefault(tp.topic, []).append(str(tp.partition))
        for topic, parts in topics.items():
            await conn.execute(NOTIFY, CHANNEL, f"{topic}|{','.join(parts)}")
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

    # ── offsets ─────────────────────────────────────────────────────────────────────────

    async def _offsets(
        self, tps: Sequence[TopicPartition]
    ) -> dict[TopicPartition, tuple[int, int]]:
        with translate_log_errors("cannot read Postgres log offsets"):
            rows = await self.pool.fetch(
                self._sql["end_offsets"], [tp.topic for tp in tps], [tp.partition for tp in tps]
            )
        found = {TopicPartition(r[0], r[1]): (r[2], r[3]) for r in rows}
        missing = set(tps) - set(found)
        if missing:
            raise LogError(f"unknown partitions {sorted(map(str, missing))}", retriable=False)
        return found

    async def end_offsets(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: end for tp, (end, _) in (await self._offsets(tps)).items()}

    async def beginning_offsets(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: start for tp, (_, start) in (await self._offsets(tps)).items()}

    async def truncate_before(self, tp: TopicPartition, offset: int) -> None:
        """Drop records before ``offset`` (retention); offsets are never reused."""
        with translate_log_errors(f"cannot truncate {tp}"):
            await self.pool.execute(self._sql["truncate"], tp.topic, tp.partition, offset)

    async def read(
        self, topic: str, positions: Mapping[int, int], limit: int
    ) -> list[asyncpg.Record]:
        """Up to ``limit`` records per partition from each partition's position."""
        parts = sorted(positions)
        with translate_log_errors(f"cannot read {topic} from the Postgres log"):
            rows: list[Any] = await self.pool.fetch(
                self._sql["read"], topic, parts, [positions[p] for p in parts], limit
            )
        return rows

    async def commit_group(self, group_id: str, offsets: Mapping[TopicPartition, int]) -> None:
        if not offsets:
            return
        tps = list(offsets)
        with translate_log_errors("cannot commit group offsets"):
            await self.pool.execute(
                self._sql["commit"],
                group_id,
                [tp.topic for tp in tps],
                [tp.partition for tp in tps],
                [offsets[tp] for tp in tps],
            )

    # ── consumers ───────────────────────────────────────────────────────────────────────

    def consumer(
        self,
        *,
        group_id: str | None,
        topics: Sequence[str] = (),
        listener: RebalanceListener | None = None,
        partitions: Sequence[TopicPartition] = (),
    ) -> LogConsumer:
        return PostgresConsumer(
            self, group_id=group_id, topics=topics, listener=listener, partitions=partitions
        )
