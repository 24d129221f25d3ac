"""What ``hub.prompts`` returns."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

__all__ = ["PromptVersion"]


class PromptVersion(BaseModel):
    """One immutable version of a prompt, with the labels pointing at it now."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    content: str
    sha256: str
    note: str | None = None
    author: str | None = None
    created_at: datetime
    labels: tuple[str, ...] = ()
