"""The HTTP transport of remote mode: an httpx client holding the API key, answers turned
back into the SDK's own errors (the same classes direct mode raises), 429 waited out, and
read-your-writes: the positions of this client's writes go with every read
(``X-Hub-Read-After``), so any server answers only once it has projected them."""

from __future__ import annotations

from collections.abc import AsyncIterable, Mapping
from typing import Any
from urllib.parse import quote

import anyio
import httpx

from hub.core.marks import POSITION, READ_AFTER, encode_marks, parse_marks
from hub.infra.ports import Position, TopicPartition
from schemas.errors import (
    AuthError,
    ConflictError,
    ForbiddenError,
    HubError,
    InputError,
    LogError,
    NotFoundError,
    RateLimitedError,
)

__all__ = ["HubApi", "quote_segment"]

MAX_RATE_WAITS = 5
_SIMPLE: dict[str, type[HubError]] = {
    "NotFoundError": NotFoundError,
    "ConflictError": ConflictError,
    "AuthError": AuthError,
    "ForbiddenError": ForbiddenError,
}


def quote_segment(value: str) -> str:
    """A value as one path segment."""
    return quote(value, safe="")


def _error(response: httpx.Response) -> HubError:
    try:
        detail = response.json()["error"]
        kind, message, field = detail["type"], detail["message"], detail.get("field")
    except (ValueError, KeyError, TypeError):
        kind, message, field = "HTTPError", response.text[:300] or response.reason_phrase, None
    status = response.status_code
    if kind == "InputError" or status in (400, 413, 415):
        return InputError(message, field=field)
    if status == 429:
        return RateLimitedError(message, retry_after=float(response.headers.get("retry-after", 1)))
    if status >= 500 or (status == 409 and response.headers.get("retry-after")):
        return LogError(f"the hub answered {status}: {message}", retriable=status != 500)
    if kind in _SIMPLE:
        return _SIMPLE[kind](message)
    return HubError(f"the hub answered {status}: {message}")


class HubApi:
    """Requests to one hub with one key."""

    def __init__(self, url: str, token: str, *, timeout: float = 30.0) -> None:
        self.url = url
        self.marks: dict[TopicPartition, int] = {}
        self._client = httpx.AsyncClient(
            base_url=url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )

    async def close(self) -> None:
        await self._client.aclose()

    def remember(self, positions: list[Position]) -> None:
        """Note where this client's writes landed (its reads wait for them)."""
        for pos in positions:
            tp = pos.tp
            if pos.offset > self.marks.get(tp, -1):
                self.marks[tp] = pos.offset

    def _remember_header(self, value: str | None) -> None:
        """The positions a REST write's answer names (``X-Hub-Position``)."""
        if value:
            marks = parse_marks(value, POSITION)
            self.remember([Position(tp.topic, tp.partition, o) for tp, o in marks.items()])

    def _read_after(self) -> dict[str, str]:
        if not self.marks:
            return {}
        return {READ_AFTER: encode_marks(self.marks)}

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """A read (after this client's writes); the answer's JSON."""
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        response = await self.send("GET", path, params=clean, headers=self._read_after())
        return response.json()

    async def get_or_none(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """Like :meth:`get`, but None where the hub answers 404."""
        try:
            return await self.get(path, params)
        except NotFoundError:
            return None

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """A write with a JSON body; the answer's JSON (None when empty)."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        response = await self.send(method, path, json=json, params=clean, headers=headers)
        return response.json() if response.content else None

    async def upload(
        self,
        path: str,
        body: bytes | AsyncIterable[bytes],
        *,
        params: Mapping[str, Any],
        content_type: str,
    ) -> Any:
        """A raw body (streamed if an iterable); the answer's JSON."""
        clean = {k: v for k, v in params.items() if v is not None}
        headers = {"content-type": content_type}
        response = await self.send("POST", path, content=body, params=clean, headers=headers)
        return response.json()

    async def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; errors as the SDK's own (unreachable: a retriable ``LogError``)."""
        for attempt in range(MAX_RATE_WAITS + 1):
            try:
                response = await self._client.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                raise LogError(f"the hub at {self.url} cannot be reached: {exc!r}") from exc
            if response.status_code < 400:
                self._remember_header(response.headers.get(POSITION))
                return response
            error = _error(response)
            streamed = not isinstance(kwargs.get("content", b""), bytes)
            if isinstance(error, RateLimitedError) and attempt < MAX_RATE_WAITS and not streamed:
                await anyio.sleep(error.retry_after)
                continue
            raise error
        raise AssertionError("unreachable")
