"""HTTP routes of users' memory (``/v1/users/{user_id}/memory``): list (or as it was at a
time), read, remember, forget a fact, a fact's history, and erase a user's memory."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Query, Response
from pydantic import BaseModel, ConfigDict

from hub.core.inputs import parse_time
from schemas.errors import NotFoundError

if TYPE_CHECKING:
    from hub.client import HubScope
    from hub.http.auth import Access
    from hub.memory.client import Fact

__all__ = ["FactOut", "FactVersionOut", "add_memory_routes"]


class SetFact(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: Any
    category: str | None = None


class FactOut(BaseModel):
    user_id: str
    key: str
    value: Any
    category: str | None
    created_at: datetime
    updated_at: datetime


class FactVersionOut(BaseModel):
    value: Any
    category: str | None
    at: datetime
    deleted: bool


def _out(fact: Fact) -> FactOut:
    return FactOut(
        user_id=fact.user_id,
        key=fact.key,
        value=fact.value,
        category=fact.category,
        created_at=fact.created_at,
        updated_at=fact.updated_at,
    )


def add_memory_routes(app: FastAPI, access: Access) -> None:
    reader = Depends(access.reader)
    writer = Depends(access.writer)

    @app.get("/v1/users/{user_id}/memory")
    async def list_facts(
        user_id: str,
        category: str | None = None,
        as_of: str | None = Query(None, description="A time, ISO 8601 with a timezone"),
        hub: HubScope = reader,
    ) -> dict[str, list[FactOut]]:
        """The user's facts (of one category), or as they were at ``as_of``."""
        if as_of is not None:
            facts = await hub.memory.as_of(user_id, parse_time(as_of, "as_of"))
            facts = [f for f in facts if category is None or f.category == category]
        else:
            facts = await hub.memory.get_all(user_id, category=category)
        return {"facts": [_out(f) for f in facts]}

    @app.get("/v1/users/{user_id}/memory/{key}")
    async def get_fact(user_id: str, key: str, hub: HubScope = reader) -> FactOut:
        found = await hub.memory.get(user_id, key)
        if found is None:
            raise NotFoundError(f"user {user_id!r} has no fact {key!r}")
        return _out(found)

    @app.get("/v1/users/{user_id}/memory/{key}/history")
    async def fact_history(
        user_id: str, key: str, hub: HubScope = reader
    ) -> dict[str, list[FactVersionOut]]:
        """Every value the fact had, oldest first."""
        versions = await hub.memory.history(user_id, key)
        return {"versions": [FactVersionOut(**v.__dict__) for v in versions]}

    @app.put("/v1/users/{user_id}/memory/{key}")
    async def set_fact(user_id: str, key: str, body: SetFact, hub: HubScope = writer) -> FactOut:
        await hub.memory.set(user_id, key, body.value, category=body.category)
        found = await hub.memory.get(user_id, key)
        if found is None:  # written but not readable: the projection refused it
            raise NotFoundError(f"user {user_id!r} has no fact {key!r}")
        return _out(found)

    @app.delete("/v1/users/{user_id}/memory/{key}", status_code=204)
    async def delete_fact(user_id: str, key: str, hub: HubScope = writer) -> Response:
        await hub.memory.delete(user_id, key)
        return Response(status_code=204)

    @app.delete("/v1/users/{user_id}/memory", status_code=204)
    async def erase_memory(user_id: str, hub: HubScope = writer) -> Response:
        """Forget everything about the user: every fact and its history."""
        await hub.memory.erase(user_id)
        return Response(status_code=204)
