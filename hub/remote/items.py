"""``hub.memory.items`` in remote mode: the direct client's events, with reads over HTTP
(``/v1/memory/...``)."""

from __future__ import annotations

import builtins
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from hub.memory.items import ItemsClient, ItemVersion, Namespace, StoredItem
from hub.remote.context import RemoteContext
from schemas.errors import InputError

__all__ = ["RemoteItems"]


def _when(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _item(found: dict[str, Any]) -> StoredItem:
    return StoredItem(
        namespace=tuple(found["namespace"]),
        key=found["key"],
        value=found["value"],
        created_at=datetime.fromisoformat(found["created_at"]),
        updated_at=datetime.fromisoformat(found["updated_at"]),
        expires_at=_when(found["expires_at"]),
        ttl_s=found["ttl_s"],
        score=found["score"],
    )


class RemoteItems(ItemsClient):
    """Items in namespaces over HTTP."""

    def __init__(self, ctx: RemoteContext) -> None:
        super().__init__(ctx)
        self._api = ctx.api
        self._outbox = ctx.outbox

    async def _get(self, path: str, params: Mapping[str, Any]) -> Any:
        await self._outbox.flush()
        return await self._api.get_or_none(path, {k: v for k, v in params.items() if v is not None})

    async def get(
        self, namespace: Sequence[str], key: str, *, now: datetime | None = None
    ) -> StoredItem | None:
        found = await self._get("/v1/memory/items", {"namespace": list(namespace), "key": key})
        return None if found is None else _item(found)

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
        out: builtins.list[StoredItem] = []
        while True:  # pages of up to 1,000 (all of them when limit is None)
            page = 1000 if limit is None else min(1000, limit - len(out))
            found = await self._get(
                "/v1/memory/search",
                {
                    "prefix": list(prefix),
                    "contains": json.dumps(dict(contains)) if contains else None,
                    "vector": ",".join(repr(float(x)) for x in vector) if vector else None,
                    "limit": page,
                    "offset": offset + len(out),
                },
            )
            items = [_item(i) for i in found["items"]]
            out += items
            if len(items) < page or (limit is not None and len(out) >= limit):
                return out

    async def namespaces(self, *, now: datetime | None = None) -> builtins.list[Namespace]:
        found = await self._get("/v1/memory/namespaces", {})
        return [tuple(ns) for ns in found["namespaces"]]

    async def history(self, namespace: Sequence[str], key: str) -> builtins.list[ItemVersion]:
        found = await self._get("/v1/memory/history", {"namespace": list(namespace), "key": key})
        return [ItemVersion(v["value"], datetime.fromisoformat(v["at"])) for v in found["versions"]]

    async def as_of(
        self, namespace: Sequence[str], at: datetime
    ) -> builtins.list[tuple[str, dict[str, Any], datetime]]:
        if at.tzinfo is None:
            raise InputError("at: must be a timezone-aware datetime", field="at")
        found = await self._get(
            "/v1/memory/as-of", {"namespace": list(namespace), "at": at.astimezone(UTC).isoformat()}
        )
        return [(i["key"], i["value"], datetime.fromisoformat(i["since"])) for i in found["items"]]
