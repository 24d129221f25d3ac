"""Synchronous access to the hub: a ``Hub`` running on a background event loop.

Synchronous callers (Strands' session repository, the seeds' facade) call
``sync_hub().call(lambda hub: hub.registry.get("x"))``. One ``SyncHub`` per settings is
shared in a process and closed at exit, so embedded projectors finish their batch.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from hub.client import Hub
from hub.settings import HubSettings, load_settings
from schemas.errors import HubError

__all__ = ["SyncHub", "sync_hub"]

T = TypeVar("T")


class SyncHub:
    """A started ``Hub`` on its own thread and event loop, called synchronously."""

    def __init__(self, settings: HubSettings | None = None) -> None:
        self.settings = settings or load_settings()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._hub: Hub | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._lock = threading.Lock()

    def start(self) -> SyncHub:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="agent-hub", daemon=True)
                self._thread.start()
                self._ready.wait()
                if self._error is not None:
                    error, self._error, self._thread = self._error, None, None
                    self._ready.clear()
                    raise error
                # Registered now, after the embedded Postgres registered its own exit
                # handler: handlers run last-in first-out, so the hub (and its
                # projectors' batch in hand) stops before the database does.
                atexit.register(self.stop)
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start() or logged by asyncio
            if not self._ready.is_set():
                self._error = exc
                self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with Hub(self.settings) as hub:
            self._hub = hub
            self._ready.set()
            await self._stop.wait()
        self._hub = None

    def _running(
        self, fn: Callable[[Hub], Awaitable[T]]
    ) -> tuple[asyncio.AbstractEventLoop, Coroutine[Any, Any, T]]:
        """The hub's loop (started if need be) and ``fn(hub)`` to run on it."""
        self.start()
        loop, hub = self._loop, self._hub
        if loop is None or hub is None:
            raise HubError("the hub is stopped")

        async def run() -> T:
            return await fn(hub)

        return loop, run()

    def call(self, fn: Callable[[Hub], Awaitable[T]], timeout: float | None = None) -> T:
        """Run ``fn(hub)`` on the hub's loop and return its result (or raise its error)."""
        loop, coro = self._running(fn)
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    async def acall(self, fn: Callable[[Hub], Awaitable[T]]) -> T:
        """``call`` for a caller on another event loop: awaits without blocking it."""
        loop, coro = self._running(fn)
        if asyncio.get_running_loop() is loop:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    @property
    def hub(self) -> Hub:
        """The started hub (for reads that need no round trip, such as the prompt cache)."""
        self.start()
        if self._hub is None:
            raise HubError("the hub is stopped")
        return self._hub

    def stop(self) -> None:
        """Stop the hub (in-process projectors finish their batch) and its thread."""
        with self._lock:
            thread, loop, stop = self._thread, self._loop, self._stop
            if thread is None or loop is None or stop is None:
                return
            loop.call_soon_threadsafe(stop.set)
            thread.join(timeout=60)
            self._thread = None
            self._ready.clear()


_shared: dict[str, SyncHub] = {}
_shared_lock = threading.Lock()


def sync_hub(settings: HubSettings | None = None) -> SyncHub:
    """The process's shared ``SyncHub`` for these settings (started on first call)."""
    settings = settings or load_settings()
    key = settings.model_dump_json()
    with _shared_lock:
        hub = _shared.get(key)
        if hub is None:
            hub = _shared[key] = SyncHub(settings)
    return hub.start()


@atexit.register
def _close_all() -> None:
    for hub in list(_shared.values()):
        hub.stop()
    _shared.clear()
