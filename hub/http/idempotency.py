"""Writes retried with an ``Idempotency-Key`` header happen once (``hub.idempotency``;
this module is its only writer).

The first request with a key claims it (per tenant) and runs inside
:func:`schemas.ids.repeatable_ids` seeded by the key, so every id it makes (events,
messages, threads, runs) is the same if it runs again. Its answer is stored; a retry
gets the stored answer (``Idempotent-Replayed: true``). A retry while the first is still
running gets 409 with ``Retry-After``. If the server died mid-request, the lease lapses
and a retry runs the request again with the same ids, so whatever the first attempt
produced is dropped by the projections as a duplicate. A reused key with a different
request is refused (409). Answers of 5xx are not stored: the request may be retried.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from typing import Any

import asyncpg
import structlog

from hub.http.errors import error_response
from schemas.errors import HubError
from schemas.ids import repeatable_ids

__all__ = ["HEADER", "Idempotency"]

log = structlog.get_logger(__name__)

HEADER = "idempotency-key"
MAX_KEY_LENGTH = 255
LEASE_S = 60.0
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
KEPT_HEADERS = frozenset({b"content-type", b"location", b"x-hub-position"})

CLAIM = """
INSERT INTO hub.idempotency (tenant_id, idem_key, fingerprint, lease_until)
VALUES ($1, $2, $3, now() + make_interval(secs => $4))
ON CONFLICT (tenant_id, idem_key) DO NOTHING
RETURNING created_at
"""
FIND = """
SELECT fingerprint, status, headers, body, created_at, lease_until < now() AS lapsed
FROM hub.idempotency WHERE tenant_id = $1 AND idem_key = $2
"""
TAKE_OVER = """
UPDATE hub.idempotency SET lease_until = now() + make_interval(secs => $3)
WHERE tenant_id = $1 AND idem_key = $2 AND status IS NULL AND lease_until < now()
RETURNING created_at
"""
COMPLETE = """
UPDATE hub.idempotency SET status = $3, headers = $4, body = $5, completed_at = now()
WHERE tenant_id = $1 AND idem_key = $2
"""
RELEASE = "UPDATE hub.idempotency SET lease_until = now() WHERE tenant_id = $1 AND idem_key = $2"
FORGET_OLD = "DELETE FROM hub.idempotency WHERE created_at < now() - make_interval(secs => $1)"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
TenantOf = Callable[[Scope], Awaitable[str | None]]


class Idempotency:
    """ASGI middleware giving writes with an ``Idempotency-Key`` exactly-once effect.

    ``tenant_of`` tells a request's tenant from its credential (None: not authenticated;
    the request then runs as it is and is refused by the route). ``streamed`` says which
    requests have bodies too large to hold (artifact uploads): their fingerprint is the
    request line and declared length, not the body. ``skip`` says which writes are
    never remembered (key creation: its answer holds a secret)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        pool: Callable[[], asyncpg.Pool],
        tenant_of: TenantOf,
        streamed: Callable[[Scope], bool],
        skip: Callable[[Scope], bool],
        keep_s: float,
    ) -> None:
        self.app = app
        self.skip = skip
        self.pool = pool
        self.tenant_of = tenant_of
        self.streamed = streamed
        self.keep_s = keep_s
        self._next_cleanup = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers") or []) if scope["type"] == "http" else {}
        key_bytes = headers.get(HEADER.encode())
        if key_bytes is None or scope.get("method") not in WRITES or self.skip(scope):
            await self.app(scope, receive, send)
            return
        key = key_bytes.decode("latin-1")
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            await error_response(
                "InputError",
                f"Idempotency-Key: 1 to {MAX_KEY_LENGTH} printable characters",
                "Idempotency-Key",
                400,
            )(scope, receive, send)
            return
        tenant = await self.tenant_of(scope)
        if tenant is None:
            await self.app(scope, receive, send)
            return
        body, receive = await self._buffer(scope, receive)
        fingerprint = self._fingerprint(scope, headers, body)
        try:
            await self._run(scope, receive, send, tenant, key, fingerprint)
        except HubError as exc:
            await error_response(type(exc).__name__, exc.message, None, 503)(scope, receive, send)

    async def _buffer(self, scope: Scope, receive: Receive) -> tuple[bytes | None, Receive]:
        """The whole body (bounded by the body limit), and a receive that replays it;
        streamed requests are passed on untouched."""
        if self.streamed(scope):
            return None, receive
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return body, replay

    @staticmethod
    def _fingerprint(scope: Scope, headers: dict[bytes, bytes], body: bytes | None) -> str:
        h = hashlib.sha256()
        for part in (scope["method"], scope["path"], scope.get("query_string", b"").decode()):
            h.update(part.encode() + b"\0")
        if body is None:
            h.update(b"streamed:" + headers.get(b"content-length", b"?"))
        else:
            h.update(body)
        return h.hexdigest()

    async def _run(
        self, scope: Scope, receive: Receive, send: Send, tenant: str, key: str, fingerprint: str
    ) -> None:
        pool = self.pool()
        await self._cleanup(pool)
        created = await pool.fetchval(CLAIM, tenant, key, fingerprint, LEASE_S)
        if created is None:
            row = await pool.fetchrow(FIND, tenant, key)
            if row is None:  # forgotten between the two statements: claim again
                created = await pool.fetchval(CLAIM, tenant, key, fingerprint, LEASE_S)
            elif row["fingerprint"] != fingerprint:
                await self._refuse(
                    scope, receive, send, "Idempotency-Key was used before with another request"
                )
                return
            elif row["status"] is not None:
                headers = [(k.encode(), v.encode()) for k, v in json.loads(row["headers"])]
                await self._replay(scope, receive, send, row["status"], headers, row["body"])
                return
            elif row["lapsed"]:
                created = await pool.fetchval(TAKE_OVER, tenant, key, LEASE_S)
            if created is None:
                await self._refuse(
                    scope,
                    receive,
                    send,
                    "a request with this Idempotency-Key is still running; try again",
                    retry_after=1,
                )
                return
        await self._first(scope, receive, send, tenant, key, created)

    async def _first(
        self, scope: Scope, receive: Receive, send: Send, tenant: str, key: str, created: datetime
    ) -> None:
        status = 500
        kept: list[tuple[str, str]] = []
        body: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                kept.extend(
                    (k.decode("latin-1"), v.decode("latin-1"))
                    for k, v in message.get("headers", [])
                    if k.lower() in KEPT_HEADERS
                )
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))
            await send(message)

        seed = hashlib.sha256(f"{tenant}\0{key}".encode()).digest()
        try:
            with repeatable_ids(seed, int(created.timestamp() * 1000)):
                await self.app(scope, receive, capture)
        finally:
            pool = self.pool()
            if status < 500:
                await pool.execute(COMPLETE, tenant, key, status, json.dumps(kept), b"".join(body))
            else:  # may be retried at once, with the same ids
                await pool.execute(RELEASE, tenant, key)

    @staticmethod
    async def _replay(
        scope: Scope,
        receive: Receive,
        send: Send,
        status: int,
        kept: list[tuple[bytes, bytes]],
        body: bytes,
    ) -> None:
        headers = [
            *kept,
            (b"idempotent-replayed", b"true"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    async def _refuse(
        scope: Scope, receive: Receive, send: Send, message: str, retry_after: int | None = None
    ) -> None:
        headers = {"Retry-After": str(retry_after)} if retry_after else None
        response = error_response("ConflictError", message, "Idempotency-Key", 409, headers)
        await response(scope, receive, send)

    async def _cleanup(self, pool: asyncpg.Pool) -> None:
        now = time.monotonic()
        if now >= self._next_cleanup:
            self._next_cleanup = now + 3600
            await pool.execute(FORGET_OLD, self.keep_s)
