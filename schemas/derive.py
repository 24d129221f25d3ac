"""Derive an Avro schema from an event model, to prove models and ``.avsc`` files agree.

``drift(cls, schema)`` lists every difference between what the model says and what the
``.avsc`` file says: field names and order, types (with logical types), nullability,
nested records, enums and defaults. Docs are ignored.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import Any
from uuid import UUID

from fastavro import parse_schema
from fastavro.schema import to_parsing_canonical_form
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from schemas.envelope import NAMESPACE
from schemas.types import AVRO_INT, AVRO_JSON, is_union, unwrap

__all__ = ["avro_schema_of", "drift"]

_PRIMITIVES: dict[Any, Any] = {
    str: "string",
    bytes: "bytes",
    bool: "boolean",
    float: "double",
    UUID: {"type": "string", "logicalType": "uuid"},
    datetime: {"type": "long", "logicalType": "timestamp-micros"},
}


def _avro_type(annotation: Any, metadata: list[Any], defined: set[str]) -> Any:
    tp, meta = unwrap(annotation)
    meta = metadata + meta
    if AVRO_JSON in meta:
        return "string"
    if is_union(tp):
        args = typing.get_args(tp)
        branches = [_avro_type(a, [], defined) for a in args if a is not type(None)]
        return ["null", *branches] if type(None) in args else branches
    origin = typing.get_origin(tp)
    if origin in (tuple, list, Sequence):
        return {"type": "array", "items": _avro_type(typing.get_args(tp)[0], [], defined)}
    if origin in (dict, Mapping):
        return {"type": "map", "values": _avro_type(typing.get_args(tp)[1], [], defined)}
    if tp is int:
        return "int" if AVRO_INT in meta else "long"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return _record(tp, defined)
    if isinstance(tp, type) and issubclass(tp, Enum):
        if tp.__name__ in defined:
            return f"{NAMESPACE}.{tp.__name__}"
        defined.add(tp.__name__)
        return {"type": "enum", "name": tp.__name__, "symbols": [m.value for m in tp]}
    try:
        return _PRIMITIVES[tp]
    except KeyError:
        raise TypeError(f"no Avro type for {tp!r}") from None


def _default(info: FieldInfo, json_field: bool) -> tuple[bool, Any]:
    if info.default is not PydanticUndefined:
        value = info.default
    elif info.default_factory in (dict, list, tuple):
        value = info.default_factory()
    else:
        return False, None
    if json_field:
        return True, json.dumps(value)
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, Enum):
        value = value.value
    return True, value


def _record(cls: type[BaseModel], defined: set[str]) -> Any:
    if cls.__name__ in defined:
        return f"{NAMESPACE}.{cls.__name__}"
    defined.add(cls.__name__)
    fields = []
    for name, info in cls.model_fields.items():
        metadata = list(info.metadata)
        field: dict[str, Any] = {
            "name": name,
            "type": _avro_type(info.annotation, metadata, defined),
        }
        json_field = AVRO_JSON in metadata + unwrap(info.annotation)[1]
        has_default, value = _default(info, json_field)
        if has_default:
            field["default"] = value
        fields.append(field)
    return {"type": "record", "name": cls.__name__, "fields": fields}


def avro_schema_of(cls: type[BaseModel]) -> dict[str, Any]:
    """The Avro record schema the model describes."""
    schema = _record(cls, set())
    schema["namespace"] = NAMESPACE
    return dict(schema)


def _defaults(schema: Any, path: str, out: dict[str, Any]) -> None:
    if isinstance(schema, list):
        for branch in schema:
            _defaults(branch, path, out)
    elif isinstance(schema, dict):
        for field in schema.get("fields", ()):
            where = f"{path}.{field['name']}" if path else field["name"]
            if "default" in field:
                out[where] = field["default"]
            _defaults(field["type"], where, out)
        for key in ("items", "values"):
            if key in schema:
                _defaults(schema[key], path, out)
        if isinstance(schema.get("type"), dict | list):
            _defaults(schema["type"], path, out)


def drift(cls: type[BaseModel], schema: dict[str, Any]) -> list[str]:
    """Differences between the model ``cls`` and the Avro ``schema`` (empty: they agree)."""
    derived = avro_schema_of(cls)
    problems = []
    ours = to_parsing_canonical_form(parse_schema(derived, _write_hint=False))
    theirs = to_parsing_canonical_form(parse_schema(schema, _write_hint=False))
    if ours != theirs:
        problems.append(f"{cls.__name__}: model says {ours}\n  .avsc says {theirs}")
    d_ours: dict[str, Any] = {}
    d_theirs: dict[str, Any] = {}
    _defaults(derived, "", d_ours)
    _defaults(schema, "", d_theirs)
    for key in sorted(set(d_ours) | set(d_theirs)):
        if d_ours.get(key, "<none>") != d_theirs.get(key, "<none>"):
            problems.append(
                f"{cls.__name__}.{key}: default is {d_ours.get(key, '<none>')!r} in the model "
                f"but {d_theirs.get(key, '<none>')!r} in the .avsc"
            )
    return problems
