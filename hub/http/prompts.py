"""HTTP routes of prompts (``/v1/prompts/{name}``): read a label or version, list
versions, add a version, move a label, roll back."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Response
from pydantic import BaseModel, ConfigDict

from hub.prompts.client import CURRENT
from hub.prompts.models import PromptVersion
from schemas.errors import NotFoundError

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

    @app.get("/v1/prompts/{name}")
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

    @app.get("/v1/prompts/{name}/versions")
    async def list_versions(name: str, hub: HubScope = reader) -> dict[str, Any]:
        versions = await hub.prompts.list_versions(name)
        if not versions:
            raise NotFoundError(f"no prompt {name!r}")
        return {"name": name, "versions": [v.model_dump(mode="json") for v in versions]}

    @app.post("/v1/prompts/{name}/versions", status_code=201)
    async def add_version(name: str, body: NewVersion, hub: HubScope = writer) -> PromptVersion:
        return await hub.prompts.set(name, **body.model_dump())

    @app.put("/v1/prompts/{name}/versions/{version}")
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

    @app.put("/v1/prompts/{name}/labels/{label}")
    async def move_label(
        name: str, label: str, body: MoveLabel, hub: HubScope = writer
    ) -> PromptVersion:
        return await hub.prompts.move_label(name, label, body.version)

    @app.post("/v1/prompts/{name}/rollback")
    async def rollback(name: str, body: Rollback, hub: HubScope = writer) -> PromptVersion:
        return await hub.prompts.rollback(name, body.version, label=body.label)
