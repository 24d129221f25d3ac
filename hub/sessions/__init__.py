"""Conversations: ``hub.sessions`` (threads, messages, forks, search, memory windows)."""

from hub.sessions.client import SessionsClient, Thread
from hub.sessions.models import (
    Message,
    Page,
    SearchHit,
    ThreadInfo,
    ThreadSnapshot,
    ThreadStats,
    TreeNode,
)

__all__ = [
    "Message",
    "Page",
    "SearchHit",
    "SessionsClient",
    "Thread",
    "ThreadInfo",
    "ThreadSnapshot",
    "ThreadStats",
    "TreeNode",
]
