"""Input checks shared by every feature client: bad input raises :class:`InputError`
naming the field, before anything is produced."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from schemas.codec import pydantic_error_field
from schemas.errors import InputError
from schemas.types import MAX_ID_LENGTH

__all__ = ["as_of_point", "build_event", "check_id", "parse_time", "reject_unknown"]

M = TypeVar("M", bound=BaseModel)


def build_event(cls: type[M], **fields: Any) -> M:
    """Build an event (or event part) from caller input; bad input raises
    :class:`InputError` naming the field."""
    try:
        return cls(**fields)
    except PydanticValidationError as exc:
        field, msg = pydantic_error_field(exc)
        if exc.errors()[0]["type"] == "extra_forbidden":
            msg = "unknown field"
        raise InputError(f"{field}: {msg}", field=field) from None


def reject_unknown(unknown: Mapping[str, Any]) -> None:
    """Refuse keyword arguments a call does not take, naming the first."""
    if unknown:
        name = sorted(unknown)[0]
        raise InputError(f"{name}: unknown field", field=name)


def check_id(value: Any, field: str = "agent_id") -> str:
    """A non-empty string id of at most ``MAX_ID_LENGTH`` characters."""
    if not isinstance(value, str):
        raise InputError(f"{field}: expected a string, got {type(value).__name__}", field=field)
    if not value or len(value) > MAX_ID_LENGTH:
        raise InputError(f"{field}: must be 1 to {MAX_ID_LENGTH} characters", field=field)
    return value


def as_of_point(at: Any) -> tuple[datetime | None, int | None]:
    """A time or a log offset, as ``as_of`` takes them."""
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise InputError("at: must be a timezone-aware datetime", field="at")
        return at, None
    if isinstance(at, int) and not isinstance(at, bool) and at >= 0:
        return None, at
    offset = getattr(at, "offset", None)  # a Position
    if isinstance(offset, int):
        return None, offset
    raise InputError("at: give a timezone-aware datetime or a log offset", field="at")


def parse_time(value: str, field: str, *, shown: str | None = None) -> datetime:
    """An ISO 8601 time with a timezone, as a caller typed it; :class:`InputError`
    naming ``field`` (shown as ``shown``, such as a CLI option) otherwise."""
    name = shown or field
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InputError(f"{name}: {value!r} is not an ISO date or time", field=field) from None
    if at.tzinfo is None:
        raise InputError(f"{name}: add a timezone, such as 2025-01-01T00:00:00+00:00", field=field)
    return at
