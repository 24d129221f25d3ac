"""HTTP routes of the agent registry (``/v1/agents``): look up, register or update, tag,
retire."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Query
from pydantic import BaseModel, ConfigDict, Field

from hub.agents.client import Agent, RegisterResult
from hub.http.params import AT_DESCRIPTION, parse_at
from schemas.errors import InputError, NotFoundError

if TYPE_CHECKING:
    from hub.client import HubScope
    from hub.http.auth import Access

__all__ = ["add_agent_routes"]


class RegisterAgent(BaseModel):
    """``null`` (or absent) leaves a field as it is for a known agent."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None


class TagChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    add: list[str] = Field(default_factory=list)
    remove: list[str] = Field(default_factory=list)


class RetireAgent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = None


class Registered(BaseModel):
    result: RegisterResult
    agent: Agent


class Retired(BaseModel):
    retired: bool = Field(description="false: the agent was already retired")


def add_agent_routes(app: FastAPI, access: Access) -> None:
    reader = Depends(access.reader)
    writer = Depends(access.writer)

    @app.get("/v1/agents")
    async def list_agents(
        tag: str | None = None,
        status: str | None = None,
        limit: int = Query(100, ge=1, le=1000),
        cursor: str | None = None,
        after: str | None = Query(None, deprecated=True, description="use cursor"),
        hub: HubScope = reader,
    ) -> dict[str, Any]:
        agents = await hub.registry.list(
            tag=tag, status=status, limit=limit, cursor=cursor, after=after
        )
        return {
            "agents": [a.model_dump(mode="json") for a in agents],
            "next_cursor": agents.next_cursor,
            # deprecated, for one release: the last agent id, as `after` takes it
            "next": agents[-1].agent_id if agents.next_cursor else None,
        }

    @app.get("/v1/agents/{agent_id:path}")
    async def get_agent(agent_id: str, hub: HubScope = reader) -> Agent:
        agent = await hub.registry.get(agent_id)
        if agent is None:
            raise NotFoundError(f"no agent {agent_id!r}")
        return agent

    @app.get("/v1/agents/{agent_id:path}/as-of")
    async def agent_as_of(
        agent_id: str, at: str = Query(..., description=AT_DESCRIPTION), hub: HubScope = reader
    ) -> Agent:
        """The agent as it was then; 404 if it was not registered yet."""
        when = parse_at(at)
        if not isinstance(when, datetime | int):
            raise InputError("at: a time or an offset of the agent's partition", field="at")
        agent = await hub.registry.as_of(agent_id, when)
        if agent is None:
            raise NotFoundError(f"no agent {agent_id!r} at {at}")
        return agent

    async def _registered(hub: HubScope, agent_id: str, result: RegisterResult) -> Registered:
        agent = await hub.registry.get(agent_id)
        if agent is None:  # produced but refused by the projection
            raise NotFoundError(f"no agent {agent_id!r}")
        return Registered(result=result, agent=agent)

    @app.put("/v1/agents/{agent_id:path}")
    async def register_agent(
        agent_id: str, body: RegisterAgent, hub: HubScope = writer
    ) -> Registered:
        result = await hub.registry.register(agent_id, **body.model_dump())
        return await _registered(hub, agent_id, result)

    @app.post("/v1/agents/{agent_id:path}/tags")
    async def change_tags(agent_id: str, body: TagChange, hub: HubScope = writer) -> Registered:
        if not body.add and not body.remove:
            raise InputError("give tags to add or remove", field="add")
        result = RegisterResult.UNCHANGED
        if body.add:
            result = await hub.registry.add_tags(agent_id, *body.add)
        if body.remove:
            removed = await hub.registry.remove_tags(agent_id, *body.remove)
            result = removed if removed != RegisterResult.UNCHANGED else result
        return await _registered(hub, agent_id, result)

    @app.post("/v1/agents/{agent_id:path}/retire")
    async def retire_agent(
        agent_id: str, body: RetireAgent | None = None, hub: HubScope = writer
    ) -> Retired:
        if await hub.registry.get(agent_id) is None:
            raise NotFoundError(f"no agent {agent_id!r}")
        retired = await hub.registry.retire(agent_id, reason=(body or RetireAgent()).reason)
        return Retired(retired=retired)
