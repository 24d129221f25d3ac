"""The ``registry`` projection: one row per agent in ``registry.agents``.

Handlers fold a batch's registry events per agent; ``flush`` writes them with at most
three statements: upserts that set the status, upserts that keep it, and status-only
updates for retirements. ``revision`` counts the events applied to an agent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

import asyncpg

from projections.base import Batch, EventMeta, Handler, Projection
from projections.text import json_text
from schemas.errors import ProjectionError
from schemas.events import AgentRegistered, AgentRetired, AgentUpdated, Event, Topic

__all__ = ["RegistryProjection"]

TAG_SEPARATOR = "\x1f"  # unit separator: tags are identifiers, which cannot contain it

MIGRATIONS = (
    """
    CREATE TABLE {schema}.agents (
        tenant_id       text NOT NULL,
        agent_id        text NOT NULL,
        description     text NOT NULL,
        tags            text[] NOT NULL,
        metadata        jsonb NOT NULL,
        status          text NOT NULL CHECK (status IN ('active', 'retired')),
        registered_at   timestamptz NOT NULL,
        updated_at      timestamptz NOT NULL,
        retired_at      timestamptz,
        retired_reason  text,
        revision        integer NOT NULL,
        last_event_id   uuid NOT NULL,
        PRIMARY KEY (tenant_id, agent_id)
    );
    CREATE INDEX agents_tags ON {schema}.agents USING gin (tags);
    CREATE INDEX agents_status ON {schema}.agents (tenant_id, status, agent_id);
    """,
    """
    CREATE TABLE {schema}.agent_history (
        tenant_id    text NOT NULL,
        agent_id     text NOT NULL,
        kind         text NOT NULL CHECK (kind IN ('registered', 'updated', 'retired')),
        description  text,
        tags         text[],
        metadata     jsonb,
        reason       text,
        changed_at   timestamptz NOT NULL,
        topic        text NOT NULL,
        partition    int NOT NULL,
        log_offset   bigint NOT NULL,
        event_id     uuid NOT NULL
    );
    CREATE INDEX agent_history_at ON {schema}.agent_history (tenant_id, agent_id, changed_at);
    """,
)
_HISTORY_COLUMNS = (
    "tenant_id",
    "agent_id",
    "kind",
    "description",
    "tags",
    "metadata",
    "reason",
    "changed_at",
    "topic",
    "partition",
    "log_offset",
    "event_id",
)

_COLUMNS = """
    tenant_id, agent_id, description, tags, metadata, status, registered_at, updated_at,
    retired_at, retired_reason, revision, last_event_id
"""
_SOURCE = """
    SELECT u.tenant_id, u.agent_id, u.description, string_to_array(u.tags, E'\\x1f'),
           u.metadata::jsonb, u.status, u.registered_at, u.updated_at, u.retired_at,
           u.retired_reason, u.revision, u.last_event_id
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                $7::timestamptz[], $8::timestamptz[], $9::timestamptz[], $10::text[],
                $11::int[], $12::uuid[])
      AS u (tenant_id, agent_id, description, tags, metadata, status, registered_at,
            updated_at, retired_at, retired_reason, revision, last_event_id)
"""
UPSERT_SETTING_STATUS = f"""
INSERT INTO {{schema}}.agents AS a ({_COLUMNS}) {_SOURCE}
ON CONFLICT (tenant_id, agent_id) DO UPDATE SET
    description = EXCLUDED.description, tags = EXCLUDED.tags, metadata = EXCLUDED.metadata,
    status = EXCLUDED.status, updated_at = EXCLUDED.updated_at,
    retired_at = EXCLUDED.retired_at, retired_reason = EXCLUDED.retired_reason,
    revision = a.revision + EXCLUDED.revision, last_event_id = EXCLUDED.last_event_id
"""
UPSERT_KEEPING_STATUS = f"""
INSERT INTO {{schema}}.agents AS a ({_COLUMNS}) {_SOURCE}
ON CONFLICT (tenant_id, agent_id) DO UPDATE SET
    description = EXCLUDED.description, tags = EXCLUDED.tags, metadata = EXCLUDED.metadata,
    updated_at = EXCLUDED.updated_at,
    revision = a.revision + EXCLUDED.revision, last_event_id = EXCLUDED.last_event_id
"""
RETIRE = """
UPDATE {schema}.agents a SET
    status = 'retired', retired_at = u.at, retired_reason = u.reason, updated_at = u.at,
    revision = a.revision + u.n, last_event_id = u.event_id
FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::int[], $6::uuid[])
  AS u (tenant_id, agent_id, at, reason, n, event_id)
WHERE a.tenant_id = u.tenant_id AND a.agent_id = u.agent_id
"""
EXISTS = "SELECT 1 FROM {schema}.agents WHERE tenant_id = $1 AND agent_id = $2"
EXISTING = """
SELECT tenant_id, agent_id FROM {schema}.agents
WHERE (tenant_id, agent_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
"""
_COPY_COLUMNS = (
    "tenant_id",
    "agent_id",
    "description",
    "tags",
    "metadata",
    "status",
    "registered_at",
    "updated_at",
    "retired_at",
    "retired_reason",
    "revision",
    "last_event_id",
)


@dataclass
class _Change:
    """What one batch does to one agent."""

    has_state: bool = False
    description: str = ""
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    status: str | None = None  # None: leave as stored
    registered_at: datetime | None = None
    updated_at: datetime | None = None
    retired_at: datetime | None = None
    retired_reason: str | None = None
    revision: int = 0
    last_event_id: UUID | None = None


class RegistryBatch(Batch):
    def __init__(self, conn: asyncpg.Connection, schema: str) -> None:
        super().__init__(conn, schema)
        self.changes: dict[tuple[str, str], _Change] = {}
        self.history: list[tuple[Any, ...]] = []

    def remember(self, ev: Event, meta: EventMeta, kind: str, **fields: Any) -> None:
        """One row of the agent's history (for ``as_of``)."""
        self.history.append(
            (
                ev.tenant_id,
                getattr(ev, "agent_id"),  # noqa: B009 (every registry event has one)
                kind,
                fields.get("description"),
                fields.get("tags"),
                fields.get("metadata"),
                fields.get("reason"),
                ev.occurred_at,
                meta.topic,
                meta.partition,
                meta.offset,
                ev.event_id,
            )
        )

    def change(self, event: Event, agent_id: str) -> _Change:
        key = (event.tenant_id, agent_id)
        change = self.changes.get(key)
        if change is None:
            change = self.changes[key] = _Change()
        change.revision += 1
        change.last_event_id = event.event_id
        change.updated_at = event.occurred_at
        return change


def _state(change: _Change, ev: AgentRegistered | AgentUpdated) -> None:
    change.has_state = True
    change.description = ev.description
    change.tags = tuple(ev.tags)
    change.metadata = ev.metadata
    if change.registered_at is None:
        change.registered_at = ev.occurred_at


def _state_fields(ev: AgentRegistered | AgentUpdated) -> dict[str, Any]:
    return {"description": ev.description, "tags": list(ev.tags), "metadata": ev.metadata}


def on_registered(batch: RegistryBatch, ev: AgentRegistered, meta: EventMeta) -> None:
    batch.remember(ev, meta, "registered", **_state_fields(ev))
    change = batch.change(ev, ev.agent_id)
    _state(change, ev)
    change.status = "active"  # registering a retired agent brings it back
    change.retired_at = change.retired_reason = None


def on_updated(batch: RegistryBatch, ev: AgentUpdated, meta: EventMeta) -> None:
    batch.remember(ev, meta, "updated", **_state_fields(ev))
    _state(batch.change(ev, ev.agent_id), ev)


async def on_retired(batch: RegistryBatch, ev: AgentRetired, meta: EventMeta) -> None:
    known = (ev.tenant_id, ev.agent_id) in batch.changes or await batch.conn.fetchval(
        EXISTS.format(schema=batch.schema), ev.tenant_id, ev.agent_id
    )
    if not known:
        raise ProjectionError(f"AgentRetired for unknown agent {ev.agent_id!r}")
    batch.remember(ev, meta, "retired", reason=ev.reason)
    change = batch.change(ev, ev.agent_id)
    change.status = "retired"
    change.retired_at = ev.occurred_at
    change.retired_reason = ev.reason


def _columns(items: list[tuple[tuple[str, str], _Change]]) -> list[list[Any]]:
    return [
        [t for (t, _), _c in items],
        [a for (_, a), _c in items],
        [c.description for _, c in items],
        [TAG_SEPARATOR.join(c.tags) for _, c in items],
        [_json(c.metadata) for _, c in items],
        [c.status or "active" for _, c in items],
        [c.registered_at for _, c in items],
        [c.updated_at for _, c in items],
        [c.retired_at for _, c in items],
        [c.retired_reason for _, c in items],
        [c.revision for _, c in items],
        [c.last_event_id for _, c in items],
    ]


def _rows(items: list[tuple[tuple[str, str], _Change]]) -> list[tuple[Any, ...]]:
    return [
        (
            t,
            a,
            c.description,
            list(c.tags),
            c.metadata,
            c.status or "active",
            c.registered_at,
            c.updated_at,
            c.retired_at,
            c.retired_reason,
            c.revision,
            c.last_event_id,
        )
        for (t, a), c in items
    ]


def _json(value: Mapping[str, Any]) -> str:
    return json_text(value)


class RegistryProjection(Projection[RegistryBatch]):
    """Agents: id, description, tags, metadata, status and timestamps."""

    name = "registry"
    version = 1
    topics = (Topic.REGISTRY,)
    migrations = MIGRATIONS
    views = ("agents", "agent_history")
    handlers: ClassVar[Mapping[type[Event], Handler]] = {
        AgentRegistered: on_registered,
        AgentUpdated: on_updated,
        AgentRetired: on_retired,
    }

    def begin(self, conn: asyncpg.Connection, schema: str) -> RegistryBatch:
        return RegistryBatch(conn, schema)

    async def flush(self, batch: RegistryBatch) -> None:
        conn, schema = batch.conn, batch.schema
        stated = [(k, c) for k, c in batch.changes.items() if c.has_state]
        retiring = [(k, c) for k, c in batch.changes.items() if not c.has_state]
        if stated:
            # Agents not stored yet go in by COPY, the fastest path (a rebuild, or a burst
            # of registrations). Nobody else can insert them meanwhile: all events of an
            # agent share one partition, whose position row this transaction holds.
            known = await conn.fetch(
                EXISTING.format(schema=schema),
                [t for (t, _), _c in stated],
                [a for (_, a), _c in stated],
            )
            existing = {(r[0], r[1]) for r in known}
            new = [(k, c) for k, c in stated if k not in existing]
            if new:
                await conn.copy_records_to_table(
                    "agents", schema_name=schema, columns=_COPY_COLUMNS, records=_rows(new)
                )
            setting = [(k, c) for k, c in stated if k in existing and c.status is not None]
            keeping = [(k, c) for k, c in stated if k in existing and c.status is None]
            if setting:
                await conn.execute(UPSERT_SETTING_STATUS.format(schema=schema), *_columns(setting))
            if keeping:
                await conn.execute(UPSERT_KEEPING_STATUS.format(schema=schema), *_columns(keeping))
        if batch.history:
            await conn.copy_records_to_table(
                "agent_history", schema_name=schema, columns=_HISTORY_COLUMNS, records=batch.history
            )
        if retiring:
            await conn.execute(
                RETIRE.format(schema=schema),
                [t for (t, _), _c in retiring],
                [a for (_, a), _c in retiring],
                [c.retired_at for _, c in retiring],
                [c.retired_reason for _, c in retiring],
                [c.revision for _, c in retiring],
                [c.last_event_id for _, c in retiring],
            )
