"""The Postgres log: the embedded and small-deployment ``EventLog``.

Records live in ``hub_log.records`` keyed by ``(topic, partition, offset)``. An append
takes the row lock of each partition it writes (``UPDATE ... next_offset``) until it
commits, so offsets have no gaps (an aborted append rolls its allocation back) and commit
in offset order: a reader that sees offset N also sees every offset before it, and a
tailing consumer never skips a record that committed late. Appends NOTIFY their topic's
channel with the partitions' new ends, and consumers wait on it instead of polling (and
skip the reads that could find nothing: :mod:`hub.infra.log.postgres_tail`). Keys map
to partitions with Kafka's murmur2 partitioner, so a key lands on the same partition on
both backends.
Group membership (partitions shared among a group's members) is in
:mod:`hub.infra.log.postgres_group`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
import structlog

from hub.infra.db import create_pool, redact, translate_log_errors
from hub.infra.lifecycle import Lifecycle
from hub.infra.log.postgres_append import Appender
from hub.infra.log.postgres_group import PostgresConsumer
from hub.infra.ports import (
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
END_OFFSETS = """
SELECT topic, partition, next_offset, start_offset FROM {s}.partitions
WHERE (topic, partition) IN (SELECT * FROM unnest($1::text[], $2::int[]))
"""
READ = """
SELECT p.i, r."offset", r.key, r.value,
       CASE WHEN r.usual THEN NULL ELSE r.header_keys END,
       CASE WHEN r.usual THEN NULL ELSE r.header_values END,
       floor(extract(epoch FROM r.ts) * 1000)::bigint AS ts_ms
FROM unnest($1::text[], $2::int[], $3::bigint[], $4::int[]) WITH ORDINALITY
    AS p (topic, partition, pos, max_records, i)
CROSS JOIN LATERAL (
    SELECT r.*, (r.header_values = $6::bytea[] AND r.header_keys = $5::text[]) AS usual
    FROM {s}.records r
    WHERE r.topic = p.topic AND r.partition = p.partition AND r."offset" >= p.pos
    ORDER BY r."offset"
    LIMIT p.max_records
) r
ORDER BY p.i, r."offset"
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
        self._appender = Appender(schema, lambda: self.pool, lambda t: self._partitions[t])
        self._sql = {
            name: sql.format(s=schema)
            for name, sql in {
                "schema": SCHEMA_SQL,
                "insert_topic": INSERT_TOPIC,
                "insert_partitions": INSERT_PARTITIONS,
                "select_topics": SELECT_TOPICS,
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
        """Append records, all or none (concurrent appends share their writes)."""
        for rec in records:  # an unknown topic fails this call only, before it is queued
            await self.partitions_for(rec.topic)
        return await self._appender.append(records)

    async def append_in(
        self, conn: asyncpg.Connection, records: Sequence[ProducerRecord]
    ) -> list[Position]:
        """Append inside the caller's transaction (an outbox: atomic with other writes).

        The partitions written stay locked for appends until the transaction ends.
        """
        for rec in records:
            await self.partitions_for(rec.topic)
        return await self._appender.append_in(conn, records)

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
        self,
        positions: Sequence[tuple[TopicPartition, int, int]],
        usual_headers: tuple[Sequence[str], Sequence[bytes]] = ((), ()),
    ) -> list[asyncpg.Record]:
        """For each ``(partition, position, limit)``, up to ``limit`` records from the
        position, in one query; each row's first column is the index of its partition in
        ``positions`` (rows in that order, then by offset). A row whose headers are
        exactly ``usual_headers`` (keys, values) has NULL for both
        (:mod:`hub.infra.log.postgres_rows`)."""
        keys, values = usual_headers
        with translate_log_errors("cannot read the Postgres log"):
            rows: list[Any] = await self.pool.fetch(
                self._sql["read"],
                [tp.topic for tp, _, _ in positions],
                [tp.partition for tp, _, _ in positions],
                [pos for _, pos, _ in positions],
                [limit for _, _, limit in positions],
                list(keys),
                list(values),
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
