"""A LangGraph thread's ``messages`` channel, mirrored into ``hub.sessions``.

When a checkpoint of a thread's root namespace changes a ``messages`` channel holding
LangChain messages, the messages the hub has not seen yet are appended to the hub
thread of the same id (started on first use), so the conversation shows in reads,
search, stats and HTTP like any other. A message is known by its LangChain id, kept in
each hub message's metadata (``langgraph_message_id``) and remembered per thread; a
message whose content changes later under the same id is not appended again.

The saver appends a checkpoint's new messages and the checkpoint in one append (one
durable write, all or none, on the Postgres log); a mirror that fell behind (a crash
between two appends on Kafka, where they go to two topics) catches up at the thread's
next checkpoint.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
)

from hub.client import Hub
from hub.sessions.content import as_content
from schemas.types import TEXT_PATTERN

__all__ = ["MessageMirror", "to_spec"]

CHANNEL = "messages"
ID_KEY = "langgraph_message_id"
THREADS_REMEMBERED = 10_000
_PLAIN_TEXT = re.compile(TEXT_PATTERN).fullmatch
_ROLES = (
    (HumanMessage, "user"),
    (AIMessage, "assistant"),
    (SystemMessage, "system"),
    (ToolMessage, "tool"),
)


def _role(message: BaseMessage) -> str:
    for cls, role in _ROLES:
        if isinstance(message, cls):
            return role
    return "assistant" if message.type in ("ai", "AIMessageChunk") else "user"


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _text(text: str) -> dict[str, Any]:
    """A text part; text with control characters (terminal colours in tool output) is
    kept exactly in a data part, as a text part does not take them."""
    if _PLAIN_TEXT(text):
        return {"type": "text", "text": text}
    return {"type": "data", "kind": "text", "data": text}


def _content_parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [_text(content)] if content else []
    parts: list[dict[str, Any]] = []
    for block in content or []:
        if isinstance(block, str):
            parts.append(_text(block))
        elif isinstance(block, dict) and block.get("type") == "text" and "text" in block:
            parts.append(_text(str(block["text"])))
        else:  # images, reasoning...: kept as they were
            kind = str(block.get("type", "block")) if isinstance(block, dict) else "block"
            parts.append({"type": "data", "kind": kind or "block", "data": _json(block)})
    return parts


def to_spec(message: BaseMessage) -> dict[str, Any] | None:
    """A LangChain message as a hub message (``None`` for one that is not a message)."""
    if isinstance(message, RemoveMessage) or not isinstance(message, BaseMessage):
        return None
    role = _role(message)
    parts = _content_parts(message.content)
    if isinstance(message, AIMessage):
        for call in message.tool_calls:
            parts.append(
                {
                    "type": "tool_call",
                    "tool_call_id": call.get("id") or "call",
                    "name": call["name"],
                    "input": _json(call.get("args", {})),
                }
            )
    if isinstance(message, ToolMessage):
        content = message.content if isinstance(message.content, str) else _json(message.content)
        parts = [
            {
                "type": "tool_result",
                "tool_call_id": message.tool_call_id,
                "status": "error" if message.status == "error" else "success",
                "content": content,
            }
        ]
    if not parts:
        parts = [{"type": "text", "text": ""}]
    metadata: dict[str, Any] = {ID_KEY: message.id}
    if message.name:
        metadata["name"] = message.name
    spec: dict[str, Any] = {"role": role, "content": as_content(parts), "metadata": metadata}
    model = message.response_metadata.get("model_name") if message.response_metadata else None
    if isinstance(model, str) and model:
        spec["model"] = model
    return spec


class MessageMirror:
    """Appends a thread's new LangChain messages to the hub thread of the same id."""

    def __init__(self, agent_id: str = "langgraph") -> None:
        self.agent_id = agent_id
        self._seen: OrderedDict[str, set[str]] = OrderedDict()  # thread -> message ids

    async def new_messages(
        self, hub: Hub, thread_id: str, messages: Sequence[Any]
    ) -> list[tuple[str, dict[str, Any]]]:
        """The messages of ``messages`` the hub thread does not hold yet, as ``(LangChain
        id, hub message)``; starts the hub thread if there is none."""
        if not isinstance(messages, list | tuple) or not messages:
            return []
        seen = await self._known(hub, thread_id)
        return [
            (m.id, spec)
            for m in messages
            if isinstance(m, BaseMessage) and m.id and m.id not in seen
            if (spec := to_spec(m)) is not None
        ]

    async def append(self, hub: Hub, thread_id: str, new: list[tuple[str, dict[str, Any]]]) -> None:
        """Append ``new`` (from :meth:`new_messages`); call :meth:`appended` once stored."""
        await hub.sessions.append_many(thread_id, [spec for _, spec in new])

    def appended(self, thread_id: str, new: list[tuple[str, dict[str, Any]]]) -> None:
        """Remember ``new`` as stored in the hub thread."""
        seen = self._seen.get(thread_id)
        if seen is not None:
            seen.update(mid for mid, _ in new)

    async def _known(self, hub: Hub, thread_id: str) -> set[str]:
        seen = self._seen.get(thread_id)
        if seen is not None:
            self._seen.move_to_end(thread_id)
            return seen
        if await hub.sessions.get(thread_id) is None:
            await hub.sessions.start_thread(agent_id=self.agent_id, thread_id=thread_id)
            seen = set()
        else:
            seen = set()
            after = 0
            while page := await hub.sessions.messages(thread_id, after=after, limit=1000):
                for message in page:
                    mid = message.metadata.get(ID_KEY)
                    if isinstance(mid, str):
                        seen.add(mid)
                after = page[-1].seq
        self._seen[thread_id] = seen
        if len(self._seen) > THREADS_REMEMBERED:
            self._seen.popitem(last=False)
        return seen
