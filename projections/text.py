"""Text as Postgres can hold it. Postgres ``text`` and ``jsonb`` cannot hold NUL (U+0000),
which tool output and user content can; the hub stores and reads back such content
exactly, by a reversible escape: NUL becomes ``ESC + U+E001`` and ESC itself ``ESC + ESC``,
where ESC is the private-use U+E000. Anything else is stored as it is.

Scalar ``text``, ``json`` and ``jsonb`` values are escaped by the database codecs of every
connection (:mod:`hub.infra.db`). Arrays of text bypass those codecs in the driver, so a
projection's batch writes through :class:`projections.connection.TextSafeConnection`,
which escapes the strings of every list argument, and readers of ``text[]`` columns call
:func:`load_texts`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

import orjson

__all__ = [
    "ESC",
    "ESC_BYTES",
    "JsonText",
    "json_text",
    "jsonb_bytes",
    "load_json",
    "load_text",
    "load_texts",
    "store_text",
]

ESC = "\ue000"
ESC_BYTES = ESC.encode()
_LONG_NUMBER = re.compile(rb"\d{19}")
_UNESCAPE = re.compile("\ue000([\ue000\ue001])")
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def store_text(value: str) -> str:
    """``value`` as Postgres can hold it (:func:`load_text` is the way back)."""
    if "\x00" in value or ESC in value:
        return value.replace(ESC, ESC + ESC).replace("\x00", ESC + "\ue001")
    return value


def load_text(value: str) -> str:
    """The inverse of :func:`store_text`."""
    if ESC in value:
        return _UNESCAPE.sub(lambda m: ESC if m.group(1) == ESC else "\x00", value)
    return value


def load_texts(values: Iterable[str]) -> list[str]:
    """A ``text[]`` column's values, as they were given."""
    return [load_text(v) for v in values]


def _map_strings(value: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, dict):
        return {fn(k): _map_strings(v, fn) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_map_strings(v, fn) for v in value]
    return value


class JsonText(str):
    """JSON already escaped by :func:`json_text` (a text-safe connection leaves it be)."""

    __slots__ = ()


def json_text(value: Any) -> JsonText:
    """JSON that Postgres ``json``/``jsonb`` accepts, for any JSON value."""
    text = _encode(value)
    if "\\u0000" in text or ESC in text:  # rare: escape the strings inside, then encode
        text = _encode(_map_strings(value, store_text))
    return JsonText(text)


def jsonb_bytes(value: Any) -> bytes:
    """``value`` as JSON that Postgres ``jsonb`` accepts (orjson, compiled; Postgres keeps
    jsonb in its own form, so the spelling does not matter)."""
    if not value and isinstance(value, dict):
        return b"{}"  # the common case (no tags, no metadata): no encoder call
    try:
        data = orjson.dumps(value)
    except TypeError:  # an integer beyond 64 bits, a key that is not a string...
        return json_text(value).encode()
    if b"\\u0000" in data or ESC_BYTES in data:  # NUL or our escape: json_text escapes them
        return json_text(value).encode()
    return data


def load_json(text: str | bytes) -> Any:
    """The inverse of :func:`json_text` (orjson, compiled, unless a number has 19 digits
    or more: orjson reads integers beyond 64 bits as floats; the standard parser does not)."""
    if type(text) not in (bytes, str):  # orjson takes exact types only (JsonText is a str)
        text = bytes(text) if isinstance(text, bytes) else str.__str__(text)
    if _LONG_NUMBER.search(text if isinstance(text, bytes) else text.encode()):
        value = json.loads(text)  # orjson would round integers beyond 64 bits to floats
    else:
        value = orjson.loads(text)
    escaped = ESC_BYTES in text if isinstance(text, bytes) else ESC in text
    if escaped:
        value = _map_strings(value, load_text)
    return value
