"""Query parameters several routes share."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from hub.core.inputs import parse_time
from hub.infra.ports import Position
from schemas.errors import InputError

__all__ = ["AT_DESCRIPTION", "json_object", "parse_at"]

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
    return parse_time(text, "at")


def json_object(text: str | None, field: str) -> dict[str, Any] | None:
    """A query parameter holding a JSON object (``None`` when not given)."""
    if text is None:
        return None
    try:
        found = json.loads(text)
    except ValueError:
        found = None
    if not isinstance(found, dict):
        raise InputError(f"{field}: a JSON object", field=field)
    return found
