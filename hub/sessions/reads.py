"""Reading threads: ``SessionReader`` is the reading half of ``hub.sessions`` (get, list,
messages, stats, tree, search, time travel, memory windows), from the ``sessions``
projection after waiting for this client's own writes."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hub.core.cursor import CursorList, cursor_time, decode_cursor, encode_cursor
from hub.infra.ports import Position
from hub.sessions.models import (
    Message,
    Page,
    SearchHit,
    ThreadInfo,
    ThreadSnapshot,
    ThreadStats,
    TreeNode,
)
from hub.sessions.windows import Tokenizer, estimate_tokens, merge_first_last, take_within_budget
from projections.sessions import queries
from schemas.construct import construct
from schemas.errors import InputError, NotFoundError
from schemas.events import (
    Topic,
)

if TYPE_CHECKING:
    from hub.core.context import HubContext


__all__ = ["FAR_FUTURE", "MAX_SEQ", "SESSIONS", "SessionReader"]

MAX_SEQ = 2**63 - 1
FAR_FUTURE = datetime(9999, 12, 31, tzinfo=UTC)
SESSIONS = str(Topic.SESSIONS)
ROLES = ("user", "assistant", "system", "tool")

_MESSAGE_COLUMNS = [c.strip() for c in queries.MESSAGE_COLUMNS.split(",")]
if list(Message.model_fields) != _MESSAGE_COLUMNS:  # messages() builds a Message from a row
    raise RuntimeError("MESSAGE_COLUMNS and Message's fields differ: keep them in one order")


def _next(thread_id: str, direction: str, seq: int) -> str:
    return encode_cursor("messages", thread_id, direction, seq)


class SessionReader:
    """Threads and messages as the ``sessions`` projection holds them."""

    def __init__(self, ctx: HubContext) -> None:
        self._ctx = ctx
        self._roots: dict[str, str] = {}  # thread id -> root id, for threads known to exist

    # ── helpers ─────────────────────────────────────────────────────────────────────────

    async def _settled(self) -> None:
        """Read your writes: wait until this client's session events are all applied."""
        await self._ctx.wait_for_projections(topics=[SESSIONS])

    async def _settled_for(self, thread_id: str) -> None:
        """Read your writes for one thread: wait until this client's writes to its family
        (the events keyed by its root) are applied, not for its writes elsewhere. A thread
        this client never wrote to waits for nothing it wrote (but a thread of that name
        started by raw records, keyed by itself)."""
        root = self._roots.get(thread_id) or self._ctx.written_root(thread_id)
        if root is None and self._ctx.forgot_threads:
            await self._settled()
        else:
            await self._ctx.wait_for_key(SESSIONS, (root or thread_id).encode())

    async def _root_of(self, thread_id: str) -> str:
        """The root of an existing thread; :class:`NotFoundError` if there is none."""
        if not isinstance(thread_id, str) or not thread_id:
            raise InputError("thread_id: must be a non-empty string", field="thread_id")
        root = self._roots.get(thread_id)
        if root is None:
            await self._settled_for(thread_id)
            root = await self._ctx.pool.fetchval(queries.ROOT_OF, self._ctx.tenant, thread_id)
            if root is None:
                raise NotFoundError(f"no thread {thread_id!r}")
            self._roots[thread_id] = root
        return root

    # ── reading ─────────────────────────────────────────────────────────────────────────

    async def _info(self, thread_id: str) -> ThreadInfo:
        info = await self.get(thread_id)
        if info is None:
            raise NotFoundError(f"no thread {thread_id!r}")
        return info

    async def get(self, thread_id: str) -> ThreadInfo | None:
        """The thread, or None."""
        await self._settled_for(thread_id)
        row = await self._ctx.pool.fetchrow(queries.GET_THREAD, self._ctx.tenant, thread_id)
        if row is None:
            return None
        self._roots[thread_id] = row["root_id"]
        return ThreadInfo.model_validate(dict(row))

    async def list(
        self,
        *,
        agent_id: str | None = None,
        user_id: str | None = None,
        archived: bool | None = False,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """Threads, most recently updated first; ``archived=None`` lists both kinds."""
        if not 1 <= limit <= 1000:
            raise InputError("limit: must be between 1 and 1000", field="limit")
        at: datetime | None = None
        after_id: str | None = None
        if cursor is not None:
            when, thread = decode_cursor(cursor, "threads")
            at, after_id = cursor_time(when), str(thread)
        await self._settled()
        rows = await self._ctx.pool.fetch(
            queries.LIST_THREADS, self._ctx.tenant, agent_id, user_id, archived, at, after_id, limit
        )
        threads = [ThreadInfo.model_validate(dict(r)) for r in rows]
        last = threads[-1] if len(threads) == limit else None
        return Page(
            threads=threads,
            next_cursor=(
                encode_cursor("threads", last.updated_at.isoformat(), last.thread_id)
                if last
                else None
            ),
        )

    async def list_archived(
        self, user_id: str | None = None, *, limit: int = 50, cursor: str | None = None
    ) -> Page:
        return await self.list(user_id=user_id, archived=True, limit=limit, cursor=cursor)

    async def messages(
        self,
        thread_id: str,
        *,
        limit: int = 100,
        cursor: str | None = None,
        before: int | None = None,
        after: int | None = None,
    ) -> CursorList[Message]:
        """Messages in order. With ``before`` (a seq) the ``limit`` messages just before it;
        with ``after`` the ones just after it; with neither, the newest ``limit``.

        ``next_cursor`` continues in the same direction: older messages after a page of the
        newest (or of ``before``), newer ones after a page of ``after``. Pass it back as
        ``cursor``."""
        if not 1 <= limit <= 10_000:
            raise InputError("limit: must be between 1 and 10000", field="limit")
        if cursor is not None:
            thread, direction, seq = decode_cursor(cursor, "messages")
            if thread != thread_id or direction not in ("before", "after"):
                raise InputError("cursor: not a cursor of this thread's messages", field="cursor")
            before, after = (seq, None) if direction == "before" else (None, seq)
        await self._root_of(thread_id)
        await self._settled_for(thread_id)
        low = after if after is not None else 0
        high = before - 1 if before is not None else MAX_SEQ
        query = (
            queries.MESSAGES_ASC if after is not None and before is None else queries.MESSAGES_DESC
        )
        rows = await self._ctx.pool.fetch(
            query, self._ctx.tenant, thread_id, low, high, limit, MAX_SEQ, FAR_FUTURE
        )
        # rows of our own table, already of the fields' types: no validation per message
        found = [construct(Message, dict(r)) for r in rows]
        if query is queries.MESSAGES_ASC:
            more = len(found) == limit
            return CursorList(found, _next(thread_id, "after", found[-1].seq) if more else None)
        found.reverse()
        more = bool(found) and found[0].seq > 1
        return CursorList(found, _next(thread_id, "before", found[0].seq) if more else None)

    async def stats(self, thread_id: str) -> ThreadStats:
        await self._settled_for(thread_id)
        row = await self._ctx.pool.fetchrow(queries.STATS, self._ctx.tenant, thread_id)
        if row is None:
            raise NotFoundError(f"no thread {thread_id!r}")
        return ThreadStats.model_validate(dict(row))

    async def tree(self, thread_id: str) -> TreeNode:
        """The fork tree of the thread's family, from its root."""
        root = await self._root_of(thread_id)
        await self._settled_for(thread_id)
        rows = await self._ctx.pool.fetch(queries.FAMILY, self._ctx.tenant, root)
        children: dict[str | None, list[dict[str, Any]]] = {}
        for r in rows:
            children.setdefault(r["forked_from"], []).append(dict(r))

        def build(row: dict[str, Any]) -> TreeNode:
            kids = [build(c) for c in children.get(row["thread_id"], [])]
            return TreeNode.model_validate({**row, "children": kids})

        top = next(r for r in rows if r["thread_id"] == root)
        return build(dict(top))

    async def search(
        self,
        query: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        limit: int = 20,
    ) -> builtins.list[SearchHit]:
        """Full-text search over messages (Postgres tsvector), best matches first."""
        if not query or not query.strip():
            raise InputError("query: must not be empty", field="query")
        await self._settled()
        rows = await self._ctx.pool.fetch(
            queries.SEARCH, self._ctx.tenant, query, user_id, agent_id, limit
        )
        return [SearchHit.model_validate(dict(r)) for r in rows]

    async def agent_state(self, thread_id: str) -> dict[str, Any] | None:
        """The latest agent state saved with the thread."""
        await self._settled_for(thread_id)
        row = await self._ctx.pool.fetchrow(queries.GET_THREAD, self._ctx.tenant, thread_id)
        if row is None:
            raise NotFoundError(f"no thread {thread_id!r}")
        state: dict[str, Any] | None = row["agent_state"]
        return state

    async def as_of(self, thread_id: str, at: datetime | int | Position) -> ThreadSnapshot:
        """The thread as it was at a time, or at a log position (the family's partition
        offset, or a ``Position`` from ``emit``). Redactions are permanent: a redacted
        message shows redacted at any time."""
        if isinstance(at, bool) or not isinstance(at, datetime | int | Position):
            raise InputError(
                "at: give a timezone-aware datetime, a log offset or a Position", field="at"
            )
        await self._root_of(thread_id)
        await self._settled_for(thread_id)
        pool = self._ctx.pool
        row = await pool.fetchrow(queries.GET_THREAD, self._ctx.tenant, thread_id)
        assert row is not None
        offset, moment = MAX_SEQ, FAR_FUTURE
        if isinstance(at, datetime):
            if at.tzinfo is None:
                raise InputError("at: a datetime must be timezone-aware", field="at")
            moment = at
            if row["created_at"] > at:
                raise NotFoundError(f"thread {thread_id!r} did not exist at {at.isoformat()}")
        else:
            if isinstance(at, Position):
                if at.topic != SESSIONS or at.partition != row["log_partition"]:
                    raise InputError(
                        f"at: position {at} is not in this thread's partition "
                        f"{SESSIONS}[{row['log_partition']}]",
                        field="at",
                    )
                at = at.offset
            offset = at
            if row["created_offset"] > at:
                raise NotFoundError(f"thread {thread_id!r} did not exist at offset {at}")
        state = await pool.fetchrow(
            queries.AS_OF_STATE, self._ctx.tenant, thread_id, offset, moment
        )
        rows = await pool.fetch(
            queries.MESSAGES_ASC, self._ctx.tenant, thread_id, 0, MAX_SEQ, 1_000_000, offset, moment
        )
        messages = [Message.model_validate(dict(r)) for r in rows]
        info = ThreadInfo.model_validate(
            {
                **dict(row),
                "title": state["title"],
                "archived": bool(state["archived"]),
                "message_count": messages[-1].seq if messages else row["fork_seq"],
            }
        )
        return ThreadSnapshot(thread=info, messages=messages)

    # ── memory windows ──────────────────────────────────────────────────────────────────

    async def last_n(self, thread_id: str, n: int) -> builtins.list[Message]:
        """The last ``n`` messages, oldest first."""
        return await self.messages(thread_id, limit=n)

    async def first_last(self, thread_id: str, first: int, last: int) -> builtins.list[Message]:
        """The first ``first`` messages and the last ``last`` ones (each once), in order."""
        head = await self.messages(thread_id, after=0, limit=first) if first else []
        tail = await self.messages(thread_id, limit=last) if last else []
        return merge_first_last(head, tail)

    async def token_window(
        self, thread_id: str, max_tokens: int, *, tokenizer: Tokenizer | None = None
    ) -> builtins.list[Message]:
        """As many of the newest messages as fit ``max_tokens``, oldest first."""
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise InputError("max_tokens: must be a whole number of 1 or more", field="max_tokens")

        async def pages() -> AsyncIterator[list[Message]]:
            before: int | None = None
            while True:
                page = await self.messages(thread_id, before=before, limit=200)
                if not page:
                    return
                yield page[::-1]
                before = page[0].seq

        return await take_within_budget(pages(), max_tokens, tokenizer or estimate_tokens)
