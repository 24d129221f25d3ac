"""The ``access`` projection: one row per API key in ``access.keys``.

A key is created once (the same event again is a no-op; the same id with another secret
is poison) and revoked at most once; revoking a key that does not exist is poison. Only
the SHA-256 of a key's secret is stored, so the table never holds a usable credential.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

import asyncpg

from projections.base import Batch, EventMeta, Handler, Projection
from schemas.errors import ProjectionError
from schemas.events import ApiKeyCreated, ApiKeyRevoked, Event, Topic

__all__ = ["AccessProjection"]

MIGRATIONS = (
    """
    CREATE TABLE {schema}.keys (
        key_id          text PRIMARY KEY,
        tenant_id       text NOT NULL,
        role            text NOT NULL CHECK (role IN ('reader', 'writer', 'admin')),
        name            text,
        secret_sha256   text NOT NULL,
        created_at      timestamptz NOT NULL,
        created_by      text NOT NULL,
        revoked_at      timestamptz,
        revoked_by      text,
        revoked_reason  text
    );
    CREATE INDEX keys_tenant ON {schema}.keys (tenant_id, created_at);
    """,
)

KNOWN = "SELECT key_id, secret_sha256 FROM {schema}.keys WHERE key_id = ANY($1::text[])"
INSERT = """
INSERT INTO {schema}.keys (key_id, tenant_id, role, name, secret_sha256, created_at, created_by)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                     $6::timestamptz[], $7::text[])
"""
REVOKE = """
UPDATE {schema}.keys k SET revoked_at = u.at, revoked_by = u.actor, revoked_reason = u.reason
FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[]) AS u (key_id, at, actor, reason)
WHERE k.key_id = u.key_id AND k.revoked_at IS NULL
"""


class AccessBatch(Batch):
    def __init__(self, conn: asyncpg.Connection, schema: str) -> None:
        super().__init__(conn, schema)
        self.known: dict[str, str] = {}  # key id: the secret's hash, of every key seen
        self.created: list[tuple[Any, ...]] = []
        self.revoked: dict[str, tuple[datetime, str, str | None]] = {}


def on_created(batch: AccessBatch, ev: ApiKeyCreated, meta: EventMeta) -> None:
    known = batch.known.get(ev.key_id)
    if known is not None:
        if known == ev.secret_sha256:
            return  # the same key again (a retried create): nothing changes
        raise ProjectionError(f"API key {ev.key_id!r} exists already with another secret")
    batch.known[ev.key_id] = ev.secret_sha256
    batch.created.append(
        (
            ev.key_id,
            ev.tenant_id,
            str(ev.role),
            ev.name,
            ev.secret_sha256,
            ev.occurred_at,
            ev.actor,
        )
    )


def on_revoked(batch: AccessBatch, ev: ApiKeyRevoked, meta: EventMeta) -> None:
    if ev.key_id not in batch.known:
        raise ProjectionError(f"API key {ev.key_id!r} was revoked but never created")
    batch.revoked.setdefault(ev.key_id, (ev.occurred_at, ev.actor, ev.reason))


class AccessProjection(Projection[AccessBatch]):
    """API keys: their tenant, role and the hash of their secret."""

    name = "access"
    version = 1
    topics = (Topic.ACCESS,)
    migrations = MIGRATIONS
    views = ("keys",)
    handlers: ClassVar[Mapping[type[Event], Handler]] = {
        ApiKeyCreated: on_created,
        ApiKeyRevoked: on_revoked,
    }

    def begin(self, conn: asyncpg.Connection, schema: str) -> AccessBatch:
        return AccessBatch(conn, schema)

    async def prepare(self, batch: AccessBatch, events: Sequence[Event]) -> None:
        ids = sorted({e.key_id for e in events if isinstance(e, ApiKeyCreated | ApiKeyRevoked)})
        if ids:
            rows = await batch.conn.fetch(KNOWN.format(schema=batch.schema), ids)
            batch.known.update({r["key_id"]: r["secret_sha256"] for r in rows})

    async def flush(self, batch: AccessBatch) -> None:
        conn, schema = batch.conn, batch.schema
        if batch.created:
            columns = list(zip(*batch.created, strict=True))
            await conn.execute(INSERT.format(schema=schema), *columns)
        if batch.revoked:
            items = list(batch.revoked.items())
            await conn.execute(
                REVOKE.format(schema=schema),
                [k for k, _ in items],
                [at for _, (at, _a, _r) in items],
                [actor for _, (_t, actor, _r) in items],
                [reason for _, (_t, _a, reason) in items],
            )
