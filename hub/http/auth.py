"""Who is calling, and what they may do: every route but ``/healthz`` needs an API key
(``Authorization: Bearer ahk_...``). The key gives the request its tenant and actor, its
role decides reads (reader), writes (writer) and keys and dead letters (admin), and each
key has a request rate limit (429 with ``Retry-After`` beyond it). Operations on every
tenant's data (replay, rebuild, verify, projection status) need an operator: an admin key
of the hub's own tenant."""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hub.access.keys import Principal
from hub.http.consistency import READ_AFTER, parse_marks
from schemas.errors import ForbiddenError, HubError, RateLimitedError
from schemas.events import ApiKeyRole

if TYPE_CHECKING:
    from hub.client import Hub, HubScope

__all__ = ["Access", "RateLimiter"]

READ_AFTER_TIMEOUT_S = 30.0

bearer = HTTPBearer(auto_error=False, description="An API key: `agent-hub keys create`")


class RateLimiter:
    """A token bucket per key: ``rate`` requests a second, ``burst`` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}  # key: (tokens, as of)

    def take(self, key: str) -> None:
        """Spend one request of ``key``; :class:`RateLimitedError` if it has none left."""
        if self.rate <= 0:
            return
        now = time.monotonic()
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            wait = math.ceil((1.0 - tokens) / self.rate)
            raise RateLimitedError(
                f"over {self.rate:g} requests per second with this key (HUB_API_RATE_LIMIT)",
                retry_after=max(1, wait),
            )
        self._buckets[key] = (tokens - 1.0, now)


class Access:
    """The dependencies routes declare: ``Depends(access.reader)`` and so on."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        s = hub.settings
        self.limiter = RateLimiter(s.api_rate_limit, s.api_rate_burst)
        self.reader_principal = self._principal_for(ApiKeyRole.READER)
        self.writer_principal = self._principal_for(ApiKeyRole.WRITER)
        self.admin_principal = self._principal_for(ApiKeyRole.ADMIN)
        self.operator_principal = self._operator()
        self.reader = self._scope_for(self.reader_principal)
        self.writer = self._scope_for(self.writer_principal)

    async def tenant_of(self, scope: dict[str, Any] | Any) -> str | None:
        """The tenant of a raw ASGI request's key (None if it has no good key)."""
        header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        try:
            return (await self.hub.keys.authenticate(token.strip())).tenant
        except HubError:
            return None

    def _principal_for(self, role: ApiKeyRole) -> Callable[..., Awaitable[Principal]]:
        async def principal(
            request: Request,
            credentials: HTTPAuthorizationCredentials | None = Depends(bearer),  # noqa: B008
        ) -> Principal:
            found = await self.hub.keys.authenticate(
                credentials.credentials if credentials else None
            )
            self.limiter.take(found.key_id)
            if not found.may(role):
                raise ForbiddenError(f"a {found.role} key may not do this (needs {role})")
            request.state.principal = found
            return found

        return principal

    def is_operator(self, principal: Principal) -> bool:
        """Operators are the admin keys of the hub's own tenant (``HUB_TENANT`` of the
        server): operations act on every tenant's data."""
        return principal.may(ApiKeyRole.ADMIN) and principal.tenant == self.hub.settings.tenant

    def _operator(self) -> Callable[..., Awaitable[Principal]]:
        async def operator(
            principal: Principal = Depends(self.admin_principal),  # noqa: B008
        ) -> Principal:
            if not self.is_operator(principal):
                raise ForbiddenError(
                    "operations act on every tenant: they need an admin key of the hub's "
                    f"own tenant ({self.hub.settings.tenant!r})"
                )
            return principal

        return operator

    def _scope_for(
        self, principal_of: Callable[..., Awaitable[Principal]]
    ) -> Callable[..., Awaitable[HubScope]]:
        async def scope(
            request: Request,
            principal: Principal = Depends(principal_of),  # noqa: B008
        ) -> HubScope:
            found = self.hub.scope(principal)
            marks = request.headers.get(READ_AFTER)
            if marks:  # read your own writes, made through any server
                await found.context.wait_for(parse_marks(marks), READ_AFTER_TIMEOUT_S)
            return found

        return scope
