"""Items in namespaces, as events on the log: what LangGraph's store and users' facts are
built on (``hub.memory.items``).

An item is a JSON object under a key in a namespace (a tuple of labels). It may expire
(``expires_at``), and may carry embeddings of its texts, which similarity search ranks
by cosine similarity (pgvector in the database; in Python where the extension is
missing). Every value an item had is kept until its namespace is erased.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
from pydantic import ValidationError

from hub.core.inputs import build_event
from projections.memory import queries
from projections.text import load_texts
from schemas.errors import InputError
from schemas.events import Topic
from schemas.memory import (
    ItemVector,
    MemoryItemDeleted,
    MemoryItemPut,
    MemoryItemTouched,
    MemoryNamespaceErased,
    partition_key_of,
)

if TYPE_CHECKING:
    from hub.core.context import HubContext

__all__ = ["ItemVersion", "ItemsClient", "StoredItem"]

MEMORY = str(Topic.MEMORY)
Namespace = tuple[str, ...]


@dataclass(frozen=True)
class StoredItem:
    namespace: Namespace
    key: str
    value: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None = None
    ttl_s: float | None = None
    score: float | None = None


@dataclass(frozen=True)
class ItemVersion:
    """A value an item had from ``at`` on (``None``: deleted)."""

    value: dict[str, Any] | None
    at: datetime


def _item(row: Mapping[str, Any], score: float | None = None) -> StoredItem:
    return StoredItem(
        namespace=tuple(load_texts(row["namespace"])),
        key=row["key"],
        value=row["value"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        expires_at=row["expires_at"],
        ttl_s=row["ttl_s"],
        score=score,
    )


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norms if norms else 0.0


def _vector(path: str, vector: Sequence[float]) -> ItemVector:
    try:
        return ItemVector(path=path, vector=tuple(vector))
    except (ValidationError, TypeError):
        raise InputError(
            f"vectors.{path}: a list of finite numbers", field=f"vectors.{path}"
        ) from None


class ItemsClient:
    """Items in namespaces of this client's tenant."""

    def __init__(self, ctx: HubContext) -> None:
        self._ctx = ctx
        self._pgvector: bool | None = None

    # ── writing ─────────────────────────────────────────────────────────────────────────

    async def put(
        self,
        namespace: Sequence[str],
        key: str,
        value: Mapping[str, Any],
        *,
        ttl_s: float | None = None,
        vectors: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        """Store ``value`` under ``key`` (replacing what was there); ``ttl_s``: seconds
        until it expires (a read may refresh it); ``vectors``: the embeddings of its texts
        by path, for similarity search."""
        expires_at = None if ttl_s is None else datetime.now(UTC) + timedelta(seconds=ttl_s)
        event = build_event(
            MemoryItemPut,
            **self._ctx.envelope(),
            namespace=tuple(namespace),
            key=key,
            value=dict(value) if isinstance(value, Mapping) else value,
            expires_at=expires_at,
            ttl_s=ttl_s,
            vectors=[_vector(p, v) for p, v in (vectors or {}).items()],
        )
        await self._ctx.emit(event)

    async def delete(self, namespace: Sequence[str], key: str) -> None:
        """Delete an item (its history keeps the values it had)."""
        fields = {"namespace": tuple(namespace), "key": key}
        await self._ctx.emit(build_event(MemoryItemDeleted, **self._ctx.envelope(), **fields))

    async def touch(self, namespace: Sequence[str], key: str, expires_at: datetime) -> None:
        """Move an item's expiry (a read that refreshes its time to live)."""
        event = build_event(
            MemoryItemTouched,
            **self._ctx.envelope(),
            namespace=tuple(namespace),
            key=key,
            expires_at=expires_at,
        )
        await self._ctx.emit(event)

    async def erase(self, namespace: Sequence[str]) -> None:
        """Erase a namespace: its items and those under it, with all their history."""
        event = build_event(
            MemoryNamespaceErased, **self._ctx.envelope(), namespace=tuple(namespace)
        )
        await self._ctx.emit(event)
        await self._settled(namespace)

    # ── reading ─────────────────────────────────────────────────────────────────────────

    async def _settled(self, namespace: Sequence[str] | None) -> None:
        if namespace is None:
            await self._ctx.wait_for_projections(topics=[MEMORY])
        else:
            await self._ctx.wait_for_key(MEMORY, partition_key_of(namespace))

    async def get(
        self, namespace: Sequence[str], key: str, *, now: datetime | None = None
    ) -> StoredItem | None:
        """The live item, or ``None``."""
        await self._settled(namespace)
        row = await self._ctx.pool.fetchrow(
            queries.ITEM, self._ctx.tenant, list(namespace), now or datetime.now(UTC), key
        )
        return None if row is None else _item(row)

    async def search(
        self,
        prefix: Sequence[str],
        *,
        contains: Mapping[str, Any] | None = None,
        vector: Sequence[float] | None = None,
        limit: int | None = 10,
        offset: int = 0,
        now: datetime | None = None,
    ) -> builtins.list[StoredItem]:
        """Live items under ``prefix`` whose value contains ``contains`` (JSON
        containment); newest first, or most similar to ``vector`` first (then the items
        with no embedding, newest first)."""
        exact = len(prefix) > 0
        await self._settled(prefix if exact else None)
        args = (
            self._ctx.tenant,
            list(prefix),
            now or datetime.now(UTC),
            dict(contains) if contains else None,
        )
        pool, search = self._ctx.pool, queries.search_under(len(prefix))
        if vector is None:
            rows = await pool.fetch(search.items, *args, limit, offset)
            return [_item(r) for r in rows]
        wanted = None if limit is None else limit + offset
        query = [float(x) for x in vector]
        if not all(math.isfinite(x) for x in query):
            raise InputError("vector: finite numbers only", field="vector")
        if await self._has_pgvector():
            try:
                rows = await pool.fetch(search.similar, *args, wanted, 0, query)
            except asyncpg.DataError as exc:  # another length than the stored embeddings
                raise InputError(f"vector: {exc}", field="vector") from None
            ranked = [_item(r, float(r["score"])) for r in rows]
        else:
            ranked = await self._similar_in_python(search, args, vector, wanted)
        if wanted is None or len(ranked) < wanted:  # then the items with no embedding
            scored = {(i.namespace, i.key) for i in ranked}
            more = None if wanted is None else wanted + len(scored)
            rest = await pool.fetch(search.items, *args, more, 0)
            ranked += [i for i in map(_item, rest) if (i.namespace, i.key) not in scored]
        return ranked[offset:] if limit is None else ranked[offset : offset + limit]

    async def _similar_in_python(
        self,
        search: queries.Search,
        args: tuple[Any, ...],
        vector: Sequence[float],
        count: int | None,
    ) -> builtins.list[StoredItem]:
        pool = self._ctx.pool
        rows = await pool.fetch(search.similar_python, *args[:3])
        if any(len(e) != len(vector) for r in rows for e in r["embeddings"]):
            raise InputError(
                f"vector: {len(vector)} numbers, but the embeddings stored have another length",
                field="vector",
            )
        scores = {
            (tuple(load_texts(r["namespace"])), r["key"]): max(
                _cosine(vector, e) for e in r["embeddings"]
            )
            for r in rows
        }
        items = await pool.fetch(search.items, *args, None, 0)
        found = [
            _item(r, scores[key])
            for r in items
            if (key := (tuple(load_texts(r["namespace"])), r["key"])) in scores
        ]
        found.sort(key=lambda i: -(i.score or 0.0))
        return found[:count]

    async def _has_pgvector(self) -> bool:
        if self._pgvector is None:
            self._pgvector = bool(await self._ctx.pool.fetchval(queries.HAS_VECTOR))
        return self._pgvector

    async def namespaces(self, *, now: datetime | None = None) -> builtins.list[Namespace]:
        """Every namespace holding a live item, in order."""
        await self._settled(None)
        rows = await self._ctx.pool.fetch(
            queries.NAMESPACES, self._ctx.tenant, now or datetime.now(UTC)
        )
        return [tuple(load_texts(r["namespace"])) for r in rows]

    async def history(self, namespace: Sequence[str], key: str) -> builtins.list[ItemVersion]:
        """Every value the item had, oldest first (``value`` ``None``: deleted then)."""
        await self._settled(namespace)
        rows = await self._ctx.pool.fetch(queries.HISTORY, self._ctx.tenant, list(namespace), key)
        return [ItemVersion(r["value"], r["at"]) for r in rows]

    async def as_of(
        self, namespace: Sequence[str], at: datetime
    ) -> builtins.list[tuple[str, dict[str, Any], datetime]]:
        """The namespace's items as they were at ``at``: ``(key, value, since)``."""
        await self._settled(namespace)
        rows = await self._ctx.pool.fetch(queries.AS_OF, self._ctx.tenant, list(namespace), at)
        return [(r["key"], r["value"], r["at"]) for r in rows]
