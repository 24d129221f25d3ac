"""``hub.keys`` in remote mode: an admin key manages its own tenant's keys through
``/v1/keys``."""

from __future__ import annotations

from pathlib import Path

from hub.access.keys import ApiKey, KeysClient, NewKey, Principal
from hub.remote.api import quote_segment as _q
from hub.remote.context import RemoteContext
from schemas.errors import ForbiddenError, HubError, NotFoundError
from schemas.events import ApiKeyRole

__all__ = ["RemoteKeys"]


class RemoteKeys(KeysClient):
    """API keys over HTTP (the key in use must be an admin key)."""

    def __init__(self, ctx: RemoteContext) -> None:
        super().__init__(ctx)
        self._remote = ctx

    def _own_tenant(self, tenant: str | None) -> None:
        if tenant is not None and tenant != self._remote.tenant:
            raise ForbiddenError(
                f"this key manages tenant {self._remote.tenant!r}'s keys only, not {tenant!r}"
            )

    async def create(
        self,
        *,
        tenant: str,
        role: ApiKeyRole | str,
        name: str | None = None,
        actor: str | None = None,
    ) -> NewKey:
        self._own_tenant(tenant)
        found = await self._remote.api.call(
            "POST", "/v1/keys", json={"role": str(role), "name": name}
        )
        return NewKey.model_validate(found)

    async def get(self, key_id: str, *, tenant: str | None = None) -> ApiKey | None:
        self._own_tenant(tenant)
        keys = await self.list(include_revoked=True)
        return next((k for k in keys if k.key_id == key_id), None)

    async def list(
        self, *, tenant: str | None = None, include_revoked: bool = False
    ) -> list[ApiKey]:
        self._own_tenant(tenant)
        params = {"include_revoked": str(include_revoked).lower()}
        found = await self._remote.api.get("/v1/keys", params)
        return [ApiKey.model_validate(k) for k in found["keys"]]

    async def revoke(
        self,
        key_id: str,
        *,
        tenant: str | None = None,
        reason: str | None = None,
        actor: str | None = None,
    ) -> ApiKey:
        self._own_tenant(tenant)
        try:
            found = await self._remote.api.call(
                "POST", f"/v1/keys/{_q(key_id)}/revoke", json={"reason": reason}
            )
        except NotFoundError:
            raise NotFoundError(f"no API key {key_id!r}") from None
        return ApiKey.model_validate(found)

    async def authenticate(self, token: str | None) -> Principal:
        raise HubError("keys are checked by the hub itself, not in remote mode")

    async def local_admin(self, home: Path, *, tenant: str) -> tuple[Principal, bool]:
        raise HubError("the local admin key is made by `agent-hub up`, not in remote mode")

    async def any_active(self) -> bool:
        raise HubError("not in remote mode")
