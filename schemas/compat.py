"""Avro schema compatibility checks.

``check(new, olds, mode)`` reports why data written with one schema could not be read
with another. Modes follow the usual registry vocabulary:

- ``backward``: the new schema can read data written with every old one;
- ``forward``: every old schema can read data written with the new one;
- ``full`` (the default for our event contracts): both, against every old version.

So under ``full`` a field may only be added or removed when it has a default, an enum may
not lose symbols, and a field's type may only change by an Avro promotion both ways
(which in practice means not at all).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

__all__ = ["Mode", "can_read", "check"]

Mode = Literal["backward", "forward", "full"]

_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
_PROMOTIONS = {
    ("int", "long"),
    ("int", "float"),
    ("int", "double"),
    ("long", "float"),
    ("long", "double"),
    ("float", "double"),
    ("string", "bytes"),
    ("bytes", "string"),
}

Schema = Any  # a JSON Avro schema: str, dict or list


def _collect(schema: Schema, namespace: str, names: dict[str, Schema]) -> None:
    """Record every named type in ``schema`` under its full name and its short name."""
    if isinstance(schema, list):
        for branch in schema:
            _collect(branch, namespace, names)
        return
    if not isinstance(schema, dict):
        return
    kind = schema.get("type")
    if kind in ("record", "error", "enum", "fixed"):
        ns = schema.get("namespace", namespace)
        name = schema["name"]
        full = name if "." in name else f"{ns}.{name}" if ns else name
        names[full] = schema
        names.setdefault(full.rsplit(".", 1)[-1], schema)
        for field in schema.get("fields", ()):
            _collect(field["type"], full.rsplit(".", 1)[0] if "." in full else ns, names)
    elif kind == "array":
        _collect(schema["items"], namespace, names)
    elif kind == "map":
        _collect(schema["values"], namespace, names)
    elif isinstance(kind, dict | list):
        _collect(kind, namespace, names)


def _resolve(schema: Schema, names: Mapping[str, Schema]) -> Schema:
    if isinstance(schema, str) and schema not in _PRIMITIVES:
        return names.get(schema, names.get(schema.rsplit(".", 1)[-1], schema))
    if isinstance(schema, dict) and isinstance(schema.get("type"), dict | list):
        return _resolve(schema["type"], names)
    if isinstance(schema, dict) and schema.get("type") in _PRIMITIVES:
        logical = schema.get("logicalType")
        return schema if logical else schema["type"]
    return schema


def _kind(schema: Schema) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, str):
        return schema
    kind = schema["type"]
    return str(kind)


def _describe(schema: Schema) -> str:
    if isinstance(schema, dict):
        if schema.get("logicalType"):
            return f"{schema['type']}/{schema['logicalType']}"
        if "name" in schema:
            return f"{schema['type']} {schema['name']}"
        return str(schema["type"])
    if isinstance(schema, list):
        return "union"
    return str(schema)


def can_read(
    reader: Schema,
    writer: Schema,
    path: str = "",
    reader_names: dict[str, Schema] | None = None,
    writer_names: dict[str, Schema] | None = None,
    absent: str = "field is absent from the writer's schema and has no default",
) -> list[str]:
    """Problems that stop ``reader`` from reading data written with ``writer`` (empty: ok).

    ``absent`` is the message for a reader field the writer lacks that has no default.
    """
    if reader_names is None:
        reader_names = {}
        _collect(reader, "", reader_names)
    if writer_names is None:
        writer_names = {}
        _collect(writer, "", writer_names)
    r = _resolve(reader, reader_names)
    w = _resolve(writer, writer_names)
    here = path or "<root>"

    if _kind(w) == "union":
        problems: list[str] = []
        for branch in w:
            problems += can_read(r, branch, path, reader_names, writer_names, absent)
        return problems
    if _kind(r) == "union":
        closest: list[str] | None = None
        for branch in r:
            found = can_read(branch, w, path, reader_names, writer_names, absent)
            if not found:
                return []
            if _same_named_type(_resolve(branch, reader_names), w):
                closest = found
        if closest is not None:  # the same record or enum, changed: say how
            return closest
        return [f"{here}: written as {_describe(w)}, which no branch of the reader's union reads"]

    rk, wk = _kind(r), _kind(w)
    r_logical = r.get("logicalType") if isinstance(r, dict) else None
    w_logical = w.get("logicalType") if isinstance(w, dict) else None
    if rk in _PRIMITIVES or wk in _PRIMITIVES:
        if r_logical != w_logical:
            return [f"{here}: type changed from {_describe(w)} to {_describe(r)}"]
        if rk == wk or (wk, rk) in _PROMOTIONS:
            return []
        return [f"{here}: type changed from {_describe(w)} to {_describe(r)}"]
    if rk != wk:
        return [f"{here}: type changed from {_describe(w)} to {_describe(r)}"]
    if rk in ("record", "error"):
        return _records(r, w, path, reader_names, writer_names, absent)
    if rk == "enum":
        missing = [s for s in w["symbols"] if s not in r["symbols"]]
        if missing and "default" not in r:
            return [f"{here}: enum symbols {missing} removed (and the enum has no default)"]
        return []
    if rk == "array":
        return can_read(r["items"], w["items"], f"{path}[]", reader_names, writer_names, absent)
    if rk == "map":
        return can_read(r["values"], w["values"], f"{path}{{}}", reader_names, writer_names, absent)
    if rk == "fixed":
        if r.get("size") != w.get("size"):
            return [f"{here}: fixed size changed from {w.get('size')} to {r.get('size')}"]
        return []
    return [f"{here}: unsupported schema kind {rk!r}"]


def _same_named_type(a: Schema, b: Schema) -> bool:
    return (
        isinstance(a, dict)
        and isinstance(b, dict)
        and "name" in a
        and a.get("type") == b.get("type")
        and _short(a["name"]) == _short(b.get("name", ""))
    )


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _records(
    r: dict[str, Any],
    w: dict[str, Any],
    path: str,
    reader_names: dict[str, Schema],
    writer_names: dict[str, Schema],
    absent: str,
) -> list[str]:
    if _short(r["name"]) != _short(w["name"]) and _short(w["name"]) not in map(
        _short, r.get("aliases", ())
    ):
        return [f"{path or '<root>'}: record renamed from {w['name']} to {r['name']}"]
    problems: list[str] = []
    w_fields = {f["name"]: f for f in w["fields"]}
    for field in r["fields"]:
        name = field["name"]
        where = f"{path}.{name}" if path else name
        source = w_fields.get(name)
        if source is None:
            for alias in field.get("aliases", ()):
                source = w_fields.get(alias)
                if source is not None:
                    break
        if source is None:
            if "default" not in field:
                problems.append(f"{where}: {absent}")
            continue
        problems += can_read(
            field["type"], source["type"], where, reader_names, writer_names, absent
        )
    return problems


_ADDED = "field added without a default"
_REMOVED = "field removed although it has no default"


def check(new: Schema, olds: Iterable[Schema], mode: Mode = "full") -> list[str]:
    """Every compatibility problem of ``new`` against each schema in ``olds`` under ``mode``."""
    problems: list[str] = []
    for version, old in enumerate(olds, start=1):
        if mode in ("backward", "full"):
            found = can_read(new, old, absent=_ADDED)
            problems += [f"new schema cannot read v{version} data: {p}" for p in found]
        if mode in ("forward", "full"):
            found = can_read(old, new, absent=_REMOVED)
            problems += [f"v{version} readers cannot read new data: {p}" for p in found]
    return problems
