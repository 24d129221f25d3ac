"""A writer compiled from one schema: the values of a datum to the bytes fastavro writes.

``compile_writer(parsed)`` writes one Python function, ``write(datum) -> bytes``, that
encodes the fields in order with no call per field and none of fastavro's per-call
set-up or branch guessing. It takes the datum as the codec's plans make it from a checked
event (unions are ``None`` or a value of their one other branch, or ``(name, record)``
for unions of records) and gives the bytes ``fastavro.schemaless_writer`` gives for it,
which a property test holds it to. Anything else raises (a ``TypeError``,
``ValueError``, ``KeyError``...): the caller then encodes with fastavro, which names the
field. Schemas with a type or union it does not know compile to ``None``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.avro_bytes import SHORT_LONGS, avro_long
from schemas.codegen import FunctionWriter, Unsupported

__all__ = ["Write", "compile_writer"]

Write = Callable[[Any], bytes]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
MILLISECOND = timedelta(milliseconds=1)
_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def _micros(value: Any) -> int:
    if type(value) is int:
        return value
    if value.tzinfo is None:
        raise TypeError("a naive datetime")  # fastavro's own rule applies then
    micros: int = (value - EPOCH) // MICROSECOND
    return micros


def _millis(value: Any) -> int:
    if type(value) is int:
        return value
    if value.tzinfo is None:
        raise TypeError("a naive datetime")
    millis: int = (value - EPOCH) // MILLISECOND
    return millis


def _uuid_text(value: Any) -> bytes:
    text = value if type(value) is str else str(value)
    return avro_long(len(text)) + text.encode()  # a UUID's text is ASCII


def compile_writer(parsed: Any) -> Write | None:
    """The writer of ``parsed`` (a fastavro-parsed schema), or ``None``."""
    try:
        return _Generator().function(parsed)
    except Unsupported:
        return None


class _Generator(FunctionWriter):
    def function(self, schema: Any) -> Write:
        self.lines = ["def write(datum):", "    out = bytearray()"]
        self.node(schema, "datum", 1)
        self.lines.append("    return bytes(out)")
        helpers: dict[str, Any] = {
            "long": avro_long,
            "SHORT": SHORT_LONGS,
            "micros": _micros,
            "millis": _millis,
            "uuid_text": _uuid_text,
            "DOUBLE": struct.Struct("<d").pack,
            "FLOAT": struct.Struct("<f").pack,
        }
        write: Write = self.build("write", helpers, "<avro writer>")
        return write

    def node(self, schema: Any, value: str, depth: int) -> None:
        if isinstance(schema, str):
            if schema in _PRIMITIVES:
                return self.primitive(schema, value, depth)
            if schema not in self.named:
                raise Unsupported(schema)
            return self.node(self.named[schema], value, depth)
        if isinstance(schema, list):
            return self.union(schema, value, depth)
        kind = schema["type"]
        logical = schema.get("logicalType")
        if logical is not None:
            return self.logical(kind, logical, value, depth)
        if kind in _PRIMITIVES:
            return self.primitive(kind, value, depth)
        if kind == "record":
            return self.record(schema, value, depth)
        if kind == "enum":
            self.named[schema["name"]] = schema
            symbols = self.constant(tuple(schema["symbols"]))
            return self.emit(depth, f"out += long({symbols}.index({value}))")
        if kind == "array":
            item = self.var()
            self.emit(depth, f"if {value}:")
            self.length(depth + 1, value)
            self.emit(depth + 1, f"for {item} in {value}:")
            self.node(schema["items"], item, depth + 2)
            return self.emit(depth, "out += b'\\x00'")
        if kind == "map":
            key, item = self.var(), self.var()
            self.emit(depth, f"if {value}:")
            self.length(depth + 1, value)
            self.emit(depth + 1, f"for {key}, {item} in {value}.items():")
            self.primitive("string", key, depth + 2)
            self.node(schema["values"], item, depth + 2)
            return self.emit(depth, "out += b'\\x00'")
        if kind == "fixed":
            self.named[schema["name"]] = schema
            size = int(schema["size"])
            self.emit(depth, f"if len({value}) != {size}:")
            self.emit(depth + 1, "raise ValueError('fixed of the wrong size')")
            return self.emit(depth, f"out += {value}")
        raise Unsupported(str(kind))

    def primitive(self, kind: str, value: str, depth: int) -> None:
        if kind == "null":
            self.emit(depth, f"if {value} is not None:")
            self.emit(depth + 1, "raise TypeError('not null')")
        elif kind == "boolean":
            self.emit(depth, f"out += b'\\x01' if {value} else b'\\x00'")
        elif kind in ("int", "long"):
            self.emit(depth, f"out += long({value})")
        elif kind in ("float", "double"):
            self.emit(depth, f"out += {'FLOAT' if kind == 'float' else 'DOUBLE'}({value})")
        elif kind == "string":
            held = self.var()
            self.emit(depth, f"{held} = {value}.encode()")
            self.length(depth, held)
            self.emit(depth, f"out += {held}")
        else:  # bytes
            self.length(depth, value)
            self.emit(depth, f"out += {value}")

    def length(self, depth: int, value: str) -> None:
        """``len(value)`` as a long: a short one (the usual) from the table, inline."""
        n = self.var()
        self.emit(depth, f"{n} = len({value})")
        self.emit(depth, f"out += SHORT[{n} + {n}] if {n} < 8192 else long({n})")

    def logical(self, kind: str, logical: str, value: str, depth: int) -> None:
        if (kind, logical) == ("string", "uuid"):
            self.emit(depth, f"out += uuid_text({value})")
        elif (kind, logical) == ("long", "timestamp-micros"):
            self.emit(depth, f"out += long(micros({value}))")
        elif (kind, logical) == ("long", "timestamp-millis"):
            self.emit(depth, f"out += long(millis({value}))")
        else:
            raise Unsupported(f"{kind}/{logical}")

    def record(self, schema: dict[str, Any], value: str, depth: int) -> None:
        name = schema["name"]
        if name in self.expanding:
            raise Unsupported(f"{name} refers to itself")
        self.named[name] = schema
        self.expanding.add(name)
        for field in schema["fields"]:
            held = self.var()
            self.emit(depth, f"{held} = {value}[{field['name']!r}]")
            self.node(field["type"], held, depth)
        self.expanding.discard(name)

    def union(self, branches: list[Any], value: str, depth: int) -> None:
        kinds = [b if isinstance(b, str) else b.get("type") for b in branches]
        if len(branches) == 2 and kinds[0] == "null":
            self.emit(depth, f"if {value} is None:")
            self.emit(depth + 1, "out += b'\\x00'")
            self.emit(depth, "else:")
            self.emit(depth + 1, "out += b'\\x02'")
            return self.node(branches[1], value, depth + 1)
        names = [self.record_name(b) for b in branches]
        if None in names:
            raise Unsupported("a union other than [null, T] or of records")
        name, item = self.var(), self.var()
        self.emit(depth, f"{name}, {item} = {value}")  # (name, record): the branch named
        for i, full in enumerate(names):
            self.emit(depth, f"{'if' if i == 0 else 'elif'} {name} == {full!r}:")
            self.emit(depth + 1, f"out += {avro_long(i)!r}")
            self.node(branches[i], item, depth + 1)
        self.emit(depth, "else:")
        self.emit(depth + 1, f"raise ValueError('no branch %r' % ({name},))")

    def record_name(self, schema: Any) -> str | None:
        if isinstance(schema, dict) and schema.get("type") == "record":
            return str(schema["name"])
        if isinstance(schema, str) and self.named.get(schema, {}).get("type") == "record":
            return schema
        return None
