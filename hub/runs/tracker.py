"""Request tracking, as the HappyOS seed's ``track_request``: latency, status and errors.

``@track_request(run, "/api/endpoint")`` on an async function, or
``async with track_request(run, "/api/endpoint") as req: ... req.status = 404``.
Every request records ``request.latency_ms`` (timing) and ``request.count`` (counter),
tagged with the endpoint and status; a failure also records ``request.errors`` tagged
with the error type. The error is re-raised.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

from schemas.errors import InputError
from schemas.events import MetricKind

if TYPE_CHECKING:
    from hub.runs.run import Run

__all__ = ["RequestTracker", "track_request"]

P = ParamSpec("P")
R = TypeVar("R")


class RequestTracker:
    """One tracked request (a context manager), or a decorator making one per call."""

    def __init__(self, run: Run, endpoint: str, *, method: str | None = None) -> None:
        if not isinstance(endpoint, str) or not endpoint:
            raise InputError("endpoint: must be a non-empty string", field="endpoint")
        self.run = run
        self.endpoint = endpoint
        self.method = method
        self.status: str = "ok"
        self._started = 0.0

    def _tags(self, status: str) -> dict[str, str]:
        tags = {"endpoint": self.endpoint, "status": status}
        if self.method:
            tags["method"] = self.method
        return tags

    async def __aenter__(self) -> RequestTracker:
        self._started = time.perf_counter()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.record(time.perf_counter() - self._started, exc)

    async def record(self, seconds: float, exc: BaseException | None = None) -> None:
        """Record one request that took ``seconds`` (and failed with ``exc``, if given)."""
        status = "error" if exc is not None else str(self.status)
        tags = self._tags(status)
        await self.run.metric(
            "request.latency_ms", seconds * 1000, kind=MetricKind.TIMING, unit="ms", tags=tags
        )
        await self.run.metric("request.count", 1, kind=MetricKind.COUNTER, tags=tags)
        if exc is not None:
            await self.run.metric(
                "request.errors",
                1,
                kind=MetricKind.COUNTER,
                tags={**tags, "error_type": type(exc).__name__},
            )

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        if inspect.iscoroutinefunction(fn):
            afn = cast(Callable[P, Awaitable[Any]], fn)

            @functools.wraps(fn)
            async def tracked(*args: P.args, **kwargs: P.kwargs) -> Any:
                async with RequestTracker(self.run, self.endpoint, method=self.method):
                    return await afn(*args, **kwargs)

            return cast(Callable[P, R], tracked)
        raise InputError(
            f"track_request: {getattr(fn, '__name__', fn)!r} must be an async function "
            "(metrics are sent from the event loop)"
        )


def track_request(run: Run, endpoint: str, *, method: str | None = None) -> RequestTracker:
    """Track requests to ``endpoint`` as metrics of ``run`` (decorator or context manager)."""
    return RequestTracker(run, endpoint, method=method)
