"""HTTP routes reading the conversation store (``/v1/threads``, ``/v1/search``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from uuid import UUID

import orjson
from fastapi import Depends, FastAPI, Query, Response
from pydantic import BaseModel, Field

from hub.http.params import AT_DESCRIPTION, parse_at
from hub.sessions.models import (
    Message,
    Page,
    SearchHit,
    ThreadInfo,
    ThreadSnapshot,
    ThreadStats,
    TreeNode,
)
from schemas.errors import NotFoundError

if TYPE_CHECKING:
    from hub.client import HubScope
    from hub.http.auth import Access

__all__ = ["add_thread_routes"]

MAX_OFFSET = 2**63 - 1  # a Postgres bigint


class ThreadDetail(BaseModel):
    thread: ThreadInfo
    stats: ThreadStats


class MessagePage(BaseModel):
    messages: list[Message]
    next_cursor: str | None
    before: int | None = Field(None, deprecated=True, description="use next_cursor")


class AgentState(BaseModel):
    thread_id: str
    state: dict[str, Any] | None


def add_thread_routes(app: FastAPI, access: Access) -> None:
    reader = Depends(access.reader)

    @app.get("/v1/threads")
    async def list_threads(
        agent_id: str | None = None,
        user_id: str | None = None,
        archived: bool | None = False,
        limit: int = Query(50, ge=1, le=1000),
        cursor: str | None = None,
        hub: HubScope = reader,
    ) -> Page:
        return await hub.sessions.list(
            agent_id=agent_id, user_id=user_id, archived=archived, limit=limit, cursor=cursor
        )

    @app.get("/v1/threads/{thread_id:path}")
    async def get_thread(thread_id: str, hub: HubScope = reader) -> ThreadDetail:
        info = await hub.sessions.get(thread_id)
        if info is None:
            raise NotFoundError(f"no thread {thread_id!r}")
        return ThreadDetail(thread=info, stats=await hub.sessions.stats(thread_id))

    @app.get("/v1/threads/{thread_id:path}/messages", response_model=MessagePage)
    async def thread_messages(
        thread_id: str,
        limit: int = Query(100, ge=1, le=10_000),
        cursor: str | None = None,
        before: int | None = Query(
            None, ge=1, le=MAX_OFFSET, deprecated=True, description="use cursor"
        ),
        after: int | None = Query(
            None, ge=0, le=MAX_OFFSET, deprecated=True, description="use cursor"
        ),
        hub: HubScope = reader,
    ) -> Response:
        messages = await hub.sessions.messages(
            thread_id, limit=limit, cursor=cursor, before=before, after=after
        )
        older = messages[0].seq if messages and messages[0].seq > 1 else None
        page = {
            "messages": [m.__dict__ for m in messages],  # the agents' hot read: no re-dump
            "next_cursor": messages.next_cursor,
            "before": older,  # deprecated, for one release: the seq `before` takes
        }
        try:
            body = orjson.dumps(page, default=str, option=orjson.OPT_UTC_Z)
        except TypeError:  # an integer beyond 64 bits in metadata: the standard encoder
            page["messages"] = [m.model_dump(mode="json") for m in messages]
            body = json.dumps(page, ensure_ascii=False, separators=(",", ":")).encode()
        return Response(body, media_type="application/json")

    @app.get("/v1/threads/{thread_id:path}/messages/{message_id}")
    async def thread_message(thread_id: str, message_id: UUID, hub: HubScope = reader) -> Message:
        """One message as the thread shows it (its own, or an ancestor's before the fork)."""
        return await hub.sessions.message(thread_id, message_id)

    @app.get("/v1/threads/{thread_id:path}/tree")
    async def thread_tree(thread_id: str, hub: HubScope = reader) -> TreeNode:
        return await hub.sessions.tree(thread_id)

    @app.get("/v1/threads/{thread_id:path}/as-of")
    async def thread_as_of(
        thread_id: str, at: str = Query(..., description=AT_DESCRIPTION), hub: HubScope = reader
    ) -> ThreadSnapshot:
        """The thread as it was then (time travel)."""
        return await hub.sessions.as_of(thread_id, parse_at(at))

    @app.get("/v1/threads/{thread_id:path}/agent-state")
    async def agent_state(thread_id: str, hub: HubScope = reader) -> AgentState:
        state = await hub.sessions.agent_state(thread_id)
        return AgentState(thread_id=thread_id, state=state)

    @app.get("/v1/search")
    async def search(
        q: str = Query(..., min_length=1),
        user_id: str | None = None,
        agent_id: str | None = None,
        limit: int = Query(20, ge=1, le=200),
        hub: HubScope = reader,
    ) -> dict[str, list[SearchHit]]:
        found = await hub.sessions.search(q, user_id=user_id, agent_id=agent_id, limit=limit)
        return {"hits": found}
