"""A projection's shadow: the same handlers writing to ``<schema>_next`` under their own
positions, which a rebuild fills and swaps in and ``verify`` compares with the live one."""

from __future__ import annotations

from typing import Any

from projections.base import Projection

__all__ = ["shadow_of"]


def shadow_of(projection: Projection[Any]) -> Projection[Any]:
    """The same projection, writing to ``<schema>_next`` under its own positions."""
    base = type(projection)
    live_schema = projection.schema

    class Shadow(base):  # type: ignore[valid-type,misc]
        published = False

        @property
        def schema(self) -> str:
            return f"{live_schema}_next"

        @property
        def dead_letter_consumer(self) -> str:
            return projection.consumer

    Shadow.__name__ = f"{base.__name__}Shadow"
    return Shadow()
