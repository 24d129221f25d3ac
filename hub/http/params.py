"""Query parameters several routes share."""

from __future__ import annotations

from datetime import datetime

from hub.infra.ports import Position
from schemas.errors import InputError

__all__ = ["AT_DESCRIPTION", "parse_at"]

AT_DESCRIPTION = (
    "A time (ISO 8601 with a timezone), a log offset, or a position topic:partition:offset"
)


def parse_at(value: str) -> datetime | int | Position:
    """``at`` as the SDK's ``as_of`` takes it."""
    text = value.strip()
    if text.isdigit():
        return int(text)
    if text.count(":") >= 2 and text.rsplit(":", 2)[1].isdigit():
        topic, partition, offset = text.rsplit(":", 2)
        if offset.isdigit() and topic.startswith("agenthub."):
            return Position(topic, int(partition), int(offset))
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"at: {AT_DESCRIPTION.lower()}, not {value!r}", field="at") from None
    if at.tzinfo is None:
        raise InputError("at: add a timezone, such as 2025-01-01T00:00:00+00:00", field="at")
    return at
