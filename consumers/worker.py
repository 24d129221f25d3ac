"""What the long-running consumers (projectors, the archiver) share: stopping soon,
cancellable waits for the log, and retries with backoff while failures are retriable."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

from consumers.retry import Backoff
from hub.infra.db import is_retriable
from hub.infra.lifecycle import Lifecycle

__all__ = ["Worker"]

T = TypeVar("T")


class Worker(Lifecycle):
    """Base of a consumer loop that ``stop_soon()`` ends after the work in hand."""

    retry_initial: float = 0.1
    retry_max: float = 30.0

    def __init__(self) -> None:
        self._stopping = anyio.Event()
        self._wait_scope: anyio.CancelScope | None = None
        self._log: Any = None

    def stop_soon(self) -> None:
        """Finish the work in hand, then stop (what SIGTERM does)."""
        self._stopping.set()
        if self._wait_scope is not None:
            self._wait_scope.cancel()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def waiting(self) -> anyio.CancelScope:
        """A scope for waiting on the log, which ``stop_soon()`` cancels."""
        scope = anyio.CancelScope()
        self._wait_scope = scope
        if self.stopping:
            scope.cancel()
        return scope

    async def pause(self, backoff: Backoff) -> None:
        """Sleep for the next backoff delay, or until asked to stop."""
        with anyio.move_on_after(backoff.next_delay()):
            await self._stopping.wait()

    def backoff(self) -> Backoff:
        return Backoff(self.retry_initial, self.retry_max)

    async def retrying(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """``call()`` until it succeeds; retriable failures are logged and retried."""
        backoff = self.backoff()
        while True:
            try:
                return await call()
            except Exception as exc:
                if not is_retriable(exc) or self.stopping:
                    raise
                self.on_retry(what, exc)
                await self.pause(backoff)

    def on_retry(self, what: str, exc: BaseException) -> None:
        if self._log is not None:
            self._log.warning("worker.retry", step=what, error=f"{type(exc).__name__}: {exc}")
