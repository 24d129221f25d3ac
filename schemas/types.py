"""Field types shared by the event models, with the constraints every producer gets."""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import orjson
from pydantic import AfterValidator, Field, StringConstraints

__all__ = [
    "AVRO_INT",
    "AVRO_JSON",
    "MAX_ID_LENGTH",
    "MAX_TITLE_LENGTH",
    "METRIC_NAME_PATTERN",
    "AvroInt",
    "FrozenList",
    "Identifier",
    "Json",
    "JsonObject",
    "MetricName",
    "Text",
    "Title",
    "TokenCount",
    "UtcDatetime",
    "is_plain_json",
    "is_union",
    "unwrap",
    "utcnow",
]

MAX_ID_LENGTH = 200


class _AvroJson:
    """Marks a field stored in Avro as a JSON-encoded string."""

    def __repr__(self) -> str:
        return "AvroJson"


class _AvroInt:
    """Marks an ``int`` field stored as Avro ``int`` (32-bit) instead of ``long``."""

    def __repr__(self) -> str:
        return "AvroInt"


AVRO_JSON = _AvroJson()
AVRO_INT = _AvroInt()


# C0 and C1 controls, DEL, and the invisible format characters that can disguise an id
# (zero-width, bidi overrides, BOM). Checked by pydantic-core's regex engine (fast).
_FORBIDDEN = "\\x00-\\x1f\\x7f-\\x9f\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\ufeff"
ID_PATTERN = rf"^[^\s{_FORBIDDEN}](?:[^{_FORBIDDEN}]*[^\s{_FORBIDDEN}])?$"
TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
ID_RULE = "must be free of control characters and not start or end with whitespace"
TEXT_RULE = "must not contain control characters (newlines and tabs are fine)"


def _aware_utc(value: datetime) -> datetime:
    if value.tzinfo is UTC:
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must be timezone-aware (use UTC)")
    return value.astimezone(UTC)


def utcnow() -> datetime:
    """Now, as an aware UTC datetime with microsecond precision."""
    return datetime.now(UTC)


Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)
]
"""An id or name: 1 to 200 characters, no control characters, no surrounding spaces."""

METRIC_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.:/-]*$"
MetricName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_ID_LENGTH, pattern=METRIC_NAME_PATTERN),
]
"""A metric name: a letter or ``_`` first, then letters, digits, ``_ . : / -``."""

Text = Annotated[str, StringConstraints(pattern=TEXT_PATTERN)]
"""Free text: newlines and tabs allowed, other control characters not."""

MAX_TITLE_LENGTH = 1000
Title = Annotated[str, StringConstraints(max_length=MAX_TITLE_LENGTH, pattern=TEXT_PATTERN)]
"""A title: free text of at most 1,000 characters."""

TokenCount = Annotated[int, Field(ge=0, le=2**63 - 1)]
"""A count of tokens: 0 or more, and within an Avro long."""

UtcDatetime = Annotated[datetime, AfterValidator(_aware_utc)]


def _json_value(value: Any) -> Any:
    if value is None or (isinstance(value, dict | list) and not value) or is_plain_json(value):
        return value
    try:
        _strict_json(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"must be JSON (no NaN or infinity): {exc}") from None
    return value


_strict_json = json.JSONEncoder(allow_nan=False).encode
# orjson writes datetimes, dataclasses, UUIDs, enums and subclasses of str, int, dict and
# list, which the standard library refuses or writes otherwise: the first three kinds it
# is told to hand to ``_refuse``; the rest do not read back equal.
_PASSTHROUGH = (
    orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def _refuse(value: Any) -> Any:
    raise TypeError(type(value).__name__)


def is_plain_json(value: Any) -> bool:
    """Whether ``value`` is made of JSON's own types only, and so is JSON, checked by
    orjson (compiled): it writes ``value`` without a ``null`` (NaN is written as one) and
    reads back equal. ``False`` leaves the answer to the standard library's check, which
    accepts tuples and int or str subclasses, and names what it refuses."""
    try:
        text = orjson.dumps(value, option=_PASSTHROUGH, default=_refuse)
    except TypeError:
        return False
    return b"null" not in text and bool(orjson.loads(text) == value)


Json = Annotated[Any, AVRO_JSON, AfterValidator(_json_value)]
"""Any JSON value, stored in Avro as a JSON string."""

JsonObject = Annotated[dict[str, Any], AVRO_JSON, AfterValidator(_json_value)]
"""A JSON object, stored in Avro as a JSON string."""

AvroInt = Annotated[int, AVRO_INT, Field(ge=-(2**31), lt=2**31)]

T = TypeVar("T")

FrozenList = Annotated[Sequence[T], AfterValidator(tuple)]
"""Any sequence on input (not a str); stored as a tuple, so events stay immutable."""


def unwrap(tp: Any) -> tuple[Any, list[Any]]:
    """Strip ``Annotated`` layers, returning the bare type and all their metadata."""
    meta: list[Any] = []
    while typing.get_origin(tp) is Annotated:
        args = typing.get_args(tp)
        tp, meta = args[0], [*meta, *args[1:]]
    return tp, meta


def is_union(tp: Any) -> bool:
    """Whether ``tp`` is ``A | B`` or ``Union[A, B]``."""
    return typing.get_origin(tp) in (typing.Union, types.UnionType)
