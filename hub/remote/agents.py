"""``hub.registry`` in remote mode: the direct client's checks and events, reads over
HTTP, and ``record_run`` done by the hub."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from hub.agents.client import Agent, RegistryClient
from hub.core.cursor import CursorList
from hub.core.inputs import as_of_point, check_id
from hub.remote.api import quote_segment as _q
from hub.remote.context import RemoteContext
from schemas.errors import InputError

__all__ = ["RemoteRegistry"]


class RemoteRegistry(RegistryClient):
    """The agent registry over HTTP."""

    def __init__(self, ctx: RemoteContext) -> None:
        super().__init__(ctx)
        self._api = ctx.api
        self._outbox = ctx.outbox

    async def get(self, agent_id: str) -> Agent | None:
        check_id(agent_id)
        await self._outbox.flush()
        found = await self._api.get_or_none(f"/v1/agents/{_q(agent_id)}")
        return None if found is None else Agent.model_validate(found)

    async def list(
        self,
        *,
        tag: str | None = None,
        status: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        after: str | None = None,
    ) -> CursorList[Agent]:
        if status not in (None, "active", "retired"):
            raise InputError(
                f"status: must be 'active' or 'retired', not {status!r}", field="status"
            )
        await self._outbox.flush()
        params = {"tag": tag, "status": status, "limit": limit, "cursor": cursor, "after": after}
        found = await self._api.get("/v1/agents", params)
        return CursorList([Agent.model_validate(a) for a in found["agents"]], found["next_cursor"])

    async def as_of(self, agent_id: str, at: datetime | int) -> Agent | None:
        check_id(agent_id)
        when, offset = as_of_point(at)
        param = when.isoformat() if when is not None else str(offset)
        await self._outbox.flush()
        found = await self._api.get_or_none(f"/v1/agents/{_q(agent_id)}/as-of", {"at": param})
        return None if found is None else Agent.model_validate(found)

    async def record_run(
        self,
        agent_id: str,
        run_id: str,
        *,
        success: bool = True,
        status: str | None = None,
        error: str | None = None,
        duration_s: float = 0.0,
        metadata: Mapping[str, Any] | None = None,
    ) -> bool:
        check_id(agent_id)
        check_id(run_id, "run_id")
        await self._outbox.flush()
        body = {
            "agent_id": agent_id,
            "success": success,
            "status": status,
            "error": error,
            "duration_s": duration_s,
            "metadata": dict(metadata) if metadata is not None else None,
        }
        found = await self._api.call("POST", f"/v1/runs/{_q(run_id)}/record", json=body)
        return bool(found["recorded"])
