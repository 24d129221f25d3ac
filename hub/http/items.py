"""HTTP routes of items in namespaces (``/v1/memory/...``), what remote mode reads
LangGraph's store through: one item, a search (JSON containment, and similarity to a
vector given as comma-separated numbers), the namespaces, an item's history, and a
namespace as it was at a time. Writes are events (``POST /v1/events``)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Query
from pydantic import BaseModel

from hub.core.inputs import parse_time
from hub.http.params import json_object
from schemas.errors import InputError, NotFoundError

if TYPE_CHECKING:
    from hub.client import HubScope
    from hub.http.auth import Access
    from hub.memory.items import StoredItem

__all__ = ["ItemOut", "add_item_routes"]

NAMESPACE = Query(..., description="The namespace's labels, in order (repeat the parameter)")


class ItemOut(BaseModel):
    namespace: list[str]
    key: str
    value: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    ttl_s: float | None
    score: float | None


def _out(item: StoredItem) -> ItemOut:
    return ItemOut(
        namespace=list(item.namespace),
        **{
            k: getattr(item, k)
            for k in ("key", "value", "created_at", "updated_at", "expires_at", "ttl_s", "score")
        },
    )


def _vector(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise InputError("vector: numbers separated by commas", field="vector") from None


def add_item_routes(app: FastAPI, access: Access) -> None:
    reader = Depends(access.reader)

    @app.get("/v1/memory/items")
    async def get_item(
        key: str, namespace: list[str] = NAMESPACE, hub: HubScope = reader
    ) -> ItemOut:
        found = await hub.memory.items.get(namespace, key)
        if found is None:
            raise NotFoundError(f"no item {key!r} in namespace {tuple(namespace)!r}")
        return _out(found)

    @app.get("/v1/memory/search")
    async def search_items(
        prefix: list[str] = Query([], description="The namespace prefix (repeat)"),  # noqa: B008
        contains: str | None = Query(None, description="A JSON object the value contains"),
        vector: str | None = Query(None, description="Rank by similarity to this vector"),
        limit: int = Query(10, ge=1, le=1000),
        offset: int = Query(0, ge=0, le=10_000_000),
        hub: HubScope = reader,
    ) -> dict[str, list[ItemOut]]:
        found = await hub.memory.items.search(
            prefix,
            contains=json_object(contains, "contains"),
            vector=_vector(vector),
            limit=limit,
            offset=offset,
        )
        return {"items": [_out(i) for i in found]}

    @app.get("/v1/memory/namespaces")
    async def list_namespaces(hub: HubScope = reader) -> dict[str, list[list[str]]]:
        return {"namespaces": [list(ns) for ns in await hub.memory.items.namespaces()]}

    @app.get("/v1/memory/history")
    async def item_history(
        key: str, namespace: list[str] = NAMESPACE, hub: HubScope = reader
    ) -> dict[str, list[dict[str, Any]]]:
        versions = await hub.memory.items.history(namespace, key)
        return {"versions": [{"value": v.value, "at": v.at.isoformat()} for v in versions]}

    @app.get("/v1/memory/as-of")
    async def items_as_of(
        at: str, namespace: list[str] = NAMESPACE, hub: HubScope = reader
    ) -> dict[str, list[dict[str, Any]]]:
        found = await hub.memory.items.as_of(namespace, parse_time(at, "at"))
        return {"items": [{"key": k, "value": v, "since": s.isoformat()} for k, v, s in found]}
