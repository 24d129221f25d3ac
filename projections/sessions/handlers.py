"""The sessions projection's handlers and their table: each folds one event into the batch."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import asyncpg

from projections.base import EventMeta, Handler, Projection
from projections.sessions.tables import (
    EVENT_COLUMNS,
    MESSAGE_COLUMNS,
    MIGRATIONS,
    MUTABLE,
    REDACT,
    THREAD_COLUMNS,
    UPDATE_THREADS,
    PendingMessage,
    SessionsBatch,
    ThreadState,
    Totals,
)
from projections.text import json_text
from schemas.errors import ProjectionError
from schemas.events import (
    AgentStateSaved,
    Event,
    MessageAppended,
    MessageRedacted,
    ThreadArchived,
    ThreadForked,
    ThreadRenamed,
    ThreadStarted,
    ThreadUnarchived,
    Topic,
)
from schemas.parts import json_size, parts_json, parts_text

__all__ = [
    "SessionsProjection",
    "on_appended",
    "on_archived",
    "on_forked",
    "on_redacted",
    "on_renamed",
    "on_started",
    "on_state_saved",
    "on_unarchived",
]


async def on_started(batch: SessionsBatch, ev: ThreadStarted, meta: EventMeta) -> None:
    if ev.root_thread_id != ev.thread_id:
        raise ProjectionError(f"ThreadStarted {ev.thread_id!r} must be its own root")
    if await batch.thread(ev.tenant_id, ev.thread_id) is not None:
        raise ProjectionError(f"thread {ev.thread_id!r} already exists")
    batch.threads[(ev.tenant_id, ev.thread_id)] = ThreadState(
        _new_thread(ev, meta, root=ev.thread_id, agent_id=ev.agent_id, user_id=ev.user_id),
        new=True,
    )
    batch.events.append(
        (ev.tenant_id, ev.thread_id, meta.offset, ev.occurred_at, "created", ev.title, False)
    )


async def on_forked(batch: SessionsBatch, ev: ThreadForked, meta: EventMeta) -> None:
    tenant = ev.tenant_id
    source = await batch.require(tenant, ev.source_thread_id, ev)
    if await batch.thread(tenant, ev.thread_id) is not None:
        raise ProjectionError(f"thread {ev.thread_id!r} already exists")
    if ev.at_message_id is None:
        seq = source.last_seq
    else:
        _, seq = await batch.visible(tenant, source, ev.at_message_id)
        if not ev.inclusive:
            seq -= 1  # just before the message: an edit of it
    owner = await batch.owner(tenant, source, seq)
    totals = await batch.totals_at(tenant, owner.thread_id, seq)
    row = _new_thread(
        ev, meta, root=source.root_id, agent_id=source.agent_id, user_id=source.user_id
    )
    row.update(
        parent_id=owner.thread_id,
        forked_from=source.thread_id,
        fork_seq=seq,
        fork_message_id=ev.at_message_id,
        depth=owner.depth + 1,
        title=ev.title if ev.title is not None else source.title,
        last_seq=seq,
        total_bytes=totals[0],
        input_tokens=totals[1],
        output_tokens=totals[2],
        total_tokens=totals[3],
    )
    batch.threads[(tenant, ev.thread_id)] = ThreadState(row, new=True)
    source.set(fork_count=source.fork_count + 1)
    batch.events.append(
        (tenant, ev.thread_id, meta.offset, ev.occurred_at, "created", row["title"], False)
    )


async def on_appended(batch: SessionsBatch, ev: MessageAppended, meta: EventMeta) -> None:
    tenant = ev.tenant_id
    state = await batch.require(tenant, ev.thread_id, ev)
    if batch.appended(tenant, ev.message_id):
        raise ProjectionError(f"message {ev.message_id} was appended before")
    usage = ev.usage
    content = parts_json(ev.parts)
    own = (
        json_size(content),
        usage.input_tokens if usage else 0,
        usage.output_tokens if usage else 0,
        usage.total_tokens if usage else 0,
    )
    totals: Totals = tuple(a + b for a, b in zip(state.totals, own, strict=True))  # type: ignore[assignment]
    seq = state.last_seq + 1
    row = [
        tenant,
        ev.thread_id,
        seq,
        ev.message_id,
        str(ev.role),
        content,
        parts_text(ev.parts),
        ev.model,
        own[1],
        own[2],
        own[3],
        own[0],
        *totals,
        ev.metadata,
        ev.occurred_at,
        meta.offset,
        ev.event_id,
    ]
    pending = PendingMessage(row, ev.thread_id, seq, totals)
    batch.messages.append(pending)
    batch.by_message_id[(tenant, ev.message_id)] = pending
    state.set(
        last_seq=seq,
        own_count=state.own_count + 1,
        total_bytes=totals[0],
        input_tokens=totals[1],
        output_tokens=totals[2],
        total_tokens=totals[3],
        updated_at=ev.occurred_at,
    )


async def on_renamed(batch: SessionsBatch, ev: ThreadRenamed, meta: EventMeta) -> None:
    state = await batch.require(ev.tenant_id, ev.thread_id, ev)
    state.set(title=ev.title, updated_at=ev.occurred_at)
    batch.events.append(
        (ev.tenant_id, ev.thread_id, meta.offset, ev.occurred_at, "renamed", ev.title, None)
    )


async def on_archived(batch: SessionsBatch, ev: ThreadArchived, meta: EventMeta) -> None:
    state = await batch.require(ev.tenant_id, ev.thread_id, ev)
    state.set(archived=True, archived_at=ev.occurred_at, updated_at=ev.occurred_at)
    batch.events.append(
        (ev.tenant_id, ev.thread_id, meta.offset, ev.occurred_at, "archived", None, True)
    )


async def on_unarchived(batch: SessionsBatch, ev: ThreadUnarchived, meta: EventMeta) -> None:
    state = await batch.require(ev.tenant_id, ev.thread_id, ev)
    state.set(archived=False, archived_at=None, updated_at=ev.occurred_at)
    batch.events.append(
        (ev.tenant_id, ev.thread_id, meta.offset, ev.occurred_at, "unarchived", None, False)
    )


async def on_state_saved(batch: SessionsBatch, ev: AgentStateSaved, meta: EventMeta) -> None:
    state = await batch.require(ev.tenant_id, ev.thread_id, ev)
    state.set(agent_state={"agent_id": ev.agent_id, "state": ev.state}, updated_at=ev.occurred_at)


async def on_redacted(batch: SessionsBatch, ev: MessageRedacted, meta: EventMeta) -> None:
    tenant = ev.tenant_id
    state = await batch.require(tenant, ev.thread_id, ev)
    owner_id, seq = await batch.visible(tenant, state, ev.message_id)
    shown = ev.replacement_parts or ev.replacement  # v2's parts, else v1's text parts
    parts = parts_json(shown)
    text = parts_text(shown)
    pending = batch.by_message_id.get((tenant, ev.message_id))
    if pending is not None:  # appended in this batch: the row is written redacted
        pending.row[5], pending.row[6] = parts, text
    batch.redactions.append((tenant, owner_id, seq, json_text(parts), text, ev.reason))
    state.set(updated_at=ev.occurred_at)


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _taken_message(exc: asyncpg.UniqueViolationError) -> str:
    """The error of a batch appending a message whose id is stored already (the batch
    is then applied event by event, and this one dead-lettered with it)."""
    found = _UUID.search(getattr(exc, "detail", None) or "")
    if found is None:
        return "a message of this batch was appended before"
    return f"message {found.group()} was appended before"


def _new_thread(
    ev: ThreadStarted | ThreadForked,
    meta: EventMeta,
    *,
    root: str,
    agent_id: str,
    user_id: str | None,
) -> dict[str, Any]:
    return {
        "tenant_id": ev.tenant_id,
        "thread_id": ev.thread_id,
        "root_id": root,
        "parent_id": None,
        "forked_from": None,
        "fork_seq": 0,
        "fork_message_id": None,
        "depth": 0,
        "agent_id": agent_id,
        "user_id": user_id,
        "title": ev.title,
        "metadata": ev.metadata,
        "archived": False,
        "archived_at": None,
        "agent_state": None,
        "created_at": ev.occurred_at,
        "updated_at": ev.occurred_at,
        "last_seq": 0,
        "own_count": 0,
        "total_bytes": 0,
        "input_tokens": 0,
        "output_tokens": 0,
        "total_tokens": 0,
        "fork_count": 0,
        "log_partition": meta.partition,
        "created_offset": meta.offset,
    }


class SessionsProjection(Projection[SessionsBatch]):
    """Threads and their messages, forks and branches, search and stats."""

    name = "sessions"
    version = 1
    topics = (Topic.SESSIONS,)
    migrations = MIGRATIONS
    views = ("threads", "messages", "thread_events")
    handlers: ClassVar[Mapping[type[Event], Handler]] = {
        ThreadStarted: on_started,
        ThreadForked: on_forked,
        MessageAppended: on_appended,
        ThreadRenamed: on_renamed,
        ThreadArchived: on_archived,
        ThreadUnarchived: on_unarchived,
        AgentStateSaved: on_state_saved,
        MessageRedacted: on_redacted,
    }

    def begin(self, conn: asyncpg.Connection, schema: str) -> SessionsBatch:
        return SessionsBatch(conn, schema)

    async def prepare(self, batch: SessionsBatch, events: Sequence[Event]) -> None:
        await batch.prefetch(events)

    async def flush(self, batch: SessionsBatch) -> None:
        conn, schema = batch.conn, batch.schema
        states = [s for s in batch.threads.values() if s is not None]
        new = [s for s in states if s.new]
        if new:
            await conn.copy_records_to_table(
                "threads",
                schema_name=schema,
                columns=THREAD_COLUMNS,
                records=[tuple(s.row[c] for c in THREAD_COLUMNS) for s in new],
            )
        changed = [s for s in states if s.dirty and not s.new]
        if changed:
            await conn.execute(
                UPDATE_THREADS.format(schema=schema),
                [s.tenant_id for s in changed],
                [s.thread_id for s in changed],
                *([s.row[c] for s in changed] for c in MUTABLE),
            )
        if batch.messages:
            try:
                await conn.copy_records_to_table(
                    "messages",
                    schema_name=schema,
                    columns=MESSAGE_COLUMNS,
                    records=[tuple(m.row) for m in batch.messages],
                )
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name != "messages_id":
                    raise
                raise ProjectionError(_taken_message(exc)) from exc
        if batch.redactions:
            await conn.execute(
                REDACT.format(schema=schema), *map(list, zip(*batch.redactions, strict=True))
            )
        if batch.events:
            await conn.copy_records_to_table(
                "thread_events", schema_name=schema, columns=EVENT_COLUMNS, records=batch.events
            )
