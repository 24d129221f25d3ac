"""HTTP routes of prompts (``/v1/prompts/{name}``, ``/v1/prompts/{name}/versions``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from hub.prompts.client import CURRENT
from hub.prompts.models import PromptVersion
from schemas.errors import NotFoundError

if TYPE_CHECKING:
    from hub.client import Hub

__all__ = ["add_prompt_routes"]


def add_prompt_routes(app: FastAPI, hub: Hub) -> None:
    prompts = hub.prompts

    @app.get("/v1/prompts/{name}")
    async def get_prompt(
        name: str, label: str = CURRENT, version: str | None = None
    ) -> PromptVersion:
        found = (
            await prompts.get_version(name, version)
            if version is not None
            else await prompts.get(name, label=label)
        )
        if found is None:
            what = f"version {version!r}" if version is not None else f"label {label!r}"
            raise NotFoundError(f"prompt {name!r} has no {what}")
        return found

    @app.get("/v1/prompts/{name}/versions")
    async def list_versions(name: str) -> dict[str, Any]:
        versions = await prompts.list_versions(name)
        if not versions:
            raise NotFoundError(f"no prompt {name!r}")
        return {"name": name, "versions": [v.model_dump(mode="json") for v in versions]}
