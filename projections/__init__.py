"""Read models built from events, and the catalogue of them."""

from __future__ import annotations

from typing import Any

from projections.access import AccessProjection
from projections.base import Projection
from projections.checkpoints import CheckpointsProjection
from projections.memory import MemoryProjection
from projections.prompts import PromptsProjection
from projections.registry import RegistryProjection
from projections.runs import RunsProjection
from projections.sessions import SessionsProjection

__all__ = ["CATALOGUE", "all_projections"]

CATALOGUE: tuple[type[Projection[Any]], ...] = (
    RegistryProjection,
    SessionsProjection,
    RunsProjection,
    PromptsProjection,
    AccessProjection,
    CheckpointsProjection,
    MemoryProjection,
)


def all_projections() -> list[Projection[Any]]:
    """One instance of every projection the hub maintains."""
    return [cls() for cls in CATALOGUE]
