"""The ``memory`` projection: items in namespaces (LangGraph's store, users' facts).

Views: ``memory.items`` (each item as it is now, with when it expires), ``memory.item_vectors``
(the embeddings of an item's indexed texts, for similarity search with pgvector) and
``memory.item_history`` (every value an item had, ``NULL`` once deleted: history and
time travel). Erasing a namespace removes its items and those under it from all three,
and is remembered (``erasures``), so a write made before the erase (a namespace deeper
than two labels may be on another partition) is dropped when it is applied after it.

Memory is written far less often than messages, so each event is applied as it comes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import asyncpg

from projections.base import Batch, EventMeta, Handler, Projection
from schemas.events import Event, Topic
from schemas.memory import (
    MemoryItemDeleted,
    MemoryItemPut,
    MemoryItemTouched,
    MemoryNamespaceErased,
)

__all__ = ["MemoryProjection"]

MIGRATIONS = (
    """
    DO $$ BEGIN
        CREATE EXTENSION IF NOT EXISTS vector;  -- similarity search; without it, in Python
    EXCEPTION WHEN OTHERS THEN NULL;
    END $$;
    CREATE TABLE {schema}.items (
        tenant_id   text NOT NULL,
        namespace   text[] NOT NULL,
        key         text NOT NULL,
        value       jsonb NOT NULL,
        created_at  timestamptz NOT NULL,
        updated_at  timestamptz NOT NULL,
        expires_at  timestamptz,
        ttl_s       float8,
        PRIMARY KEY (tenant_id, namespace, key)
    );
    CREATE TABLE {schema}.item_vectors (
        tenant_id  text NOT NULL,
        namespace  text[] NOT NULL,
        key        text NOT NULL,
        path       text NOT NULL,
        embedding  float8[] NOT NULL,
        PRIMARY KEY (tenant_id, namespace, key, path)
    );
    CREATE TABLE {schema}.item_history (
        tenant_id   text NOT NULL,
        namespace   text[] NOT NULL,
        key         text NOT NULL,
        value       jsonb,
        at          timestamptz NOT NULL,
        log_offset  bigint NOT NULL,
        event_id    uuid NOT NULL
    );
    CREATE INDEX item_history_key ON {schema}.item_history (tenant_id, namespace, key, at);
    CREATE TABLE {schema}.erasures (
        tenant_id  text NOT NULL,
        namespace  text[] NOT NULL,
        erased_at  timestamptz NOT NULL
    );
    CREATE INDEX erasures_namespace ON {schema}.erasures (tenant_id, namespace);
    """,
    """
    CREATE INDEX items_group ON {schema}.items (tenant_id, (namespace[1:2]));
    """,
    """
    CREATE INDEX item_history_group ON {schema}.item_history (tenant_id, (namespace[1:2]));
    CREATE INDEX item_vectors_group ON {schema}.item_vectors (tenant_id, (namespace[1:2]));
    """,
    """
    CREATE INDEX erasures_group ON {schema}.erasures (tenant_id, (namespace[1:2]));
    """,
)
"""``*_group``: a search under a prefix of two labels or more (one user's facts) reads that
group's items only (see ``projections.memory.queries``), erasing one user's memory
deletes that group's rows without reading the tenant's, and a write looks up the erasures
above it without reading every erasure of the tenant."""

UPSERT = """
INSERT INTO {schema}.items
    (tenant_id, namespace, key, value, created_at, updated_at, expires_at, ttl_s)
VALUES ($1, $2, $3, $4, $5, $5, $6, $7)
ON CONFLICT (tenant_id, namespace, key) DO UPDATE SET
    value = EXCLUDED.value, updated_at = EXCLUDED.updated_at,
    expires_at = EXCLUDED.expires_at, ttl_s = EXCLUDED.ttl_s
"""
DELETE_VECTORS = """
DELETE FROM {schema}.item_vectors WHERE tenant_id = $1 AND namespace = $2 AND key = $3
"""
INSERT_VECTORS = """
INSERT INTO {schema}.item_vectors (tenant_id, namespace, key, path, embedding)
SELECT $1, $2, $3, v.key,
       ARRAY(SELECT x::float8 FROM jsonb_array_elements_text(v.value) WITH ORDINALITY
             AS a (x, n) ORDER BY n)
FROM jsonb_each($4::jsonb) AS v
"""
HISTORY = """
INSERT INTO {schema}.item_history (tenant_id, namespace, key, value, at, log_offset, event_id)
VALUES ($1, $2, $3, $4, $5, $6, $7)
"""
DELETE_ITEM = "DELETE FROM {schema}.items WHERE tenant_id = $1 AND namespace = $2 AND key = $3"
TOUCH = """
UPDATE {schema}.items SET expires_at = $4
WHERE tenant_id = $1 AND namespace = $2 AND key = $3
"""
ERASED_SINCE = """
SELECT EXISTS (
    SELECT 1 FROM {schema}.erasures
    WHERE tenant_id = $1 AND ($2::text[])[1:cardinality(namespace)] = namespace
      AND erased_at >= $3
)
"""
ERASED_SINCE_IN_GROUP = """
SELECT EXISTS (
    SELECT 1 FROM {schema}.erasures
    WHERE tenant_id = $1 AND namespace[1:2] = ($2::text[])[1:2]
      AND ($2::text[])[1:cardinality(namespace)] = namespace AND erased_at >= $3
) OR EXISTS (
    SELECT 1 FROM {schema}.erasures
    WHERE tenant_id = $1 AND (namespace = ARRAY[]::text[] OR namespace = ($2::text[])[1:1])
      AND erased_at >= $3
)
"""
"""As ``ERASED_SINCE``, for a namespace of two labels or more: an erasure above it has its
first two labels (found through ``erasures_group``), or is one of the two shorter
namespaces above it (found through ``erasures_namespace``)."""
REMEMBER_ERASURE = """
INSERT INTO {schema}.erasures (tenant_id, namespace, erased_at) VALUES ($1, $2, $3)
"""
_UNDER = "tenant_id = $1 AND namespace[1:cardinality($2::text[])] = $2::text[]"
_IN_GROUP = " AND namespace[1:2] = ($2::text[])[1:2]"  # what the *_group indexes answer


def _erase(under: str) -> tuple[str, str, str]:
    return (
        f"DELETE FROM {{schema}}.items WHERE {under} AND updated_at <= $3",
        f"DELETE FROM {{schema}}.item_history WHERE {under} AND at <= $3",
        f"""
    DELETE FROM {{schema}}.item_vectors v WHERE {under.replace("namespace", "v.namespace")}
    AND NOT EXISTS (SELECT 1 FROM {{schema}}.items i WHERE i.tenant_id = v.tenant_id
                    AND i.namespace = v.namespace AND i.key = v.key)
    """,
    )


ERASE = _erase(_UNDER)
"""What an erase removes: what was written under the namespace up to when it was erased
(a write made after it, on another partition, may be applied before it: it stays)."""

ERASE_IN_GROUP = _erase(_UNDER + _IN_GROUP)
"""As ``ERASE``, for a namespace of two labels or more (one user's memory): the same rows,
found through the group indexes."""


class MemoryBatch(Batch):
    async def execute(self, sql: str, *args: object) -> None:
        await self.conn.execute(sql.format(schema=self.schema), *args)

    async def erased_since(self, tenant: str, namespace: list[str], at: object) -> bool:
        """Whether ``namespace`` (or one above it) was erased at ``at`` or later."""
        query = ERASED_SINCE_IN_GROUP if len(namespace) >= 2 else ERASED_SINCE
        sql = query.format(schema=self.schema)
        return bool(await self.conn.fetchval(sql, tenant, namespace, at))


async def on_put(batch: MemoryBatch, ev: MemoryItemPut, meta: EventMeta) -> None:
    ns = list(ev.namespace)
    if await batch.erased_since(ev.tenant_id, ns, ev.occurred_at):
        return  # written before an erase above it that was applied first: erased too
    await batch.execute(
        UPSERT, ev.tenant_id, ns, ev.key, ev.value, ev.occurred_at, ev.expires_at, ev.ttl_s
    )
    await batch.execute(DELETE_VECTORS, ev.tenant_id, ns, ev.key)
    if ev.vectors:
        await batch.execute(
            INSERT_VECTORS,
            ev.tenant_id,
            ns,
            ev.key,
            {v.path: list(v.vector) for v in ev.vectors},
        )
    await batch.execute(
        HISTORY, ev.tenant_id, ns, ev.key, ev.value, ev.occurred_at, meta.offset, ev.event_id
    )


async def on_deleted(batch: MemoryBatch, ev: MemoryItemDeleted, meta: EventMeta) -> None:
    ns = list(ev.namespace)
    await batch.execute(DELETE_ITEM, ev.tenant_id, ns, ev.key)
    await batch.execute(DELETE_VECTORS, ev.tenant_id, ns, ev.key)
    await batch.execute(
        HISTORY, ev.tenant_id, ns, ev.key, None, ev.occurred_at, meta.offset, ev.event_id
    )


async def on_touched(batch: MemoryBatch, ev: MemoryItemTouched, meta: EventMeta) -> None:
    await batch.execute(TOUCH, ev.tenant_id, list(ev.namespace), ev.key, ev.expires_at)


async def on_erased(batch: MemoryBatch, ev: MemoryNamespaceErased, meta: EventMeta) -> None:
    ns = list(ev.namespace)
    items, history, vectors = ERASE_IN_GROUP if len(ns) >= 2 else ERASE
    await batch.execute(items, ev.tenant_id, ns, ev.occurred_at)
    await batch.execute(history, ev.tenant_id, ns, ev.occurred_at)
    await batch.execute(vectors, ev.tenant_id, ns)
    await batch.execute(REMEMBER_ERASURE, ev.tenant_id, list(ev.namespace), ev.occurred_at)


class MemoryProjection(Projection[MemoryBatch]):
    """Items in namespaces, their embeddings and their history."""

    name = "memory"
    version = 1
    topics = (Topic.MEMORY,)
    migrations = MIGRATIONS
    views = ("items", "item_vectors", "item_history")
    handlers: ClassVar[Mapping[type[Event], Handler]] = {
        MemoryItemPut: on_put,
        MemoryItemDeleted: on_deleted,
        MemoryItemTouched: on_touched,
        MemoryNamespaceErased: on_erased,
    }

    def begin(self, conn: asyncpg.Connection, schema: str) -> MemoryBatch:
        return MemoryBatch(conn, schema)

    async def flush(self, batch: MemoryBatch) -> None:
        return None
