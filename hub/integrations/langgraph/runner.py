"""Where LangGraph's calls run: on a started :class:`Hub` (on the caller's loop, or from
another thread onto it) or on a :class:`SyncHub` (the process's shared one by default).
Both the checkpointer and the store call the hub through one of these."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from hub.bridge import SyncHub, sync_hub
from hub.client import Hub
from schemas.errors import HubError

__all__ = ["HubRunner", "OnHub"]

T = TypeVar("T")
OnHub = Callable[[Hub], Coroutine[Any, Any, T]]


class HubRunner:
    """Runs coroutines on a hub, from async or sync callers."""

    def __init__(self, hub: Hub | SyncHub | None, owner: str) -> None:
        self._owner = owner
        self._sync: SyncHub | None = None
        self.hub: Hub | None = None
        self.loop: asyncio.AbstractEventLoop | None = None  # a Hub's: its first async call's
        if isinstance(hub, Hub):
            self.hub = hub
        else:
            self._sync = hub or sync_hub()

    def on_loop(self) -> bool:
        """Whether the caller runs on the given Hub's own loop (so it may stream)."""
        if self.hub is None:
            return False
        running = asyncio.get_running_loop()
        if self.loop is None:
            self.loop = running
        return running is self.loop

    async def run(self, fn: OnHub[T]) -> T:
        """Await ``fn(hub)`` on the hub's loop."""
        if self._sync is not None:
            return await self._sync.acall(fn)
        assert self.hub is not None
        if self.on_loop():
            return await fn(self.hub)
        assert self.loop is not None
        future = asyncio.run_coroutine_threadsafe(fn(self.hub), self.loop)
        return await asyncio.wrap_future(future)

    def block(self, fn: OnHub[T]) -> T:
        """Run ``fn(hub)`` on the hub's loop and wait for it (sync callers)."""
        if self._sync is not None:
            return self._sync.call(fn)
        loop = self.loop
        if loop is None:
            raise HubError(
                f"{self._owner}(hub): sync methods need the hub's loop running; await an "
                "async method first, or give a SyncHub (the default when no hub is given)"
            )
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            raise HubError(
                f"{self._owner}: a sync method was called on the hub's own event loop; use "
                "the async one (ainvoke, aget_tuple, aget...)"
            )
        assert self.hub is not None
        return asyncio.run_coroutine_threadsafe(fn(self.hub), loop).result()
