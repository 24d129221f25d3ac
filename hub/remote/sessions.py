"""``hub.sessions`` in remote mode: the direct client's checks and events, with reads and
blobs through the hub's API and appends batched by the outbox."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from hub.core.cursor import CursorList
from hub.infra.ports import Position, ProducerRecord
from hub.remote.api import quote_segment as _q
from hub.remote.context import RemoteContext
from hub.sessions.client import SessionsClient
from hub.sessions.models import (
    Message,
    Page,
    SearchHit,
    ThreadInfo,
    ThreadSnapshot,
    ThreadStats,
    TreeNode,
)
from schemas.errors import InputError, NotFoundError

__all__ = ["RemoteSessions", "at_param"]


def at_param(at: datetime | int | Position) -> str:
    """``at`` as the as-of routes take it."""
    if isinstance(at, bool) or not isinstance(at, datetime | int | Position):
        raise InputError(
            "at: give a timezone-aware datetime, a log offset or a Position", field="at"
        )
    if isinstance(at, Position):
        return f"{at.topic}:{at.partition}:{at.offset}"
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise InputError("at: a datetime must be timezone-aware", field="at")
        return at.isoformat()
    return str(at)


class RemoteSessions(SessionsClient):
    """Threads and messages over HTTP."""

    def __init__(self, ctx: RemoteContext) -> None:
        super().__init__(ctx)
        self._api = ctx.api
        self._outbox = ctx.outbox

    async def _read(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        await self._outbox.flush()  # read your writes: send them first
        return await self._api.get(path, params)

    async def _root_of(self, thread_id: str) -> str:
        if not isinstance(thread_id, str) or not thread_id:
            raise InputError("thread_id: must be a non-empty string", field="thread_id")
        root = self._roots.get(thread_id)
        if root is None:
            info = await self.get(thread_id)
            if info is None:
                raise NotFoundError(f"no thread {thread_id!r}")
            root = info.root_id
        return root

    async def _send_messages(self, records: builtins.list[ProducerRecord]) -> None:
        await self._outbox.put(records)  # sent within the linger, with others

    async def _put_blob(self, data: bytes, digest: str, content_type: str, name: str | None) -> str:
        params = {"sha256": digest, "content_type": content_type, "name": name}
        stored = await self._api.upload(
            "/v1/blobs", data, params=params, content_type="application/octet-stream"
        )
        uri: str = stored["uri"]
        return uri

    # ── reads ───────────────────────────────────────────────────────────────────────────

    async def get(self, thread_id: str) -> ThreadInfo | None:
        await self._outbox.flush()
        found = await self._api.get_or_none(f"/v1/threads/{_q(thread_id)}")
        if found is None:
            return None
        info = ThreadInfo.model_validate(found["thread"])
        self._roots[thread_id] = info.root_id
        return info

    async def list(
        self,
        *,
        agent_id: str | None = None,
        user_id: str | None = None,
        archived: bool | None = False,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        params = {
            "agent_id": agent_id,
            "user_id": user_id,
            "archived": "" if archived is None else str(archived).lower(),
            "limit": limit,
            "cursor": cursor,
        }
        return Page.model_validate(await self._read("/v1/threads", params))

    async def messages(
        self,
        thread_id: str,
        *,
        limit: int = 100,
        cursor: str | None = None,
        before: int | None = None,
        after: int | None = None,
    ) -> CursorList[Message]:
        params = {"limit": limit, "cursor": cursor, "before": before, "after": after}
        found = await self._read(f"/v1/threads/{_q(thread_id)}/messages", params)
        messages = [Message.model_validate(m) for m in found["messages"]]
        return CursorList(messages, found["next_cursor"])

    async def message(self, thread_id: str, message_id: UUID | str) -> Message:
        try:
            target = message_id if isinstance(message_id, UUID) else UUID(str(message_id))
        except ValueError:
            raise InputError("message_id: not a UUID", field="message_id") from None
        found = await self._read(f"/v1/threads/{_q(thread_id)}/messages/{target}")
        return Message.model_validate(found)

    async def stats(self, thread_id: str) -> ThreadStats:
        found = await self._read(f"/v1/threads/{_q(thread_id)}")
        return ThreadStats.model_validate(found["stats"])

    async def tree(self, thread_id: str) -> TreeNode:
        return TreeNode.model_validate(await self._read(f"/v1/threads/{_q(thread_id)}/tree"))

    async def search(
        self,
        query: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        limit: int = 20,
    ) -> builtins.list[SearchHit]:
        if not query or not query.strip():
            raise InputError("query: must not be empty", field="query")
        params = {"q": query, "user_id": user_id, "agent_id": agent_id, "limit": limit}
        found = await self._read("/v1/search", params)
        return [SearchHit.model_validate(h) for h in found["hits"]]

    async def agent_state(self, thread_id: str) -> dict[str, Any] | None:
        found = await self._read(f"/v1/threads/{_q(thread_id)}/agent-state")
        state: dict[str, Any] | None = found["state"]
        return state

    async def as_of(self, thread_id: str, at: datetime | int | Position) -> ThreadSnapshot:
        found = await self._read(f"/v1/threads/{_q(thread_id)}/as-of", {"at": at_param(at)})
        return ThreadSnapshot.model_validate(found)
