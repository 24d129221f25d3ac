"""The one cursor format of every list call, in the SDK and over HTTP.

A cursor is opaque and URL-safe: the base64url (unpadded) JSON of the list's name and the
sort key of the last item returned. Passing it back gives the items after that one. A
cursor of one list is refused by another, with an :class:`InputError` naming the field.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Generic, TypeVar

from schemas.errors import InputError

__all__ = ["CursorList", "cursor_time", "decode_cursor", "encode_cursor"]

T = TypeVar("T")


def encode_cursor(kind: str, *key: str | int) -> str:
    """The cursor after the item whose sort key is ``key``, in the list called ``kind``."""
    raw = json.dumps([kind, *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, kind: str, *, field: str = "cursor") -> list[Any]:
    """The sort key a cursor of list ``kind`` carries; :class:`InputError` for anything else."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error):
        value = None
    if not isinstance(value, list) or not value or value[0] != kind:
        raise InputError(f"{field}: not a cursor this list returned", field=field)
    return value[1:]


def cursor_time(value: Any, *, field: str = "cursor") -> datetime:
    """A timestamp that a cursor carried (as ISO 8601 text)."""
    try:
        at = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        at = None
    if at is None or at.tzinfo is None:
        raise InputError(f"{field}: not a cursor this list returned", field=field)
    return at


class CursorList(list[T], Generic[T]):
    """A page of a list call: the items, and ``next_cursor`` for the page after (None on
    the last page). It is a plain list otherwise."""

    next_cursor: str | None

    def __init__(self, items: Iterable[T] = (), next_cursor: str | None = None) -> None:
        super().__init__(items)
        self.next_cursor = next_cursor
