"""LangGraph's long-term memory store on the hub: ``HubStore`` (``BaseStore``).

Items are events on the log (``hub.memory.items``): namespaces, keys, JSON values, time to
live (refreshed on read, as LangGraph's own stores do), metadata filters and, with an
``index`` (``{"dims": ..., "embed": ..., "fields": [...]}``), similarity search over the
embeddings of the indexed fields, ranked by pgvector. A user's facts in ``hub.memory``
are the items of ``("memories", user_id)``, so LangGraph's memory tools see them.

    from hub.integrations.langgraph import HubStore
    graph = builder.compile(checkpointer=HubCheckpointSaver(), store=HubStore())
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    IndexConfig,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    ensure_embeddings,
    validate_op_namespace,
)
from langgraph.store.base.embed import get_text_at_path, tokenize_path

from hub.bridge import SyncHub
from hub.client import Hub
from hub.integrations.langgraph.runner import HubRunner
from hub.memory.items import ItemsClient, StoredItem

__all__ = ["HubStore"]


class HubStore(BaseStore):
    """LangGraph's ``BaseStore`` on the hub, async and sync."""

    supports_ttl = True

    def __init__(
        self,
        hub: Hub | SyncHub | None = None,
        *,
        index: IndexConfig | None = None,
        ttl: TTLConfig | None = None,
    ) -> None:
        self._runner = HubRunner(hub, type(self).__name__)
        self.ttl_config = ttl
        self.index_config = dict(index) if index else None
        self.embeddings = ensure_embeddings(index.get("embed")) if index else None
        fields = (index or {}).get("fields") or ["$"]
        self._fields = [(p, tokenize_path(p) if p != "$" else p) for p in fields]

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        listed = list(ops)
        return self._runner.block(lambda hub: self._apply(hub.memory.items, listed))

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        listed = list(ops)
        return await self._runner.run(lambda hub: self._apply(hub.memory.items, listed))

    async def _apply(self, items: ItemsClient, ops: list[Op]) -> list[Result]:
        results: list[Result] = []
        for op in ops:
            validate_op_namespace(op)
            if isinstance(op, GetOp):
                results.append(await self._get(items, op))
            elif isinstance(op, SearchOp):
                results.append(await self._search(items, op))
            elif isinstance(op, PutOp):
                await self._put(items, op)
                results.append(None)
            elif isinstance(op, ListNamespacesOp):
                results.append(await self._namespaces(items, op))
            else:
                raise ValueError(f"unknown operation: {type(op).__name__}")
        return results

    # ── operations ──────────────────────────────────────────────────────────────────────

    def _refresh(self, asked: bool | None) -> bool:
        if asked is not None:
            return asked
        return bool((self.ttl_config or {}).get("refresh_on_read", True))

    async def _refreshed(self, items: ItemsClient, found: StoredItem, refresh: bool) -> None:
        if refresh and found.ttl_s is not None:
            expires = datetime.now(UTC) + timedelta(seconds=found.ttl_s)
            await items.touch(found.namespace, found.key, expires)

    async def _get(self, items: ItemsClient, op: GetOp) -> Item | None:
        found = await items.get(op.namespace, op.key)
        if found is None:
            return None
        await self._refreshed(items, found, self._refresh(op.refresh_ttl))
        return Item(
            value=found.value,
            key=found.key,
            namespace=found.namespace,
            created_at=found.created_at,
            updated_at=found.updated_at,
        )

    async def _search(self, items: ItemsClient, op: SearchOp) -> list[SearchItem]:
        vector = None
        if op.query and self.embeddings is not None:
            vector = await self.embeddings.aembed_query(op.query)
        contains, exact = _containment(op.filter or {})
        if exact:
            found = await items.search(
                op.namespace_prefix,
                contains=contains,
                vector=vector,
                limit=op.limit,
                offset=op.offset,
            )
        else:  # operators or lists: matched here, then paged
            every = await items.search(
                op.namespace_prefix, contains=contains, vector=vector, limit=None
            )
            kept = [i for i in every if _matches(i.value, op.filter or {})]
            found = kept[op.offset : op.offset + op.limit]
        refresh = self._refresh(op.refresh_ttl)
        for item in found:
            await self._refreshed(items, item, refresh)
        return [
            SearchItem(
                namespace=i.namespace,
                key=i.key,
                value=i.value,
                created_at=i.created_at,
                updated_at=i.updated_at,
                score=i.score,
            )
            for i in found
        ]

    async def _put(self, items: ItemsClient, op: PutOp) -> None:
        if op.value is None:
            await items.delete(op.namespace, op.key)
            return
        ttl_minutes = op.ttl if op.ttl is not None else (self.ttl_config or {}).get("default_ttl")
        if not isinstance(ttl_minutes, int | float):  # NOT_PROVIDED and no default
            ttl_minutes = None
        vectors = await self._vectors(op)
        await items.put(
            op.namespace,
            op.key,
            op.value,
            ttl_s=None if ttl_minutes is None else float(ttl_minutes) * 60,
            vectors=vectors,
        )

    async def _vectors(self, op: PutOp) -> dict[str, list[float]]:
        if self.embeddings is None or op.index is False or op.value is None:
            return {}
        fields = self._fields if op.index is None else [(p, tokenize_path(p)) for p in op.index]
        texts: list[tuple[str, str]] = []
        for path, tokens in fields:
            found = get_text_at_path(op.value, tokens)
            if len(found) == 1:
                texts.append((path, found[0]))
            else:
                texts += [(f"{path}.{i}", text) for i, text in enumerate(found)]
        if not texts:
            return {}
        embedded = await self.embeddings.aembed_documents([t for _, t in texts])
        return {path: list(vector) for (path, _), vector in zip(texts, embedded, strict=True)}

    async def _namespaces(self, items: ItemsClient, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        found = [
            ns
            for ns in await items.namespaces()
            if all(_namespace_matches(c, ns) for c in op.match_conditions or ())
        ]
        if op.max_depth is not None:
            found = sorted({ns[: op.max_depth] for ns in found})
        return found[op.offset : op.offset + op.limit]


def _plain(value: Any) -> bool:
    if isinstance(value, Mapping):
        return all(not str(k).startswith("$") and _plain(v) for k, v in value.items())
    return not isinstance(value, list | tuple)


def _containment(filter: Mapping[str, Any]) -> tuple[dict[str, Any] | None, bool]:
    """The part of a filter JSON containment answers exactly, and whether that is all."""
    plain = {k: v for k, v in filter.items() if _plain(v)}
    return (plain or None), len(plain) == len(filter)


def _matches(value: Mapping[str, Any], filter: Mapping[str, Any]) -> bool:
    return all(_compare(value.get(k), v) for k, v in filter.items())


def _compare(have: Any, want: Any) -> bool:
    """LangGraph's filter semantics: nested objects match by key, lists element by
    element, ``{"$op": x}`` compares (``$eq``, ``$ne``, ``$gt``, ``$gte``, ``$lt``, ``$lte``)."""
    if isinstance(want, Mapping):
        if any(str(k).startswith("$") for k in want):
            return all(_operator(have, op, v) for op, v in want.items())
        return isinstance(have, Mapping) and all(_compare(have.get(k), v) for k, v in want.items())
    if isinstance(want, list | tuple):
        return (
            isinstance(have, list | tuple)
            and len(have) == len(want)
            and all(_compare(h, w) for h, w in zip(have, want, strict=True))
        )
    return bool(have == want)


def _operator(have: Any, op: str, want: Any) -> bool:
    if op == "$eq":
        return bool(have == want)
    if op == "$ne":
        return bool(have != want)
    if have is None:
        return False
    compare = {"$gt": float.__gt__, "$gte": float.__ge__, "$lt": float.__lt__, "$lte": float.__le__}
    if op not in compare:
        raise ValueError(f"unsupported filter operator: {op}")
    return bool(compare[op](float(have), float(want)))


def _namespace_matches(condition: MatchCondition, namespace: Sequence[str]) -> bool:
    path = condition.path
    if len(namespace) < len(path):
        return False
    pairs = (
        zip(namespace, path, strict=False)
        if condition.match_type == "prefix"
        else zip(reversed(namespace), reversed(path), strict=False)
    )
    return all(p == "*" or n == p for n, p in pairs)
