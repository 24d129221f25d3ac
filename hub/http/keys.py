"""HTTP routes of API keys (``/v1/keys``), for admin keys: create (the token is in the
answer, once), list with last use, revoke. An admin key manages its own tenant's keys."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Depends, FastAPI
from pydantic import BaseModel, ConfigDict

from hub.access.keys import ApiKey, NewKey, Principal
from schemas.events import ApiKeyRole

if TYPE_CHECKING:
    from hub.http.auth import Access

__all__ = ["add_key_routes"]


class CreateKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: ApiKeyRole
    name: str | None = None


class RevokeKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = None


class KeyList(BaseModel):
    keys: list[ApiKey]


def add_key_routes(app: FastAPI, access: Access) -> None:
    admin = Depends(access.admin_principal)
    keys = access.hub.keys

    @app.post("/v1/keys", status_code=201)
    async def create_key(body: CreateKey, caller: Principal = admin) -> NewKey:
        """A new key of the caller's tenant. Not idempotent: a retry makes another key
        (revoke the one not used); the token is never stored, so it cannot be replayed."""
        return await keys.create(
            tenant=caller.tenant, role=body.role, name=body.name, actor=caller.actor
        )

    @app.get("/v1/keys")
    async def list_keys(include_revoked: bool = False, caller: Principal = admin) -> KeyList:
        return KeyList(keys=await keys.list(tenant=caller.tenant, include_revoked=include_revoked))

    @app.post("/v1/keys/{key_id}/revoke")
    async def revoke_key(
        key_id: str, body: RevokeKey | None = None, caller: Principal = admin
    ) -> ApiKey:
        reason = (body or RevokeKey()).reason
        return await keys.revoke(key_id, tenant=caller.tenant, reason=reason, actor=caller.actor)
