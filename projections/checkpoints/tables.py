"""The ``checkpoints`` projection: a framework's checkpoints (LangGraph's), their channel
values and their pending writes, per thread.

Positions. Every checkpoint event of a tenant is keyed by the tenant (one partition, one
order, live and in a rebuild), so rows carry ``pos``, twice the log offset of the event
that wrote them. A thread's own rows are those above its ``threads.hidden_before`` (a
deletion hides what came before it).

Copies are O(1). Copying thread S to T writes no rows: ``lineage`` gets one entry saying
T also sees S's rows with ``low < pos < high`` (S's rows when the copy event came), plus
S's own lineage entries (flattened, so a copy never changes under another). Readers
union the sources and keep one row per checkpoint id.

Before rows a copy may still see are deleted (prune, delete for runs), every thread that
sees them is *materialized*: the rows it sees are inserted as its own, at
``pos = 2 * hidden_before + 1`` (above what it hid, below any later copy's cutoff), and its
lineage goes. A deleted thread that copies still see is only hidden.

``thread_positions`` holds, per thread, ``pos`` of the last event that changed what its
reads return (a checkpoint or writes saved, a copy into it, a deletion, a prune): a writer
that kept the thread's newest checkpoint learns from it that nobody wrote the thread
since its own last write, without reading the checkpoint back. Threads last changed
before this table existed have no row (not known: read back).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import asyncpg

from projections.base import Batch, EventMeta, Handler, Projection
from schemas.checkpoints import (
    CheckpointRunsDeleted,
    CheckpointSaved,
    CheckpointsPruned,
    CheckpointThreadCopied,
    CheckpointThreadDeleted,
    CheckpointWritesSaved,
)
from schemas.events import Event, Topic

__all__ = ["CheckpointsProjection"]

MIGRATIONS = (
    """
    CREATE TABLE {schema}.checkpoints (
        tenant_id             text NOT NULL,
        thread_id             text NOT NULL,
        checkpoint_ns         text COLLATE "C" NOT NULL,
        checkpoint_id         text COLLATE "C" NOT NULL,
        parent_checkpoint_id  text,
        run_id                text,
        checkpoint_type       text NOT NULL,
        checkpoint            bytea,
        checkpoint_key        text,
        metadata_type         text NOT NULL,
        metadata              bytea,
        metadata_key          text,
        metadata_json         jsonb NOT NULL,
        channel_versions      jsonb NOT NULL,
        saved_at              timestamptz NOT NULL,
        pos                   bigint NOT NULL
    );
    CREATE INDEX checkpoints_thread
        ON {schema}.checkpoints (tenant_id, thread_id, checkpoint_ns, checkpoint_id);
    CREATE INDEX checkpoints_run ON {schema}.checkpoints (tenant_id, run_id)
        WHERE run_id IS NOT NULL;
    CREATE TABLE {schema}.channel_values (
        tenant_id      text NOT NULL,
        thread_id      text NOT NULL,
        checkpoint_ns  text COLLATE "C" NOT NULL,
        channel        text NOT NULL,
        version        text NOT NULL,
        type           text NOT NULL,
        data           bytea,
        blob_key       text,
        pos            bigint NOT NULL
    );
    CREATE INDEX channel_values_version
        ON {schema}.channel_values (tenant_id, thread_id, checkpoint_ns, channel, version);
    CREATE TABLE {schema}.writes (
        tenant_id      text NOT NULL,
        thread_id      text NOT NULL,
        checkpoint_ns  text COLLATE "C" NOT NULL,
        checkpoint_id  text COLLATE "C" NOT NULL,
        task_id        text NOT NULL,
        task_path      text NOT NULL,
        idx            integer NOT NULL,
        channel        text NOT NULL,
        type           text NOT NULL,
        data           bytea,
        blob_key       text,
        pos            bigint NOT NULL
    );
    CREATE INDEX writes_checkpoint
        ON {schema}.writes (tenant_id, thread_id, checkpoint_ns, checkpoint_id);
    CREATE TABLE {schema}.threads (
        tenant_id      text NOT NULL,
        thread_id      text NOT NULL,
        hidden_before  bigint NOT NULL,
        PRIMARY KEY (tenant_id, thread_id)
    );
    CREATE TABLE {schema}.lineage (
        tenant_id         text NOT NULL,
        thread_id         text NOT NULL,
        source_thread_id  text NOT NULL,
        low               bigint NOT NULL,
        high              bigint NOT NULL
    );
    CREATE INDEX lineage_thread ON {schema}.lineage (tenant_id, thread_id);
    CREATE INDEX lineage_source ON {schema}.lineage (tenant_id, source_thread_id);
    """,
    """
    CREATE TABLE {schema}.thread_positions (
        tenant_id  text NOT NULL,
        thread_id  text NOT NULL,
        pos        bigint NOT NULL,
        PRIMARY KEY (tenant_id, thread_id)
    );
    """,
)

CHANGED = """
INSERT INTO {schema}.thread_positions (tenant_id, thread_id, pos)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
ON CONFLICT (tenant_id, thread_id) DO UPDATE SET pos = GREATEST(
    {schema}.thread_positions.pos, EXCLUDED.pos)
"""
HIDDEN_BEFORE = """
SELECT COALESCE(
    (SELECT hidden_before FROM {schema}.threads WHERE tenant_id = $1 AND thread_id = $2), -2)
"""
HIDE = """
INSERT INTO {schema}.threads (tenant_id, thread_id, hidden_before) VALUES ($1, $2, $3)
ON CONFLICT (tenant_id, thread_id) DO UPDATE SET hidden_before = EXCLUDED.hidden_before
"""
COPY_LINEAGE = """
INSERT INTO {schema}.lineage (tenant_id, thread_id, source_thread_id, low, high)
SELECT $1, $3, $2, $4, $5
UNION ALL
SELECT tenant_id, $3, source_thread_id, low, high FROM {schema}.lineage
WHERE tenant_id = $1 AND thread_id = $2
"""
COPIES_OF = """
SELECT DISTINCT thread_id FROM {schema}.lineage WHERE tenant_id = $1 AND source_thread_id = $2
"""
_SEEN = """
FROM {schema}.{table} r
JOIN {schema}.lineage l ON l.tenant_id = r.tenant_id AND l.source_thread_id = r.thread_id
    AND r.pos > l.low AND r.pos < l.high
WHERE l.tenant_id = $1 AND l.thread_id = $2
"""
_CHECKPOINT_COLUMNS = (
    "checkpoint_ns, checkpoint_id, parent_checkpoint_id, run_id, checkpoint_type, checkpoint, "
    "checkpoint_key, metadata_type, metadata, metadata_key, metadata_json, channel_versions, "
    "saved_at"
)
_VALUE_COLUMNS = "checkpoint_ns, channel, version, type, data, blob_key"
_WRITE_COLUMNS = (
    "checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, data, blob_key"
)
_MATERIALIZE_TABLES = tuple(
    f"""
    INSERT INTO {{schema}}.{table} (tenant_id, thread_id, {columns}, pos)
    SELECT r.tenant_id, $2, {", ".join("r." + c.strip() for c in columns.split(","))}, $3
    {_SEEN.replace("{table}", table)}
    """
    for table, columns in (
        ("checkpoints", _CHECKPOINT_COLUMNS),
        ("channel_values", _VALUE_COLUMNS),
        ("writes", _WRITE_COLUMNS),
    )
)
MATERIALIZE = (
    *_MATERIALIZE_TABLES,
    "DELETE FROM {schema}.lineage WHERE tenant_id = $1 AND thread_id = $2",
)
DELETE_THREAD = (
    "DELETE FROM {schema}.checkpoints WHERE tenant_id = $1 AND thread_id = $2",
    "DELETE FROM {schema}.channel_values WHERE tenant_id = $1 AND thread_id = $2",
    "DELETE FROM {schema}.writes WHERE tenant_id = $1 AND thread_id = $2",
    "DELETE FROM {schema}.lineage WHERE tenant_id = $1 AND thread_id = $2",
)
_KEPT = """
SELECT DISTINCT ON (checkpoint_ns) checkpoint_ns, checkpoint_id, channel_versions
FROM {schema}.checkpoints
WHERE tenant_id = $1 AND thread_id = $2 AND pos > $3
ORDER BY checkpoint_ns, checkpoint_id DESC, pos DESC
"""
KEEP_LATEST = (
    f"""
    WITH kept AS ({_KEPT})
    DELETE FROM {{schema}}.checkpoints c WHERE c.tenant_id = $1 AND c.thread_id = $2
    AND NOT EXISTS (SELECT 1 FROM kept k WHERE k.checkpoint_ns = c.checkpoint_ns
                    AND k.checkpoint_id = c.checkpoint_id AND c.pos > $3)
    """,
    f"""
    WITH kept AS ({_KEPT})
    DELETE FROM {{schema}}.writes w WHERE w.tenant_id = $1 AND w.thread_id = $2
    AND NOT EXISTS (SELECT 1 FROM kept k WHERE k.checkpoint_ns = w.checkpoint_ns
                    AND k.checkpoint_id = w.checkpoint_id AND w.pos > $3)
    """,
    f"""
    WITH kept AS ({_KEPT})
    DELETE FROM {{schema}}.channel_values v WHERE v.tenant_id = $1 AND v.thread_id = $2
    AND NOT EXISTS (SELECT 1 FROM kept k, jsonb_each_text(k.channel_versions) AS cv (ch, ver)
                    WHERE k.checkpoint_ns = v.checkpoint_ns AND cv.ch = v.channel
                    AND cv.ver = v.version AND v.pos > $3)
    """,
)
DELETE_RUNS = (
    """
    DELETE FROM {schema}.writes w USING {schema}.checkpoints c
    WHERE c.tenant_id = $1 AND c.thread_id = $2 AND c.run_id = ANY($3::text[])
      AND w.tenant_id = $1 AND w.thread_id = $2
      AND w.checkpoint_ns = c.checkpoint_ns AND w.checkpoint_id = c.checkpoint_id
    """,
    """
    DELETE FROM {schema}.checkpoints
    WHERE tenant_id = $1 AND thread_id = $2 AND run_id = ANY($3::text[])
    """,
)
_CHECKPOINT_ROW = (
    "tenant_id",
    "thread_id",
    *(c.strip() for c in _CHECKPOINT_COLUMNS.split(",")),
    "pos",
)
_VALUE_ROW = ("tenant_id", "thread_id", *(c.strip() for c in _VALUE_COLUMNS.split(",")), "pos")
_WRITE_ROW = ("tenant_id", "thread_id", *(c.strip() for c in _WRITE_COLUMNS.split(",")), "pos")


class CheckpointsBatch(Batch):
    """Rows to copy; flushed before any statement that reads or deletes them."""

    def __init__(self, conn: asyncpg.Connection, schema: str) -> None:
        super().__init__(conn, schema)
        self.checkpoints: list[tuple[Any, ...]] = []
        self.values: list[tuple[Any, ...]] = []
        self.writes: list[tuple[Any, ...]] = []
        self.changed: dict[tuple[str, str], int] = {}  # (tenant, thread) -> pos

    def changed_at(self, tenant: str, thread: str, pos: int) -> None:
        """Say that ``pos`` changed what ``thread``'s reads return."""
        self.changed[(tenant, thread)] = pos

    async def execute(self, sql: str, *args: Any) -> Any:
        await self.flush_rows()
        return await self.conn.execute(sql.format(schema=self.schema), *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        await self.flush_rows()
        return await self.conn.fetchval(sql.format(schema=self.schema), *args)

    async def flush_rows(self) -> None:
        for table, columns, rows in (
            ("checkpoints", _CHECKPOINT_ROW, self.checkpoints),
            ("channel_values", _VALUE_ROW, self.values),
            ("writes", _WRITE_ROW, self.writes),
        ):
            if rows:
                await self.conn.copy_records_to_table(
                    table, schema_name=self.schema, columns=columns, records=rows
                )
                rows.clear()
        if self.changed:
            keys, positions = list(self.changed), list(self.changed.values())
            tenants, threads = [k[0] for k in keys], [k[1] for k in keys]
            await self.conn.execute(CHANGED.format(schema=self.schema), tenants, threads, positions)
            self.changed.clear()


def on_saved(batch: CheckpointsBatch, ev: CheckpointSaved, meta: EventMeta) -> None:
    pos = 2 * meta.offset
    cp, md = ev.checkpoint, ev.metadata
    versions = {v.channel: v.version for v in ev.values}
    batch.changed_at(ev.tenant_id, ev.thread_id, pos)
    batch.checkpoints.append(
        (
            ev.tenant_id,
            ev.thread_id,
            ev.checkpoint_ns,
            ev.checkpoint_id,
            ev.parent_checkpoint_id,
            ev.run_id,
            cp.type,
            cp.data,
            cp.blob_key,
            md.type,
            md.data,
            md.blob_key,
            ev.metadata_json,
            dict(ev.channel_versions) or versions,
            ev.occurred_at,
            pos,
        )
    )
    for v in ev.values:
        batch.values.append(
            (
                ev.tenant_id,
                ev.thread_id,
                ev.checkpoint_ns,
                v.channel,
                v.version,
                v.value.type,
                v.value.data,
                v.value.blob_key,
                pos,
            )
        )


def on_writes(batch: CheckpointsBatch, ev: CheckpointWritesSaved, meta: EventMeta) -> None:
    pos = 2 * meta.offset
    batch.changed_at(ev.tenant_id, ev.thread_id, pos)
    for w in ev.writes:
        batch.writes.append(
            (
                ev.tenant_id,
                ev.thread_id,
                ev.checkpoint_ns,
                ev.checkpoint_id,
                ev.task_id,
                ev.task_path,
                w.idx,
                w.channel,
                w.value.type,
                w.value.data,
                w.value.blob_key,
                pos,
            )
        )


async def _materialize(batch: CheckpointsBatch, tenant: str, thread: str) -> None:
    """Make the rows ``thread`` sees through its lineage its own."""
    hidden = await batch.fetchval(HIDDEN_BEFORE, tenant, thread)
    for sql in MATERIALIZE[:-1]:
        await batch.execute(sql, tenant, thread, hidden + 1)
    await batch.execute(MATERIALIZE[-1], tenant, thread)


async def _detach(batch: CheckpointsBatch, tenant: str, thread: str) -> None:
    """Before rows of ``thread`` are deleted: every copy still seeing them, and the thread
    itself, hold the rows they see as their own."""
    await batch.flush_rows()
    copies = await batch.conn.fetch(COPIES_OF.format(schema=batch.schema), tenant, thread)
    for (copy,) in copies:
        await _materialize(batch, tenant, copy)
    await _materialize(batch, tenant, thread)


async def on_deleted(batch: CheckpointsBatch, ev: CheckpointThreadDeleted, meta: EventMeta) -> None:
    await batch.flush_rows()
    copies = await batch.conn.fetch(
        COPIES_OF.format(schema=batch.schema), ev.tenant_id, ev.thread_id
    )
    statements = DELETE_THREAD if not copies else DELETE_THREAD[-1:]  # seen by copies: hidden
    for sql in statements:
        await batch.execute(sql, ev.tenant_id, ev.thread_id)
    await batch.execute(HIDE, ev.tenant_id, ev.thread_id, 2 * meta.offset)
    batch.changed_at(ev.tenant_id, ev.thread_id, 2 * meta.offset)


async def on_copied(batch: CheckpointsBatch, ev: CheckpointThreadCopied, meta: EventMeta) -> None:
    hidden = await batch.fetchval(HIDDEN_BEFORE, ev.tenant_id, ev.thread_id)
    await batch.execute(
        COPY_LINEAGE, ev.tenant_id, ev.thread_id, ev.target_thread_id, hidden, 2 * meta.offset
    )
    batch.changed_at(ev.tenant_id, ev.target_thread_id, 2 * meta.offset)


async def on_pruned(batch: CheckpointsBatch, ev: CheckpointsPruned, meta: EventMeta) -> None:
    if ev.strategy == "delete":
        deleted = CheckpointThreadDeleted(
            tenant_id=ev.tenant_id, actor=ev.actor, thread_id=ev.thread_id
        )
        await on_deleted(batch, deleted, meta)
        return
    await _detach(batch, ev.tenant_id, ev.thread_id)
    hidden = await batch.fetchval(HIDDEN_BEFORE, ev.tenant_id, ev.thread_id)
    for sql in KEEP_LATEST:
        await batch.execute(sql, ev.tenant_id, ev.thread_id, hidden)
    batch.changed_at(ev.tenant_id, ev.thread_id, 2 * meta.offset)


async def on_runs_deleted(
    batch: CheckpointsBatch, ev: CheckpointRunsDeleted, meta: EventMeta
) -> None:
    await _detach(batch, ev.tenant_id, ev.thread_id)
    for sql in DELETE_RUNS:
        await batch.execute(sql, ev.tenant_id, ev.thread_id, list(ev.run_ids))
    batch.changed_at(ev.tenant_id, ev.thread_id, 2 * meta.offset)


class CheckpointsProjection(Projection[CheckpointsBatch]):
    """Checkpoints, channel values and pending writes, with copy-on-write thread copies."""

    name = "checkpoints"
    version = 1
    topics = (Topic.CHECKPOINTS,)
    migrations = MIGRATIONS
    views = (
        "checkpoints",
        "channel_values",
        "writes",
        "threads",
        "lineage",
        "thread_positions",
    )
    handlers: ClassVar[Mapping[type[Event], Handler]] = {
        CheckpointSaved: on_saved,
        CheckpointWritesSaved: on_writes,
        CheckpointThreadDeleted: on_deleted,
        CheckpointThreadCopied: on_copied,
        CheckpointsPruned: on_pruned,
        CheckpointRunsDeleted: on_runs_deleted,
    }

    def begin(self, conn: asyncpg.Connection, schema: str) -> CheckpointsBatch:
        return CheckpointsBatch(conn, schema)

    async def flush(self, batch: CheckpointsBatch) -> None:
        await batch.flush_rows()
