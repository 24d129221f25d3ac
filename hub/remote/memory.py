"""``hub.memory`` in remote mode: the direct client's checks and events, with users' facts
read over HTTP (``hub.memory.items``, the generic store, needs direct mode)."""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any

from hub.memory.client import Fact, FactVersion, MemoryClient, namespace_of
from hub.remote.api import quote_segment as _q
from hub.remote.context import RemoteContext
from hub.remote.items import RemoteItems
from schemas.errors import InputError

__all__ = ["RemoteMemory"]


def _fact(found: dict[str, Any]) -> Fact:
    return Fact(
        found["user_id"],
        found["key"],
        found["value"],
        found["category"],
        datetime.fromisoformat(found["created_at"]),
        datetime.fromisoformat(found["updated_at"]),
    )


class RemoteMemory(MemoryClient):
    """Users' facts over HTTP."""

    def __init__(self, ctx: RemoteContext) -> None:
        super().__init__(ctx)
        self.items = RemoteItems(ctx)
        self._api = ctx.api
        self._outbox = ctx.outbox

    async def _get(self, user_id: str, path: str = "", params: dict[str, Any] | None = None) -> Any:
        namespace_of(user_id)  # the same check as direct mode
        await self._outbox.flush()
        return await self._api.get_or_none(f"/v1/users/{_q(user_id)}/memory{path}", params)

    async def get(self, user_id: str, key: str) -> Fact | None:
        found = await self._get(user_id, f"/{_q(key)}")
        return None if found is None else _fact(found)

    async def get_all(self, user_id: str, *, category: str | None = None) -> builtins.list[Fact]:
        params = {"category": category} if category is not None else None
        found = await self._get(user_id, "", params)
        return [] if found is None else [_fact(f) for f in found["facts"]]

    async def history(self, user_id: str, key: str) -> builtins.list[FactVersion]:
        found = await self._get(user_id, f"/{_q(key)}/history")
        versions = [] if found is None else found["versions"]
        return [
            FactVersion(v["value"], v["category"], datetime.fromisoformat(v["at"]), v["deleted"])
            for v in versions
        ]

    async def as_of(self, user_id: str, at: datetime) -> builtins.list[Fact]:
        if at.tzinfo is None:
            raise InputError("at: must be a timezone-aware datetime", field="at")
        found = await self._get(user_id, "", {"as_of": at.isoformat()})
        return [] if found is None else [_fact(f) for f in found["facts"]]
