"""HTTP routes of the conversation store (``/v1/threads``, ``/v1/search``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

from fastapi import FastAPI, Query
from pydantic import BaseModel, ConfigDict

from hub.sessions.models import Page, SearchHit, ThreadInfo, ThreadStats, TreeNode
from schemas.errors import NotFoundError

if TYPE_CHECKING:
    from hub.client import Hub

__all__ = ["ForkRequest", "add_thread_routes"]

MAX_OFFSET = 2**63 - 1  # a Postgres bigint


class ForkRequest(BaseModel):
    """``POST /v1/threads/{id}/fork``: where to fork (``null``: at the head)."""

    model_config = ConfigDict(extra="forbid")

    at_message_id: UUID | None = None
    title: str | None = None
    inclusive: bool = True


class ThreadDetail(BaseModel):
    thread: ThreadInfo
    stats: ThreadStats


def add_thread_routes(app: FastAPI, hub: Hub) -> None:
    sessions = hub.sessions

    @app.get("/v1/threads")
    async def list_threads(
        agent_id: str | None = None,
        user_id: str | None = None,
        archived: bool | None = False,
        limit: int = Query(50, ge=1, le=1000),
        cursor: str | None = None,
    ) -> Page:
        return await sessions.list(
            agent_id=agent_id, user_id=user_id, archived=archived, limit=limit, cursor=cursor
        )

    @app.get("/v1/threads/{thread_id}")
    async def get_thread(thread_id: str) -> ThreadDetail:
        info = await sessions.get(thread_id)
        if info is None:
            raise NotFoundError(f"no thread {thread_id!r}")
        return ThreadDetail(thread=info, stats=await sessions.stats(thread_id))

    @app.get("/v1/threads/{thread_id}/messages")
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
    ) -> dict[str, Any]:
        messages = await sessions.messages(
            thread_id, limit=limit, cursor=cursor, before=before, after=after
        )
        older = messages[0].seq if messages and messages[0].seq > 1 else None
        return {
            "messages": [m.model_dump(mode="json") for m in messages],
            "next_cursor": messages.next_cursor,
            "before": older,  # deprecated, for one release: the seq `before` takes
        }

    @app.get("/v1/threads/{thread_id}/tree")
    async def thread_tree(thread_id: str) -> TreeNode:
        return await sessions.tree(thread_id)

    @app.post("/v1/threads/{thread_id}/fork", status_code=201)
    async def fork_thread(thread_id: str, request: ForkRequest | None = None) -> ThreadInfo:
        body = request or ForkRequest()
        fork = await sessions.fork(
            thread_id, body.at_message_id, title=body.title, inclusive=body.inclusive
        )
        info = await sessions.get(fork.thread_id)
        assert info is not None
        return info

    @app.get("/v1/search")
    async def search(
        q: str = Query(..., min_length=1),
        user_id: str | None = None,
        agent_id: str | None = None,
        limit: int = Query(20, ge=1, le=200),
    ) -> dict[str, list[SearchHit]]:
        return {"hits": await sessions.search(q, user_id=user_id, agent_id=agent_id, limit=limit)}
