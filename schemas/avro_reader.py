"""A reader compiled from one writer schema: Avro bytes to the values fastavro gives.

``compile_reader(parsed, record_names=...)`` walks a parsed schema once and writes
``read(data, pos) -> (value, end)``: one generated Python function that reads the fields
in order, with no call per field and none of fastavro's per-call set-up. The values are exactly what
``fastavro.schemaless_reader`` returns for the same bytes (with ``return_record_name``
and ``return_record_name_override`` when ``record_names``), which a property test holds
it to; schemas with a type or logical type it does not know compile to ``None``, and the
caller keeps fastavro. It does not check lengths as it reads: a truncated datum shows as
``end > len(data)`` (or an ``IndexError``), and the caller reports it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.avro_bytes import read_long
from schemas.codegen import FunctionWriter, Unsupported
from schemas.ids import uuid_of_text

__all__ = ["Read", "compile_reader"]

Read = Callable[[bytes, int], tuple[Any, int]]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FLOAT = struct.Struct("<f").unpack_from
_DOUBLE = struct.Struct("<d").unpack_from
_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
_AVRO_TYPES = _PRIMITIVES | {"fixed", "enum", "record", "error", "array", "map", "union"}
_AVRO_TYPES |= {"request", "error_union"}  # fastavro's AVRO_TYPES


def compile_reader(parsed: Any, *, record_names: bool = False) -> Read | None:
    """The reader of ``parsed`` (a fastavro-parsed schema), or ``None`` if it has a type
    this module does not read."""
    try:
        return _Generator(record_names).function(parsed)
    except Unsupported:
        return None


class _Generator(FunctionWriter):
    """Writes one Python function that reads a datum of the schema, field after field.

    Every value lands in a local variable (``v1``, ``v2``...); a varint of one byte (the
    usual length of a string or an index) is read inline, longer ones by ``read_long``.
    """

    def __init__(self, record_names: bool) -> None:
        super().__init__()
        self.record_names = record_names

    def function(self, schema: Any) -> Read:
        self.lines = ["def read(data, pos):"]
        result = self.node(schema, 1)
        self.emit(1, f"return {result}, pos")
        helpers: dict[str, Any] = {
            "read_long": read_long,
            "uuid_of_text": uuid_of_text,
            "EPOCH": EPOCH,
            "timedelta": timedelta,
            "FLOAT": _FLOAT,
            "DOUBLE": _DOUBLE,
        }
        read: Read = self.build("read", helpers, "<avro reader>")
        return read

    def long(self, depth: int) -> str:
        v = self.var()
        self.emit(depth, f"{v} = data[pos]")
        self.emit(depth, "pos += 1")
        self.emit(depth, f"if {v} < 128:")
        self.emit(depth + 1, f"{v} = ({v} >> 1) ^ -({v} & 1)")
        self.emit(depth, "else:")
        self.emit(depth + 1, f"{v}, pos = read_long(data, pos - 1)")
        return v

    def sized(self, depth: int) -> str:
        """The bytes of a string or bytes value (its length first), as an expression."""
        size = self.long(depth)
        v = self.var()
        self.emit(depth, f"if {size} < 0:")
        self.emit(depth + 1, f"raise ValueError('negative length %d' % {size})")
        self.emit(depth, f"{v} = data[pos:pos + {size}]")
        self.emit(depth, f"pos += {size}")
        return v

    def node(self, schema: Any, depth: int) -> str:
        if isinstance(schema, str):
            if schema in _PRIMITIVES:
                return self.primitive(schema, depth)
            if schema not in self.named:
                raise Unsupported(schema)
            return self.node(self.named[schema], depth)  # a named type, again in full
        if isinstance(schema, list):
            return self.union(schema, depth)
        kind = schema["type"]
        logical = schema.get("logicalType")
        if logical is not None:
            return self.logical(kind, logical, depth)
        if kind in _PRIMITIVES:
            return self.primitive(kind, depth)
        if kind == "record":
            return self.record(schema, depth)
        if kind == "enum":
            self.named[schema["name"]] = schema
            index = self.long(depth)
            symbols = self.constant(tuple(schema["symbols"]))
            self.emit(depth, f"if {index} < 0:")
            self.emit(depth + 1, f"raise IndexError('enum index %d' % {index})")
            return f"{symbols}[{index}]"
        if kind in ("array", "map"):
            return self.repeated(schema, kind, depth)
        if kind == "fixed":
            self.named[schema["name"]] = schema
            v = self.var()
            self.emit(depth, f"{v} = data[pos:pos + {int(schema['size'])}]")
            self.emit(depth, f"pos += {int(schema['size'])}")
            return v
        raise Unsupported(str(kind))

    def primitive(self, kind: str, depth: int) -> str:
        if kind == "null":
            return "None"
        if kind in ("int", "long"):
            return self.long(depth)
        if kind == "string":
            return f"{self.sized(depth)}.decode()"
        if kind == "bytes":
            return self.sized(depth)
        v = self.var()
        if kind == "boolean":
            self.emit(depth, f"{v} = data[pos] != 0")
            self.emit(depth, "pos += 1")
        else:
            width, unpack = (4, "FLOAT") if kind == "float" else (8, "DOUBLE")
            self.emit(depth, f"{v} = {unpack}(data, pos)[0]")
            self.emit(depth, f"pos += {width}")
        return v

    def logical(self, kind: str, logical: str, depth: int) -> str:
        if (kind, logical) == ("string", "uuid"):
            return f"uuid_of_text({self.sized(depth)}.decode())"
        if (kind, logical) == ("long", "timestamp-micros"):
            return f"EPOCH + timedelta(microseconds={self.long(depth)})"
        if (kind, logical) == ("long", "timestamp-millis"):
            return f"EPOCH + timedelta(microseconds={self.long(depth)} * 1000)"
        raise Unsupported(f"{kind}/{logical}")

    def record(self, schema: dict[str, Any], depth: int) -> str:
        name = schema["name"]
        if name in self.expanding:
            raise Unsupported(f"{name} refers to itself")
        self.named[name] = schema
        self.expanding.add(name)
        values = []
        for field in schema["fields"]:
            value = self.node(field["type"], depth)
            held = self.var()  # each field's value in its own variable, in field order
            self.emit(depth, f"{held} = {value}")
            values.append(f"{field['name']!r}: {held}")
        self.expanding.discard(name)
        v = self.var()
        self.emit(depth, f"{v} = {{{', '.join(values)}}}")
        return v

    def repeated(self, schema: dict[str, Any], kind: str, depth: int) -> str:
        v, count = self.var(), self.var()
        self.emit(depth, f"{v} = {'[]' if kind == 'array' else '{}'}")
        self.emit(depth, f"{count}, pos = read_long(data, pos)")
        self.emit(depth, f"while {count}:")
        self.emit(depth + 1, f"if {count} < 0:  # a block with its size in bytes")
        self.emit(depth + 2, f"{count} = -{count}")
        self.emit(depth + 2, "_, pos = read_long(data, pos)")
        self.emit(depth + 1, f"for _ in range({count}):")
        if kind == "array":
            item = self.node(schema["items"], depth + 2)
            self.emit(depth + 2, f"{v}.append({item})")
        else:
            key = self.primitive("string", depth + 2)
            held = self.var()
            self.emit(depth + 2, f"{held} = {key}")
            value = self.node(schema["values"], depth + 2)
            self.emit(depth + 2, f"{v}[{held}] = {value}")
        self.emit(depth + 1, f"{count}, pos = read_long(data, pos)")
        return v

    def union(self, branches: list[Any], depth: int) -> str:
        # as fastavro counts them: inline records, and any reference to a named type
        recordish = [_type_of(b) == "record" or _type_of(b) not in _AVRO_TYPES for b in branches]
        single = sum(recordish) == 1
        index, v = self.long(depth), self.var()
        for i, branch in enumerate(branches):
            self.emit(depth, f"{'if' if i == 0 else 'elif'} {index} == {i}:")
            value = self.node(branch, depth + 1)
            if self.record_names and recordish[i] and not single:
                value = f"({_name_of(branch)!r}, {value})"
            self.emit(depth + 1, f"{v} = {value}")
        self.emit(depth, "else:")
        self.emit(depth + 1, f"raise IndexError('union index %d' % {index})")
        return v


def _type_of(schema: Any) -> str:
    if isinstance(schema, dict):
        return str(schema["type"])
    return "union" if isinstance(schema, list) else str(schema)


def _name_of(schema: Any) -> str:
    return str(schema["name"]) if isinstance(schema, dict) else str(schema)
