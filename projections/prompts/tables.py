"""The ``prompts`` projection: versioned prompts and the labels that point at them.

Views: ``prompts.versions`` (one row per name and version, immutable), ``prompts.labels``
(where each label points now) and ``prompts.label_moves`` (every move, for history and
time travel). A version re-created with identical content is a no-op; with different
content it is poison (the SDK refuses it before producing, so only a race gets here).
A label moved to a version that does not exist is poison too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import asyncpg

from projections.base import Batch, EventMeta, Handler, Projection
from schemas.errors import ProjectionError
from schemas.events import Event, PromptLabelMoved, PromptVersionCreated, Topic

__all__ = ["PromptsProjection"]

MIGRATIONS = (
    """
    CREATE TABLE {schema}.versions (
        tenant_id   text NOT NULL,
        name        text NOT NULL,
        version     text NOT NULL,
        content     text NOT NULL,
        sha256      text NOT NULL,
        note        text,
        author      text,
        created_at  timestamptz NOT NULL,
        seq         integer NOT NULL,
        log_offset  bigint NOT NULL,
        PRIMARY KEY (tenant_id, name, version)
    );
    CREATE UNIQUE INDEX versions_seq ON {schema}.versions (tenant_id, name, seq);
    CREATE TABLE {schema}.labels (
        tenant_id  text NOT NULL,
        name       text NOT NULL,
        label      text NOT NULL,
        version    text NOT NULL,
        moved_at   timestamptz NOT NULL,
        PRIMARY KEY (tenant_id, name, label)
    );
    CREATE TABLE {schema}.label_moves (
        tenant_id         text NOT NULL,
        name              text NOT NULL,
        label             text NOT NULL,
        version           text NOT NULL,
        previous_version  text,
        moved_at          timestamptz NOT NULL,
        log_offset        bigint NOT NULL,
        event_id          uuid NOT NULL
    );
    CREATE INDEX label_moves_name ON {schema}.label_moves (tenant_id, name, label, moved_at);
    """,
)

KNOWN = """
SELECT v.tenant_id, v.name, v.version, v.sha256, m.seq
FROM {schema}.versions v
JOIN (SELECT tenant_id, name, max(seq) AS seq FROM {schema}.versions
      WHERE (tenant_id, name) IN (SELECT * FROM unnest($1::text[], $2::text[]))
      GROUP BY tenant_id, name) m USING (tenant_id, name)
"""
UPSERT_LABELS = """
INSERT INTO {schema}.labels (tenant_id, name, label, version, moved_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
ON CONFLICT (tenant_id, name, label) DO UPDATE SET
    version = EXCLUDED.version, moved_at = EXCLUDED.moved_at
"""
_VERSION_COLUMNS = (
    "tenant_id",
    "name",
    "version",
    "content",
    "sha256",
    "note",
    "author",
    "created_at",
    "seq",
    "log_offset",
)
_MOVE_COLUMNS = (
    "tenant_id",
    "name",
    "label",
    "version",
    "previous_version",
    "moved_at",
    "log_offset",
    "event_id",
)


class PromptsBatch(Batch):
    def __init__(self, conn: asyncpg.Connection, schema: str) -> None:
        super().__init__(conn, schema)
        self.sha: dict[tuple[str, str, str], str] = {}  # every version known: its sha256
        self.seq: dict[tuple[str, str], int] = {}  # highest seq per prompt
        self.versions: list[tuple[Any, ...]] = []
        self.moves: list[tuple[Any, ...]] = []
        self.labels: dict[tuple[str, str, str], tuple[str, Any]] = {}


def on_version(batch: PromptsBatch, ev: PromptVersionCreated, meta: EventMeta) -> None:
    key = (ev.tenant_id, ev.name, ev.version)
    known = batch.sha.get(key)
    if known is not None:
        if known == ev.sha256:
            return  # the same content again: nothing changes
        raise ProjectionError(
            f"prompt {ev.name!r} version {ev.version!r} already exists with other content"
        )
    batch.sha[key] = ev.sha256
    seq = batch.seq.get((ev.tenant_id, ev.name), 0) + 1
    batch.seq[(ev.tenant_id, ev.name)] = seq
    batch.versions.append(
        (
            ev.tenant_id,
            ev.name,
            ev.version,
            ev.content,
            ev.sha256,
            ev.note,
            ev.author,
            ev.occurred_at,
            seq,
            meta.offset,
        )
    )


def on_label(batch: PromptsBatch, ev: PromptLabelMoved, meta: EventMeta) -> None:
    if (ev.tenant_id, ev.name, ev.version) not in batch.sha:
        raise ProjectionError(
            f"label {ev.label!r} of prompt {ev.name!r} moved to version {ev.version!r}, "
            "which does not exist"
        )
    batch.labels[(ev.tenant_id, ev.name, ev.label)] = (ev.version, ev.occurred_at)
    batch.moves.append(
        (
            ev.tenant_id,
            ev.name,
            ev.label,
            ev.version,
            ev.previous_version,
            ev.occurred_at,
            meta.offset,
            ev.event_id,
        )
    )


class PromptsProjection(Projection[PromptsBatch]):
    """Prompt versions (immutable), labels and the history of label moves."""

    name = "prompts"
    version = 1
    topics = (Topic.PROMPTS,)
    migrations = MIGRATIONS
    views = ("versions", "labels", "label_moves")
    handlers: ClassVar[Mapping[type[Event], Handler]] = {
        PromptVersionCreated: on_version,
        PromptLabelMoved: on_label,
    }

    def begin(self, conn: asyncpg.Connection, schema: str) -> PromptsBatch:
        return PromptsBatch(conn, schema)

    async def prepare(self, batch: PromptsBatch, events: Sequence[Event]) -> None:
        names = {(e.tenant_id, e.name) for e in events if isinstance(e, PromptVersionCreated)}
        names |= {(e.tenant_id, e.name) for e in events if isinstance(e, PromptLabelMoved)}
        if not names:
            return
        rows = await batch.conn.fetch(
            KNOWN.format(schema=batch.schema), [t for t, _ in names], [n for _, n in names]
        )
        for tenant, name, version, sha, seq in rows:
            batch.sha[(tenant, name, version)] = sha
            batch.seq[(tenant, name)] = seq

    async def flush(self, batch: PromptsBatch) -> None:
        conn, schema = batch.conn, batch.schema
        if batch.versions:
            await conn.copy_records_to_table(
                "versions", schema_name=schema, columns=_VERSION_COLUMNS, records=batch.versions
            )
        if batch.moves:
            await conn.copy_records_to_table(
                "label_moves", schema_name=schema, columns=_MOVE_COLUMNS, records=batch.moves
            )
            items = list(batch.labels.items())
            await conn.execute(
                UPSERT_LABELS.format(schema=schema),
                [t for (t, _n, _l), _v in items],
                [n for (_t, n, _l), _v in items],
                [la for (_t, _n, la), _v in items],
                [v for _k, (v, _a) in items],
                [a for _k, (_v, a) in items],
            )
