"""What ``hub.sessions`` returns: threads, messages, stats, fork trees, search hits."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Message",
    "Page",
    "SearchHit",
    "ThreadInfo",
    "ThreadSnapshot",
    "ThreadStats",
    "TreeNode",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class ThreadInfo(_Frozen):
    """A thread as the read model shows it."""

    thread_id: str
    root_id: str
    parent_id: str | None
    forked_from: str | None
    fork_seq: int
    depth: int
    agent_id: str
    user_id: str | None
    title: str | None
    metadata: dict[str, Any]
    archived: bool
    archived_at: datetime | None
    created_at: datetime
    updated_at: datetime
    message_count: int


class Message(_Frozen):
    """A message of a thread (``thread_id`` is the thread that appended it)."""

    message_id: UUID
    thread_id: str
    seq: int
    role: str
    parts: list[dict[str, Any]]
    text: str
    model: str | None
    input_tokens: int
    output_tokens: int
    total_tokens: int
    metadata: dict[str, Any]
    created_at: datetime
    redacted: bool
    redaction_reason: str | None = None


class ThreadStats(_Frozen):
    thread_id: str
    message_count: int
    own_message_count: int
    total_bytes: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    forked_from: str | None
    fork_count: int
    depth: int


class TreeNode(_Frozen):
    """A thread in its family's fork tree."""

    thread_id: str
    title: str | None
    forked_from: str | None
    fork_seq: int
    message_count: int
    archived: bool
    created_at: datetime
    children: list[TreeNode] = Field(default_factory=list)


class SearchHit(_Frozen):
    thread_id: str
    title: str | None
    message_id: UUID
    seq: int
    role: str
    snippet: str
    rank: float
    created_at: datetime


class Page(_Frozen):
    """A page of threads; pass ``next_cursor`` back for the next one."""

    threads: list[ThreadInfo]
    next_cursor: str | None


class ThreadSnapshot(_Frozen):
    """A thread as it was at a time or a log position."""

    thread: ThreadInfo
    messages: list[Message]
