"""HTTP routes of the agent registry (``/v1/agents``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Query

from hub.agents.client import Agent
from schemas.errors import NotFoundError

if TYPE_CHECKING:
    from hub.client import Hub

__all__ = ["add_agent_routes"]


def add_agent_routes(app: FastAPI, hub: Hub) -> None:
    registry = hub.registry

    @app.get("/v1/agents")
    async def list_agents(
        tag: str | None = None,
        status: str | None = None,
        limit: int = Query(100, ge=1, le=1000),
        cursor: str | None = None,
        after: str | None = Query(None, deprecated=True, description="use cursor"),
    ) -> dict[str, Any]:
        agents = await registry.list(
            tag=tag, status=status, limit=limit, cursor=cursor, after=after
        )
        return {
            "agents": [a.model_dump(mode="json") for a in agents],
            "next_cursor": agents.next_cursor,
            # deprecated, for one release: the last agent id, as `after` takes it
            "next": agents[-1].agent_id if agents.next_cursor else None,
        }

    @app.get("/v1/agents/{agent_id}")
    async def get_agent(agent_id: str) -> Agent:
        agent = await registry.get(agent_id)
        if agent is None:
            raise NotFoundError(f"no agent {agent_id!r}")
        return agent
