"""Binary COPY payloads for the projections' tables, built from their rows directly.

asyncpg's ``copy_records_to_table`` encodes every value through its codec machinery:
abstract-class checks per row and, for ``text`` and ``jsonb``, a Python call per value
(the NUL-safe codecs of :mod:`hub.infra.db`), after :class:`~projections.text.
TextSafeConnection` has looked through each row for arrays to escape. That was a third
of the registry projector's time. Here each column's encoder is chosen once per table,
from the table's own column types, and a row is its values' bytes joined.

The values stored are those asyncpg's path stores, text escaped the same way
(:func:`~projections.text.store_text`); a contract test holds the two to that. A value
of a kind this module does not expect (a naive datetime, a UUID as a string, a type
without an encoder here) makes :func:`encode_rows` return ``None``, and the caller takes
asyncpg's path, which converts it or names what is wrong.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from itertools import chain, repeat
from typing import Any
from uuid import UUID

import orjson

from projections.text import ESC, ESC_BYTES, jsonb_bytes, store_text

__all__ = ["COLUMN_TYPES", "Encode", "Unusual", "encode_rows", "encoders_for"]

# the type of each column of a table, by name (``$1``: the table, as a regclass text)
COLUMN_TYPES = """
SELECT a.attname, t.typname
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
"""

Encode = Callable[[Any], bytes]
EncodeColumn = Callable[[Sequence[Any]], list[bytes]]

_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_TRAILER = struct.pack("!h", -1)
_NULL = struct.pack("!i", -1)
_LEN = struct.Struct("!i").pack
_INT2 = struct.Struct("!ih").pack
_INT4 = struct.Struct("!ii").pack
_INT8 = struct.Struct("!iq").pack
_FLOAT8 = struct.Struct("!id").pack
_ARRAY_HEAD = struct.Struct("!iiiii").pack  # dimensions, has nulls, element type, size, base
_TEXT_OID = 25
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_TRUE, _FALSE = _LEN(1) + b"\x01", _LEN(1) + b"\x00"
_UUID_HEAD = _LEN(16)


class Unusual(Exception):
    """A value this module leaves to asyncpg."""


def _raw_text(value: Any) -> bytes:
    if type(value) is not str:
        raise Unusual
    text: str = value
    if "\x00" in text or ESC in text:
        text = store_text(text)
    return text.encode()


def _text(value: Any) -> bytes:
    data = _raw_text(value)
    return _LEN(len(data)) + data


def _integer(pack: Callable[[int, int], bytes], size: int) -> Encode:
    def encode(value: Any) -> bytes:
        if type(value) is not int:
            raise Unusual
        return pack(size, value)  # out of range: struct.error, and asyncpg names it

    return encode


def _float8(value: Any) -> bytes:
    if type(value) is not float and type(value) is not int:
        raise Unusual
    return _FLOAT8(8, value)


def _bool(value: Any) -> bytes:
    if type(value) is not bool:
        raise Unusual
    return _TRUE if value else _FALSE


def _uuid(value: Any) -> bytes:
    if type(value) is not UUID:
        raise Unusual
    return b"\x00\x00\x00\x10" + value.bytes


def _timestamptz(value: Any) -> bytes:
    if type(value) is not datetime or value.tzinfo is None or value.year in (1, 9999):
        raise Unusual  # naive, or asyncpg's infinities
    since = value - _PG_EPOCH
    return _INT8(8, (since.days * 86_400 + since.seconds) * 1_000_000 + since.microseconds)


def _jsonb(value: Any) -> bytes:
    data = b"\x01" + jsonb_bytes(value)
    return _LEN(len(data)) + data


def _bytea(value: Any) -> bytes:
    if type(value) is not bytes:
        raise Unusual
    return _LEN(len(value)) + value


def _text_array(value: Any) -> bytes:
    if type(value) is not list and type(value) is not tuple:
        raise Unusual
    if not value:
        data = _ARRAY_HEAD(0, 0, _TEXT_OID, 0, 0)[:12]  # no dimensions
        return _LEN(len(data)) + data
    items = [_NULL if v is None else _text(v) for v in value]
    has_nulls = 1 if None in value else 0
    data = _ARRAY_HEAD(1, has_nulls, _TEXT_OID, len(value), 1) + b"".join(items)
    return _LEN(len(data)) + data


ENCODERS: Mapping[str, Encode] = {
    "text": _text,
    "int2": _integer(_INT2, 2),
    "int4": _integer(_INT4, 4),
    "int8": _integer(_INT8, 8),
    "float8": _float8,
    "bool": _bool,
    "uuid": _uuid,
    "timestamptz": _timestamptz,
    "jsonb": _jsonb,
    "bytea": _bytea,
    "_text": _text_array,
}


def encoders_for(types: Mapping[str, str], columns: Sequence[str]) -> tuple[Encode, ...] | None:
    """Each column's encoder, given the table's column types; ``None`` if one has a type
    without an encoder here."""
    found = [ENCODERS.get(types.get(c, "")) for c in columns]
    if any(e is None for e in found):
        return None
    return tuple(e for e in found if e is not None)


def _column(encode: Encode) -> EncodeColumn:
    """A column encoder calling ``encode`` per value (the general case)."""

    def encode_column(values: Sequence[Any]) -> list[bytes]:
        return [_NULL if v is None else encode(v) for v in values]

    return encode_column


def _only(values: Sequence[Any], kind: type) -> bool:
    """Whether every value is exactly a ``kind`` or ``None`` (one pass, in C)."""
    return set(map(type, values)) <= {kind, type(None)}


def _text_column(values: Sequence[Any]) -> list[bytes]:
    if not _only(values, str):
        raise Unusual
    present = [v for v in values if v is not None] if None in values else values
    joined = "".join(present)
    if "\x00" in joined or ESC in joined:  # rare: escaped value by value
        return [_NULL if v is None else _text(v) for v in values]
    return [_NULL if v is None else _LEN(len(b := v.encode())) + b for v in values]


def _integer_column(pack: Callable[[int, int], bytes], size: int) -> EncodeColumn:
    def encode_column(values: Sequence[Any]) -> list[bytes]:
        if not _only(values, int):
            raise Unusual
        return [_NULL if v is None else pack(size, v) for v in values]

    return encode_column


def _uuid_column(values: Sequence[Any]) -> list[bytes]:
    if not _only(values, UUID):
        raise Unusual
    return [_NULL if v is None else _UUID_HEAD + v.int.to_bytes(16, "big") for v in values]


_MICROSECOND = timedelta(microseconds=1)
_FIRST = (datetime(2, 1, 1, tzinfo=UTC) - _PG_EPOCH) // _MICROSECOND  # before: year 1
_LAST = (datetime(9999, 1, 1, tzinfo=UTC) - _PG_EPOCH) // _MICROSECOND  # from: year 9999


def _timestamptz_column(values: Sequence[Any]) -> list[bytes]:
    if not _only(values, datetime):
        raise Unusual
    # a naive datetime fails the subtraction (TypeError): asyncpg's path then names it
    micros = [None if v is None else (v - _PG_EPOCH) // _MICROSECOND for v in values]
    present = [m for m in micros if m is not None]
    if present and (min(present) < _FIRST or max(present) >= _LAST):
        raise Unusual  # years 1 and 9999 hold asyncpg's infinities
    return [_NULL if m is None else _INT8(8, m) for m in micros]


def _jsonb_column(values: Sequence[Any]) -> list[bytes]:
    # Each cell is built from orjson's output at once: orjson returns bytes over-allocated
    # to 1 KiB or more, and holding a column of them costs ten times the encoding.
    try:
        cells = [
            _NULL if v is None else _LEN(len(d := orjson.dumps(v)) + 1) + b"\x01" + d
            for v in values
        ]
    except TypeError:  # an integer beyond 64 bits, a key that is not a string...
        return [_NULL if v is None else _jsonb(v) for v in values]
    joined = b"".join(cells)
    if b"\\u0000" in joined or ESC_BYTES in joined:  # NUL or our escape: json_text's way
        return [_NULL if v is None else _jsonb(v) for v in values]
    return cells


def _text_array_column(values: Sequence[Any]) -> list[bytes]:
    kinds = set(map(type, values))
    if not kinds <= {list, type(None)}:  # tuples and the rest: value by value
        return [_NULL if v is None else _text_array(v) for v in values]
    items = list(chain.from_iterable([v for v in values if v is not None]))
    if not items or not _only(items, str) or None in items:
        return [_NULL if v is None else _text_array(v) for v in values]
    joined = "".join(items)
    if "\x00" in joined or ESC in joined:
        return [_NULL if v is None else _text_array(v) for v in values]
    cells = [_LEN(len(b := x.encode())) + b for x in items]
    out: list[bytes] = []
    at = 0
    for v in values:
        if v is None:
            out.append(_NULL)
        elif not v:
            out.append(_EMPTY_TEXT_ARRAY)
        else:
            body = b"".join(cells[at : at + len(v)])
            at += len(v)
            out.append(_LEN(20 + len(body)) + _ARRAY_HEAD(1, 0, _TEXT_OID, len(v), 1) + body)
    return out


_EMPTY_TEXT_ARRAY = _text_array([])

_COLUMN_ENCODERS: dict[Encode, EncodeColumn] = {
    _jsonb: _jsonb_column,
    _text_array: _text_array_column,
    _text: _text_column,
    ENCODERS["int2"]: _integer_column(_INT2, 2),
    ENCODERS["int4"]: _integer_column(_INT4, 4),
    ENCODERS["int8"]: _integer_column(_INT8, 8),
    _uuid: _uuid_column,
    _timestamptz: _timestamptz_column,
}


def encode_rows(encoders: Sequence[Encode], records: Sequence[Sequence[Any]]) -> bytes | None:
    """The binary COPY payload of ``records``, or ``None`` if a value is one to leave
    to asyncpg (it then converts it, or names what is wrong).

    Encoded a column at a time (one type check per column, loops in comprehensions),
    then the cells interleaved row by row, in C.
    """
    if not records:
        return _HEADER + _TRAILER
    width = len(encoders)
    if set(map(len, records)) != {width}:
        return None
    try:
        cells = [
            (_COLUMN_ENCODERS.get(encode) or _column(encode))(values)
            for encode, values in zip(encoders, zip(*records))  # noqa: B905 (widths checked)
        ]
    except (Unusual, TypeError, ValueError, OverflowError, struct.error):
        return None
    count = struct.pack("!h", width)
    body = b"".join(chain.from_iterable(zip(repeat(count, len(records)), *cells, strict=True)))
    return _HEADER + body + _TRAILER
