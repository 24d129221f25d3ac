"""The ``sessions`` projection: threads and messages, with copy-on-write forks.

``threads`` rows carry the lineage: ``root_id``, ``parent_id``, ``fork_seq`` and ``depth``.
``messages`` holds only each thread's own messages. Seqs run on along a lineage: a fork at
seq *k* sees its parent's messages 1..*k* and numbers its own from *k*+1, so every thread
reads as one gapless sequence. Reading a thread of depth *d* is *d*+1 index range scans
(its own seqs, then each ancestor's slice), and a fork is one row whatever the thread's
length. Forking at a message an ancestor owns points ``parent_id`` at that ancestor, so
depth never grows needlessly; ``forked_from`` keeps the thread the user forked (for the
tree and the stats).

Each message row keeps running totals (bytes, tokens) along its lineage, so a fork
inherits its stats in O(1). ``thread_events`` keeps renames and archivals with their log
offsets, for time travel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg

from projections.base import Batch
from schemas.errors import ProjectionError
from schemas.events import Event, MessageAppended

__all__ = [
    "EVENT_COLUMNS",
    "FIND_MESSAGE",
    "FIND_MESSAGES",
    "LOAD_THREADS",
    "MESSAGE_COLUMNS",
    "MIGRATIONS",
    "MUTABLE",
    "REDACT",
    "THREAD_COLUMNS",
    "TOTALS_AT",
    "UPDATE_THREADS",
    "PendingMessage",
    "SessionsBatch",
    "ThreadState",
    "Totals",
]

MIGRATIONS = (
    """
    CREATE TABLE {schema}.threads (
        tenant_id        text NOT NULL,
        thread_id        text NOT NULL,
        root_id          text NOT NULL,
        parent_id        text,
        forked_from      text,
        fork_seq         bigint NOT NULL,
        fork_message_id  uuid,
        depth            int NOT NULL,
        agent_id         text NOT NULL,
        user_id          text,
        title            text,
        metadata         jsonb NOT NULL,
        archived         boolean NOT NULL,
        archived_at      timestamptz,
        agent_state      jsonb,
        created_at       timestamptz NOT NULL,
        updated_at       timestamptz NOT NULL,
        last_seq         bigint NOT NULL,
        own_count        bigint NOT NULL,
        total_bytes      bigint NOT NULL,
        input_tokens     bigint NOT NULL,
        output_tokens    bigint NOT NULL,
        total_tokens     bigint NOT NULL,
        fork_count       int NOT NULL,
        log_partition    int NOT NULL,
        created_offset   bigint NOT NULL,
        PRIMARY KEY (tenant_id, thread_id)
    );
    CREATE INDEX threads_updated
        ON {schema}.threads (tenant_id, updated_at DESC, thread_id);
    CREATE INDEX threads_user
        ON {schema}.threads (tenant_id, user_id, updated_at DESC, thread_id);
    CREATE INDEX threads_agent
        ON {schema}.threads (tenant_id, agent_id, updated_at DESC, thread_id);
    CREATE INDEX threads_forked_from ON {schema}.threads (tenant_id, forked_from);
    CREATE INDEX threads_root ON {schema}.threads (tenant_id, root_id);

    CREATE TABLE {schema}.messages (
        tenant_id          text NOT NULL,
        thread_id          text NOT NULL,
        seq                bigint NOT NULL,
        message_id         uuid NOT NULL,
        role               text NOT NULL,
        parts              jsonb NOT NULL,
        text               text NOT NULL,
        model              text,
        input_tokens       bigint NOT NULL,
        output_tokens      bigint NOT NULL,
        total_tokens       bigint NOT NULL,
        bytes              int NOT NULL,
        cum_bytes          bigint NOT NULL,
        cum_input_tokens   bigint NOT NULL,
        cum_output_tokens  bigint NOT NULL,
        cum_total_tokens   bigint NOT NULL,
        metadata           jsonb NOT NULL,
        created_at         timestamptz NOT NULL,
        redacted           boolean NOT NULL DEFAULT false,
        redaction_reason   text,
        log_offset         bigint NOT NULL,
        event_id           uuid NOT NULL,
        tsv                tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED,
        PRIMARY KEY (tenant_id, thread_id, seq)
    );
    CREATE UNIQUE INDEX messages_id ON {schema}.messages (tenant_id, message_id);
    CREATE INDEX messages_search ON {schema}.messages USING gin (tsv);

    CREATE TABLE {schema}.thread_events (
        tenant_id    text NOT NULL,
        thread_id    text NOT NULL,
        log_offset   bigint NOT NULL,
        occurred_at  timestamptz NOT NULL,
        kind         text NOT NULL,
        title        text,
        archived     boolean,
        PRIMARY KEY (tenant_id, thread_id, log_offset)
    );
    """,
)

THREAD_COLUMNS = (
    "tenant_id",
    "thread_id",
    "root_id",
    "parent_id",
    "forked_from",
    "fork_seq",
    "fork_message_id",
    "depth",
    "agent_id",
    "user_id",
    "title",
    "metadata",
    "archived",
    "archived_at",
    "agent_state",
    "created_at",
    "updated_at",
    "last_seq",
    "own_count",
    "total_bytes",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "fork_count",
    "log_partition",
    "created_offset",
)
MESSAGE_COLUMNS = (
    "tenant_id",
    "thread_id",
    "seq",
    "message_id",
    "role",
    "parts",
    "text",
    "model",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "bytes",
    "cum_bytes",
    "cum_input_tokens",
    "cum_output_tokens",
    "cum_total_tokens",
    "metadata",
    "created_at",
    "log_offset",
    "event_id",
)
EVENT_COLUMNS = (
    "tenant_id",
    "thread_id",
    "log_offset",
    "occurred_at",
    "kind",
    "title",
    "archived",
)
MUTABLE = (
    "title",
    "metadata",
    "archived",
    "archived_at",
    "agent_state",
    "updated_at",
    "last_seq",
    "own_count",
    "total_bytes",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "fork_count",
)
_TYPES = {
    "title": "text",
    "metadata": "jsonb",
    "archived": "boolean",
    "archived_at": "timestamptz",
    "agent_state": "jsonb",
    "updated_at": "timestamptz",
    "last_seq": "bigint",
    "own_count": "bigint",
    "total_bytes": "bigint",
    "input_tokens": "bigint",
    "output_tokens": "bigint",
    "total_tokens": "bigint",
    "fork_count": "int",
}

LOAD_THREADS = f"""
SELECT {", ".join(THREAD_COLUMNS)} FROM {{schema}}.threads
WHERE tenant_id = $1 AND thread_id = ANY($2::text[])
"""
FIND_MESSAGE = """
SELECT thread_id, seq FROM {schema}.messages WHERE tenant_id = $1 AND message_id = $2
"""
FIND_MESSAGES = """
SELECT message_id, thread_id, seq FROM {schema}.messages
WHERE tenant_id = $1 AND message_id = ANY($2::uuid[])
"""
TOTALS_AT = """
SELECT cum_bytes, cum_input_tokens, cum_output_tokens, cum_total_tokens
FROM {schema}.messages WHERE tenant_id = $1 AND thread_id = $2 AND seq = $3
"""
_ARRAYS = ", ".join(f"${i + 3}::{_TYPES[c]}[]" for i, c in enumerate(MUTABLE))
UPDATE_THREADS = f"""
UPDATE {{schema}}.threads t SET {", ".join(f"{c} = u.{c}" for c in MUTABLE)}
FROM unnest($1::text[], $2::text[], {_ARRAYS})
  AS u (tenant_id, thread_id, {", ".join(MUTABLE)})
WHERE t.tenant_id = u.tenant_id AND t.thread_id = u.thread_id
"""
REDACT = """
UPDATE {schema}.messages m SET
    parts = u.parts::jsonb, text = u.text, redacted = true, redaction_reason = u.reason
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[])
  AS u (tenant_id, thread_id, seq, parts, text, reason)
WHERE m.tenant_id = u.tenant_id AND m.thread_id = u.thread_id AND m.seq = u.seq
"""

Totals = tuple[int, int, int, int]  # bytes, input, output, total tokens


@dataclass
class ThreadState:
    """A thread row, as the batch changes it."""

    row: dict[str, Any]
    new: bool = False
    dirty: bool = False

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["row"][name]
        except KeyError:
            raise AttributeError(name) from None

    def set(self, **values: Any) -> None:
        self.row.update(values)
        self.dirty = True

    @property
    def totals(self) -> Totals:
        r = self.row
        return (r["total_bytes"], r["input_tokens"], r["output_tokens"], r["total_tokens"])


@dataclass
class PendingMessage:
    row: list[Any]
    thread_id: str
    seq: int
    totals: Totals


_REFERENCES: dict[type[Event], tuple[tuple[str, ...], tuple[str, ...]]] = {}


def _references(cls: type[Event]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The fields of an event type that name threads, and those that name stored messages.

    A ``MessageAppended``'s ``message_id`` is a new message's: not looked up, because
    the unique index ``messages_id`` refuses one stored before (``SessionsProjection.flush``
    names it)."""
    refs = _REFERENCES.get(cls)
    if refs is None:
        fields = cls.model_fields
        names = ("at_message_id",) if cls is MessageAppended else ("message_id", "at_message_id")
        refs = _REFERENCES[cls] = (
            tuple(n for n in ("thread_id", "source_thread_id") if n in fields),
            tuple(n for n in names if n in fields),
        )
    return refs


@dataclass
class SessionsBatch(Batch):
    conn: asyncpg.Connection
    schema: str
    threads: dict[tuple[str, str], ThreadState | None] = field(default_factory=dict)
    messages: list[PendingMessage] = field(default_factory=list)
    by_message_id: dict[tuple[str, UUID], PendingMessage] = field(default_factory=dict)
    redactions: list[tuple[str, str, int, str, str, str | None]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    known: dict[tuple[str, UUID], tuple[str, int] | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # the dataclass's own __init__ skips Batch's, which makes the connection text-safe
        # (array arguments escaped, rows copied in binary): without it a title holding the
        # escape's characters was stored unescaped by a rename and read back changed
        Batch.__init__(self, self.conn, self.schema)

    async def prefetch(self, events: Sequence[Event]) -> None:
        """Load every thread and message the batch refers to, in two queries per tenant."""
        threads: dict[str, set[str]] = {}
        messages: dict[str, set[UUID]] = {}
        for ev in events:
            tenant = ev.tenant_id
            thread_refs, message_refs = _references(type(ev))
            for name in thread_refs:
                value = getattr(ev, name)
                if value is not None and (tenant, value) not in self.threads:
                    threads.setdefault(tenant, set()).add(value)
            for name in message_refs:
                value = getattr(ev, name)
                if value is not None:
                    messages.setdefault(tenant, set()).add(value)
        for tenant, ids in threads.items():
            rows = await self.conn.fetch(LOAD_THREADS.format(schema=self.schema), tenant, list(ids))
            found = {r["thread_id"]: r for r in rows}
            for thread_id in ids:
                row = found.get(thread_id)
                self.threads[(tenant, thread_id)] = ThreadState(dict(row)) if row else None
        for tenant, mids in messages.items():
            rows = await self.conn.fetch(
                FIND_MESSAGES.format(schema=self.schema), tenant, list(mids)
            )
            for r in rows:
                self.known[(tenant, r["message_id"])] = (r["thread_id"], r["seq"])
            for mid in mids:
                self.known.setdefault((tenant, mid), None)

    async def thread(self, tenant: str, thread_id: str) -> ThreadState | None:
        key = (tenant, thread_id)
        if key not in self.threads:
            rows = await self.conn.fetch(
                LOAD_THREADS.format(schema=self.schema), tenant, [thread_id]
            )
            self.threads[key] = ThreadState(dict(rows[0])) if rows else None
        return self.threads[key]

    async def require(self, tenant: str, thread_id: str, event: Event) -> ThreadState:
        state = await self.thread(tenant, thread_id)
        if state is None:
            raise ProjectionError(f"{type(event).__name__} for unknown thread {thread_id!r}")
        root = getattr(event, "root_thread_id", None)
        if root is not None and root != state.root_id:
            raise ProjectionError(
                f"{type(event).__name__}: thread {thread_id!r} belongs to root {state.root_id!r}, "
                f"not {root!r}"
            )
        return state

    async def owner(self, tenant: str, state: ThreadState, seq: int) -> ThreadState:
        """The thread in ``state``'s lineage whose own messages include ``seq``."""
        current = state
        while seq <= current.fork_seq and current.parent_id is not None:
            parent = await self.thread(tenant, current.parent_id)
            if parent is None:
                raise ProjectionError(f"thread {current.thread_id!r} has a missing parent")
            current = parent
        return current

    def appended(self, tenant: str, message_id: UUID) -> bool:
        """Whether this batch appends a message ``message_id`` already (one stored
        before is refused by the unique index when the batch is flushed)."""
        return (tenant, message_id) in self.by_message_id

    async def find(self, tenant: str, message_id: UUID) -> tuple[str, int] | None:
        pending = self.by_message_id.get((tenant, message_id))
        if pending is not None:
            return pending.thread_id, pending.seq
        if (tenant, message_id) in self.known:  # prefetched (None: not stored)
            return self.known[(tenant, message_id)]
        row = await self.conn.fetchrow(FIND_MESSAGE.format(schema=self.schema), tenant, message_id)
        return (row[0], row[1]) if row else None

    async def totals_at(self, tenant: str, thread_id: str, seq: int) -> Totals:
        if seq == 0:
            return (0, 0, 0, 0)
        for pending in reversed(self.messages):
            if pending.thread_id == thread_id and pending.seq == seq and pending.row[0] == tenant:
                return pending.totals
        row = await self.conn.fetchrow(TOTALS_AT.format(schema=self.schema), tenant, thread_id, seq)
        if row is None:
            raise ProjectionError(f"message {seq} of thread {thread_id!r} is missing")
        return (row[0], row[1], row[2], row[3])

    async def visible(self, tenant: str, state: ThreadState, message_id: UUID) -> tuple[str, int]:
        """Where ``message_id`` lives, if ``state``'s thread shows it; else an error."""
        found = await self.find(tenant, message_id)
        if found is not None:
            owner_id, seq = found
            if (
                seq <= state.last_seq
                and (await self.owner(tenant, state, seq)).thread_id == owner_id
            ):
                return found
        raise ProjectionError(f"message {message_id} is not in thread {state.thread_id!r}")


# ── handlers ────────────────────────────────────────────────────────────────────────────
