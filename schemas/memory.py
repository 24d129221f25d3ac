"""The memory events: items in namespaces (LangGraph's store, a user's facts), on
``agenthub.memory`` keyed by the namespace's first two labels (``("memories", user_id)``),
so erasing a user's memory is ordered after every write under it (``schemas.events``
lists them with the rest)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from pydantic import AllowInfNan, StringConstraints

from schemas.envelope import Event, Record, Topic
from schemas.types import FrozenList, JsonObject, Text, UtcDatetime

__all__ = [
    "EVENTS",
    "ItemVector",
    "MemoryItemDeleted",
    "MemoryItemPut",
    "MemoryItemTouched",
    "MemoryNamespaceErased",
    "NamespaceLabel",
    "partition_key_of",
]

NamespaceLabel = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
]
"""One label of a namespace: 1 to 200 characters, no control characters."""


def partition_key_of(namespace: Sequence[str]) -> bytes:
    """Where a namespace's events go: by its first two labels."""
    return "\x1f".join(namespace[:2]).encode()


class ItemVector(Record):
    """The embedding of the text at one path of an item's value."""

    path: Text
    vector: FrozenList[Annotated[float, AllowInfNan(False)]]


class _MemoryEvent(Event):
    topic = Topic.MEMORY
    key_field = "namespace"

    namespace: FrozenList[NamespaceLabel]

    def partition_key(self) -> bytes:
        return partition_key_of(self.namespace)


class MemoryItemPut(_MemoryEvent):
    """An item stored; ``ttl_s``: its time to live, which a read may refresh."""

    key: Text
    value: JsonObject
    expires_at: UtcDatetime | None = None
    ttl_s: float | None = None
    vectors: FrozenList[ItemVector] = ()


class MemoryItemDeleted(_MemoryEvent):
    key: Text


class MemoryItemTouched(_MemoryEvent):
    """An item read with its time to live refreshed."""

    key: Text
    expires_at: UtcDatetime


class MemoryNamespaceErased(_MemoryEvent):
    """Every item of the namespace and of those under it erased, with its history."""


EVENTS = (MemoryItemPut, MemoryItemDeleted, MemoryItemTouched, MemoryNamespaceErased)
