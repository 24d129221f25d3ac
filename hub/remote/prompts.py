"""``hub.prompts`` in remote mode: the direct client's checks, events and cache, with reads
over HTTP."""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any

from hub.core.inputs import as_of_point
from hub.prompts.client import CURRENT, PromptsClient
from hub.prompts.models import PromptVersion
from hub.remote.api import quote_segment as _q
from hub.remote.context import RemoteContext
from schemas.errors import InputError

__all__ = ["RemotePrompts"]


class RemotePrompts(PromptsClient):
    """Versioned prompts over HTTP."""

    def __init__(self, ctx: RemoteContext) -> None:
        super().__init__(ctx)
        self._api = ctx.api
        self._outbox = ctx.outbox

    async def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        await self._outbox.flush()
        return await self._api.get_or_none(path, params)

    async def _label(self, name: str, label: str) -> PromptVersion | None:
        found = await self._get(f"/v1/prompts/{_q(name)}", {"label": label})
        return None if found is None else PromptVersion.model_validate(found)

    async def get_version(self, name: str, version: str) -> PromptVersion | None:
        found = await self._get(f"/v1/prompts/{_q(name)}", {"version": version})
        return None if found is None else PromptVersion.model_validate(found)

    async def list_versions(self, name: str) -> builtins.list[PromptVersion]:
        found = await self._get(f"/v1/prompts/{_q(name)}/versions")
        return [] if found is None else [PromptVersion.model_validate(v) for v in found["versions"]]

    async def labels_at(self, name: str, at: datetime) -> dict[str, str]:
        if at.tzinfo is None:
            raise InputError("at: must be a timezone-aware datetime", field="at")
        found = await self._get(f"/v1/prompts/{_q(name)}/labels", {"at": at.isoformat()})
        labels: dict[str, str] = {} if found is None else found["labels"]
        return labels

    async def as_of(
        self, name: str, at: datetime | int, *, label: str = CURRENT
    ) -> PromptVersion | None:
        when, offset = as_of_point(at)
        param = when.isoformat() if when is not None else str(offset)
        found = await self._get(f"/v1/prompts/{_q(name)}/as-of", {"at": param, "label": label})
        return None if found is None else PromptVersion.model_validate(found)
