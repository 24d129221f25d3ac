"""API keys: ``hub.keys.create``, ``list``, ``revoke`` and ``authenticate``.

A key reads ``ahk_<key id>_<secret>``: 16 hex digits naming the key, then 256 random
bits. Only the SHA-256 of the secret is kept (in an ``ApiKeyCreated`` event on
``agenthub.access``, projected into ``access.keys``), so neither the log nor the database
holds a usable credential, and a rebuild restores every key. A key belongs to one tenant
and has one role: ``reader`` (queries), ``writer`` (queries and writes) or ``admin``
(also keys and operations).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from hub.access.local import read_local_key, write_local_key
from hub.access.usage import KeyUsage
from hub.core.inputs import build_event, check_id
from projections.access.queries import ANY_ACTIVE, KEY, KEYS
from schemas.errors import AuthError, InputError, NotFoundError
from schemas.events import ApiKeyCreated, ApiKeyRevoked, ApiKeyRole, Topic

if TYPE_CHECKING:
    from hub.core.context import HubContext

__all__ = ["ApiKey", "KeysClient", "NewKey", "Principal", "parse_token"]

PREFIX = "ahk_"
LOCAL_KEY_NAME = "local admin (agent-hub up)"
KEY_ID_HEX = 16
_RANK = {ApiKeyRole.READER: 0, ApiKeyRole.WRITER: 1, ApiKeyRole.ADMIN: 2}


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's id, tenant and role."""

    key_id: str
    tenant: str
    role: ApiKeyRole
    name: str | None = None

    @property
    def actor(self) -> str:
        """The ``actor`` of every event this caller writes: the key."""
        return f"key:{self.key_id}"

    def may(self, role: ApiKeyRole) -> bool:
        """Whether this caller's role includes ``role``."""
        return _RANK[self.role] >= _RANK[role]


class ApiKey(BaseModel):
    """A key as listed: everything but its secret."""

    key_id: str
    tenant_id: str
    role: ApiKeyRole
    name: str | None
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    revoked_reason: str | None = None
    last_used_at: datetime | None = None


class NewKey(BaseModel):
    """A key just created, with the token to use: shown once, never stored."""

    key: ApiKey
    token: str


def parse_token(token: str) -> tuple[str, str]:
    """A token's key id and secret; :class:`AuthError` if it is not a hub key."""
    key_id, sep, secret = token.removeprefix(PREFIX).partition("_")
    if (
        not token.startswith(PREFIX)
        or not sep
        or len(key_id) != KEY_ID_HEX
        or any(c not in "0123456789abcdef" for c in key_id)
        or len(secret) < 32
    ):
        raise AuthError("the API key is malformed (expected ahk_<16 hex digits>_<secret>)")
    return key_id, secret


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _role(value: Any) -> ApiKeyRole:
    try:
        return ApiKeyRole(value)
    except ValueError:
        raise InputError(
            f"role: must be reader, writer or admin, not {value!r}", field="role"
        ) from None


def _key(row: Mapping[str, Any]) -> ApiKey:
    return ApiKey.model_validate({k: v for k, v in row.items() if k != "secret_sha256"})


class KeysClient:
    """Create, list, revoke and check API keys (``hub.keys``)."""

    def __init__(self, ctx: HubContext, *, cache_s: float = 2.0) -> None:
        self._ctx = ctx
        self._cache_s = cache_s
        self._cache: dict[str, tuple[float, Mapping[str, Any] | None]] = {}
        self._usage = KeyUsage()

    async def create(
        self,
        *,
        tenant: str,
        role: ApiKeyRole | str,
        name: str | None = None,
        actor: str | None = None,
    ) -> NewKey:
        """A new key of ``tenant`` with ``role``; its token is in the result, once.
        ``actor``: who made it (default: this client's actor)."""
        check_id(tenant, "tenant")
        key_id = secrets.token_hex(KEY_ID_HEX // 2)
        secret = secrets.token_urlsafe(32)
        event = build_event(
            ApiKeyCreated,
            **(self._ctx.envelope() | {"tenant_id": tenant, "actor": actor or self._ctx.actor}),
            key_id=key_id,
            role=_role(role),
            name=name,
            secret_sha256=_sha256(secret),
        )
        await self._ctx.emit(event)
        await self._ctx.wait_for_projections(topics=[str(Topic.ACCESS)])
        created = await self.get(key_id)
        assert created is not None
        return NewKey(key=created, token=f"{PREFIX}{key_id}_{secret}")

    async def get(self, key_id: str, *, tenant: str | None = None) -> ApiKey | None:
        """One key (of ``tenant``, when given), revoked or not."""
        row = await self._ctx.pool.fetchrow(KEY, key_id)
        if row is None or (tenant is not None and row["tenant_id"] != tenant):
            return None
        return _key(row)

    async def list(
        self, *, tenant: str | None = None, include_revoked: bool = False
    ) -> list[ApiKey]:
        """Keys (of ``tenant``, or all), with when each was last used."""
        await self._ctx.wait_for_projections(topics=[str(Topic.ACCESS)])
        rows = await self._ctx.pool.fetch(KEYS, tenant, include_revoked)
        return [_key(row) for row in rows]

    async def revoke(
        self,
        key_id: str,
        *,
        tenant: str | None = None,
        reason: str | None = None,
        actor: str | None = None,
    ) -> ApiKey:
        """Revoke a key (of ``tenant``, when given): it is refused from then on. Revoking
        a revoked key changes nothing."""
        await self._ctx.wait_for_projections(topics=[str(Topic.ACCESS)])
        found = await self.get(key_id, tenant=tenant)
        if found is None:
            raise NotFoundError(f"no API key {key_id!r}")
        if found.revoked_at is None:
            envelope = {"tenant_id": found.tenant_id, "actor": actor or self._ctx.actor}
            await self._ctx.emit(
                build_event(ApiKeyRevoked, **envelope, key_id=key_id, reason=reason)
            )
            await self._ctx.wait_for_projections(topics=[str(Topic.ACCESS)])
            self._cache.pop(key_id, None)
            found = await self.get(key_id)
            assert found is not None
        return found

    async def local_admin(self, home: Path, *, tenant: str) -> tuple[Principal, bool]:
        """The local admin key of ``tenant`` kept under ``home``, made if missing or no
        longer good (revoked, another tenant's); True if it was made now."""
        token = read_local_key(home)
        if token is not None:
            try:
                found = await self.authenticate(token)
                if found.tenant == tenant and found.role == ApiKeyRole.ADMIN:
                    return found, False
            except AuthError:
                pass
        new = await self.create(tenant=tenant, role=ApiKeyRole.ADMIN, name=LOCAL_KEY_NAME)
        write_local_key(home, new.token)
        return await self.authenticate(new.token), True

    async def any_active(self) -> bool:
        """Whether any key can be used (a server on a public address needs one)."""
        await self._ctx.wait_for_projections(topics=[str(Topic.ACCESS)])
        return bool(await self._ctx.pool.fetchval(ANY_ACTIVE))

    async def authenticate(self, token: str | None) -> Principal:
        """Who ``token`` is; :class:`AuthError` when missing, unknown or revoked.

        Lookups are cached for ``cache_s`` seconds: a key revoked elsewhere is refused
        within that time (at once in the process that revoked it)."""
        if not token:
            raise AuthError("an API key is required (Authorization: Bearer <key>)")
        key_id, secret = parse_token(token)
        row = await self._lookup(key_id)
        if row is None or not hmac.compare_digest(row["secret_sha256"], _sha256(secret)):
            raise AuthError("the API key is not valid")
        if row["revoked_at"] is not None:
            raise AuthError(f"the API key {key_id} was revoked")
        await self._usage.used(self._ctx.pool, key_id)
        return Principal(
            key_id=key_id, tenant=row["tenant_id"], role=ApiKeyRole(row["role"]), name=row["name"]
        )

    async def _lookup(self, key_id: str) -> Mapping[str, Any] | None:
        now = time.monotonic()
        cached = self._cache.get(key_id)
        if cached is not None and now - cached[0] < self._cache_s:
            return cached[1]
        row = await self._ctx.pool.fetchrow(KEY, key_id)
        found = dict(row) if row is not None else None
        if len(self._cache) > 10_000:  # unknown ids must not grow it without bound
            self._cache.clear()
        self._cache[key_id] = (now, found)
        return found
