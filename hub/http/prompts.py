"""HTTP routes of prompts (``/v1/prompts/{name}``): read a label or version, list
versions, add a version, move a label, roll back."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Query, Response
from pydantic import BaseModel, ConfigDict

from hub.http.params import AT_DESCRIPTION, parse_at
from hub.prompts.client import CURRENT
from hub.prompts.models import PromptVersion
from schemas.errors import InputError, NotFoundError

if TYPE_CHECKING:
    from hub.client import HubScope
    from hub.http.auth import Access

__all__ = ["add_prompt_routes"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewVersion(_Body):
    version: str
    content: str
    make_current: bool = True
    note: str | None = None
    author: str | None = None


class EnsureVersion(_Body):
    content: str
    note: str | None = None
    author: str | None = None


class Ensured(BaseModel):
    created: bool


class MoveLabel(_Body):
    version: str


class Rollback(_Body):
    version: str
    label: str = CURRENT


def add_prompt_routes(app: FastAPI, access: Access) -> None:
    reader = Depends(access.reader)
    writer = Depends(access.writer)

    @app.get("/v1/prompts/{name:path}")
    async def get_prompt(
        name: str, label: str = CURRENT, version: str | None = None, hub: HubScope = reader
    ) -> PromptVersion:
        found = (
            await hub.prompts.get_version(name, version)
            if version is not None
            else await hub.prompts.get(name, label=label)
        )
        if found is None:
            what = f"version {version!r}" if version is not None else f"label {label!r}"
            raise NotFoundError(f"prompt {name!r} has no {what}")
        return found

    @app.get("/v1/prompts/{name:path}/versions")
    async def list_versions(name: str, hub: HubScope = reader) -> dict[str, Any]:
        versions = await hub.prompts.list_versions(name)
        if not versions:
            raise NotFoundError(f"no prompt {name!r}")
        return {"name": name, "versions": [v.model_dump(mode="json") for v in versions]}

    @app.get("/v1/prompts/{name:path}/labels")
    async def labels_at(
        name: str,
        at: datetime = Query(..., description="A time, ISO 8601 with a timezone"),  # noqa: B008
        hub: HubScope = reader,
    ) -> dict[str, dict[str, str]]:
        """Where each label pointed at that time."""
        return {"labels": await hub.prompts.labels_at(name, at)}

    @app.get("/v1/prompts/{name:path}/as-of")
    async def prompt_as_of(
        name: str,
        at: str = Query(..., description=AT_DESCRIPTION),
        label: str = CURRENT,
        hub: HubScope = reader,
    ) -> PromptVersion:
        """The version ``label`` pointed at then; 404 if it pointed nowhere yet."""
        when = parse_at(at)
        if not isinstance(when, datetime | int):
            raise InputError("at: a time or an offset of the prompt's partition", field="at")
        found = await hub.prompts.as_of(name, when, label=label)
        if found is None:
            raise NotFoundError(f"prompt {name!r} label {label!r} pointed nowhere at {at}")
        return found

    @app.post("/v1/prompts/{name:path}/versions", status_code=201)
    async def add_version(name: str, body: NewVersion, hub: HubScope = writer) -> PromptVersion:
        return await hub.prompts.set(name, **body.model_dump())

    @app.put(
        "/v1/prompts/{name:path}/versions/{version}",
        responses={
            200: {"description": "The version existed with this content: nothing changed"},
            201: {"model": Ensured, "description": "The version was created"},
        },
    )
    async def ensure_version(
        name: str, version: str, body: EnsureVersion, response: Response, hub: HubScope = writer
    ) -> Ensured:
        """Create ``version`` unless it exists with this content (the first version of a
        prompt becomes ``current``)."""
        created = await hub.prompts.ensure_exists(
            name, body.content, version, **body.model_dump(exclude={"content"})
        )
        response.status_code = 201 if created else 200
        return Ensured(created=created)

    @app.put("/v1/prompts/{name:path}/labels/{label}")
    async def move_label(
        name: str, label: str, body: MoveLabel, hub: HubScope = writer
    ) -> PromptVersion:
        return await hub.prompts.move_label(name, label, body.version)

    @app.post("/v1/prompts/{name:path}/rollback")
    async def rollback(name: str, body: Rollback, hub: HubScope = writer) -> PromptVersion:
        return await hub.prompts.rollback(name, body.version, label=body.label)
