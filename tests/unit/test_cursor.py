"""The one cursor format: opaque, URL-safe, bound to the list that made it."""

from __future__ import annotations

import re

import pytest

from hub.core.cursor import CursorList, cursor_time, decode_cursor, encode_cursor
from schemas.errors import InputError


def test_round_trip_and_url_safe() -> None:
    cursor = encode_cursor("threads", "2026-01-01T00:00:00+00:00", "t/ü?&=")
    assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor)
    assert decode_cursor(cursor, "threads") == ["2026-01-01T00:00:00+00:00", "t/ü?&="]
    assert decode_cursor(encode_cursor("messages", "t", "before", 7), "messages") == [
        "t",
        "before",
        7,
    ]


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "%%%",
        "bm90IGpzb24",  # base64 of "not json"
        encode_cursor("agents", "a"),  # another list's cursor
    ],
)
def test_anything_else_is_an_input_error_naming_the_field(cursor: str) -> None:
    with pytest.raises(InputError, match="not a cursor") as caught:
        decode_cursor(cursor, "threads", field="cursor")
    assert caught.value.field == "cursor"


def test_cursor_time_needs_an_aware_iso_time() -> None:
    assert cursor_time("2026-01-01T00:00:00+00:00").year == 2026
    for bad in ("2026-01-01T00:00:00", "yesterday", 5):
        with pytest.raises(InputError):
            cursor_time(bad)


def test_cursor_list_is_a_list_with_a_next_cursor() -> None:
    page = CursorList([1, 2], "c")
    assert page == [1, 2] and page.next_cursor == "c"
    assert CursorList().next_cursor is None
