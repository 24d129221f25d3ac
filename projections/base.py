"""The projection framework: a name, a version, migrations and a handler table.

A projection's tables live in a versioned schema (``proj_registry_v1``); readers use the
stable views in a schema named after the projection (``registry.agents``), so a rebuild
can fill ``v2`` beside ``v1`` and swap the views in one transaction.

Handlers are small functions routed by an explicit table, ``{EventType: handler}``. Each
one folds an event into a per-batch state object. ``flush`` then writes the whole batch
with a few set-based statements, in the consumer's transaction, next to the positions.
A handler raising a non-retriable error marks its event as poison. The consumer
dead-letters it and applies the rest.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import asyncpg

from projections.connection import TextSafeConnection
from schemas.events import Event, Topic

__all__ = ["Batch", "EventMeta", "Handler", "Projection", "call_handler"]


class EventMeta(Protocol):
    """Where an event sits in the log (the consumer record it came in)."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...

    @property
    def timestamp_ms(self) -> int: ...


class Batch:
    """Per-transaction state handed to every handler of one batch."""

    def __init__(self, conn: asyncpg.Connection, schema: str) -> None:
        # text arrays escaped as scalar text is, rows copied in binary (projections.connection)
        self.conn: asyncpg.Connection = TextSafeConnection(conn)
        self.schema = schema


B = TypeVar("B", bound=Batch)
Handler = Callable[[Any, Any, EventMeta], Awaitable[None] | None]


async def call_handler(handler: Handler, batch: Batch, event: Event, meta: EventMeta) -> None:
    """Run a handler that may be sync or async."""
    result = handler(batch, event, meta)
    if result is not None:  # an async handler (sync handlers return None)
        await result


class Projection(ABC, Generic[B]):
    """A read model built from events."""

    name: ClassVar[str]
    version: ClassVar[int]
    topics: ClassVar[tuple[Topic, ...]]
    migrations: ClassVar[tuple[str, ...]]
    """SQL scripts run in order inside the versioned schema; ``{schema}`` is replaced."""
    views: ClassVar[tuple[str, ...]]
    """Tables exposed to readers as views in the stable schema ``name``."""
    handlers: ClassVar[Mapping[type[Event], Handler]]
    published: ClassVar[bool] = True
    """Registered in ``hub.projections`` and shown through the views (False for the
    shadow a rebuild fills)."""
    dedupe: ClassVar[bool] = True
    """Skip events whose ``event_id`` this projection has applied before (at any offset)."""

    @property
    def schema(self) -> str:
        """The versioned schema holding this version's tables."""
        return f"proj_{self.name}_v{self.version}"

    @property
    def consumer(self) -> str:
        """The consumer (and group) name positions are stored under."""
        return self.schema

    @property
    def dead_letter_consumer(self) -> str:
        """The consumer named in this projection's dead letters (a rebuild's shadow names
        the projection it replaces, so operators see one dead letter per poison event)."""
        return self.consumer

    @abstractmethod
    def begin(self, conn: asyncpg.Connection, schema: str) -> B:
        """A fresh batch state for one transaction."""

    async def prepare(self, batch: B, events: Sequence[Event]) -> None:
        """Before the handlers run: load in bulk what they will look up (optional)."""
        return None

    @abstractmethod
    async def flush(self, batch: B) -> None:
        """Write everything the handlers folded into ``batch``."""
