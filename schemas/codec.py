"""Avro single-object encoding of events.

A datum is ``C3 01`` + the writer schema's CRC-64-AVRO fingerprint (8 bytes, little-endian)
+ the Avro binary body, so every record names its own writer schema and no registry
service is needed. Decoding looks the writer schema up by fingerprint, resolves it to the
current version of the event, runs any upcasters, and validates the result against the
event's pydantic model; data the log holds (validated when produced) can be decoded as
trusted instead, which builds the model directly (``schemas.construct``).
"""

from __future__ import annotations

import io
import json
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.validation import ValidationError as AvroValidationError
from fastavro.validation import validate as avro_validate
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from schemas.avro_reader import Read, compile_reader
from schemas.avro_writer import Write, compile_writer
from schemas.construct import builder_for
from schemas.envelope import NAMESPACE
from schemas.errors import SchemaError
from schemas.events import EVENT_TYPES, Event
from schemas.fingerprint import header_for, split_header
from schemas.registry import SchemaRegistry, SchemaVersion
from schemas.types import AVRO_JSON, ID_PATTERN, ID_RULE, TEXT_PATTERN, TEXT_RULE, is_union, unwrap

__all__ = ["UPCASTERS", "Codec", "Upcaster", "json_field_text", "pydantic_error_field"]

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

UPCASTERS: dict[tuple[str, int], Upcaster] = {}
"""``(event name, N) -> f``: turns data written as version N into what version N+1 means.

The dict an upcaster gets is already in the current version's shape (Avro schema resolution
filled new fields with their defaults); the chain runs from the writer's version upwards.
"""

_Convert = Callable[[Any], Any]


def _identity(value: Any) -> Any:
    return value


class _ModelPlan:
    """Precomputed converters between one model class and fastavro's dict form.

    Only fields that need a conversion (JSON, nested records, unions) have one; the rest
    are copied as they are.
    """

    def __init__(self, cls: type[BaseModel]) -> None:
        self.cls = cls
        self.to_avro: list[tuple[str, _Convert]] = []
        self.from_avro: list[tuple[str, _Convert]] = []
        for name, info in cls.model_fields.items():
            enc, dec = _converters(info.annotation, list(info.metadata))
            if enc is not _identity:
                self.to_avro.append((name, enc))
            if dec is not _identity:
                self.from_avro.append((name, dec))

    def encode(self, model: BaseModel) -> dict[str, Any]:
        datum = dict(model.__dict__)
        for name, enc in self.to_avro:
            datum[name] = enc(datum[name])
        return datum

    def decode(self, datum: dict[str, Any]) -> dict[str, Any]:
        for name, dec in self.from_avro:
            if name in datum:
                datum[name] = dec(datum[name])
        return datum


_PLANS: dict[type[BaseModel], _ModelPlan] = {}


def _plan(cls: type[BaseModel]) -> _ModelPlan:
    plan = _PLANS.get(cls)
    if plan is None:
        plan = _PLANS[cls] = _ModelPlan(cls)
    return plan


def _converters(annotation: Any, metadata: list[Any]) -> tuple[_Convert, _Convert]:
    tp, meta = unwrap(annotation)
    meta = metadata + meta
    if AVRO_JSON in meta:
        return json_field_text, json.loads
    if is_union(tp):
        branches = [b for b in typing.get_args(tp) if b is not type(None)]
        models = [unwrap(b)[0] for b in branches]
        if len(models) > 1 and all(
            isinstance(m, type) and issubclass(m, BaseModel) for m in models
        ):
            return _union_encoder(), _union_decoder(models)
        enc, dec = _converters(branches[0], [])
        return _optional(enc), _optional(dec)
    origin = typing.get_origin(tp)
    if origin in (tuple, list, Sequence):
        enc, dec = _converters(typing.get_args(tp)[0], [])
        return (
            _identity if enc is _identity else (lambda v: [enc(x) for x in v]),
            _identity if dec is _identity else (lambda v: [dec(x) for x in v]),
        )
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        plan_cls = tp
        return (lambda v: _plan(plan_cls).encode(v)), (lambda v: _plan(plan_cls).decode(v))
    return _identity, _identity  # primitives, StrEnums (they are str), UUIDs, datetimes


_encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def json_field_text(value: Any) -> str:
    """A JSON field's text (compact, UTF-8), by orjson (compiled) where the two agree.

    orjson writes NaN and infinity as ``null`` where the standard library refuses them,
    so output holding ``null`` is made again the standard library's way, as is whatever
    orjson refuses (an integer beyond 64 bits, a key that is not a string...). Floats may
    be spelt differently (``1e16`` for ``1e+16``): the same value when read."""
    if not value and isinstance(value, dict):
        return "{}"
    try:
        text = orjson.dumps(value)
    except TypeError:
        return _encode_json(value)
    if b"null" in text:
        return _encode_json(value)
    return text.decode()


def _optional(conv: _Convert) -> _Convert:
    if conv is _identity:
        return conv
    return lambda v: None if v is None else conv(v)


def _union_encoder() -> _Convert:
    def enc(value: BaseModel) -> tuple[str, dict[str, Any]]:
        return f"{NAMESPACE}.{type(value).__name__}", _plan(type(value)).encode(value)

    return enc


def _union_decoder(models: list[type[BaseModel]]) -> _Convert:
    by_name = {f"{NAMESPACE}.{m.__name__}": m for m in models}

    plans: dict[str, _ModelPlan] = {}  # filled on first use (plans refer to each other)

    def dec(value: Any) -> Any:
        if isinstance(value, tuple):
            name, datum = value
            cls = by_name[name]
            plan = plans.get(name) or plans.setdefault(name, _plan(cls))
            return cls.model_validate(plan.decode(datum))
        return value

    return dec


_PATTERN_RULES = {ID_PATTERN: ID_RULE, TEXT_PATTERN: TEXT_RULE}


def pydantic_error_field(exc: PydanticValidationError) -> tuple[str, str]:
    """The first failing field's dotted path and a readable message."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    msg = err["msg"]
    if err["type"] == "string_pattern_mismatch":
        ctx = err.get("ctx") or {}
        msg = _PATTERN_RULES.get(str(ctx.get("pattern")), msg)
    return loc, msg


@dataclass(frozen=True, slots=True)
class _Writer:
    header: bytes
    schema: SchemaVersion
    plan: _ModelPlan
    fast: Write | None  # the compiled writer (None: fastavro)


@dataclass(frozen=True, slots=True)
class _Reader:
    writer: SchemaVersion
    cls: type[Event]
    reader_schema: Any | None  # None when the writer is the current version
    named_unions: bool  # the schema has unions of records (decoded with their names)
    upcasters: tuple[Upcaster, ...]
    plan: _ModelPlan
    fast: Read | None  # the compiled reader of the current schema (None: fastavro)
    build: Callable[[dict[str, Any]], Event] | None  # trusted data of the current schema


def _has_record_unions(schema: Any) -> bool:
    if isinstance(schema, list):
        records = [b for b in schema if isinstance(b, dict) and b.get("type") == "record"]
        return len(records) > 1 or any(_has_record_unions(b) for b in schema)
    if isinstance(schema, dict):
        return any(
            _has_record_unions(v)
            for k, v in schema.items()
            if k in ("type", "fields", "items", "values")
        ) or any(_has_record_unions(f["type"]) for f in schema.get("fields", ()))
    return False


class Codec:
    """Encodes events to single-object Avro and decodes them back."""

    def __init__(
        self,
        registry: SchemaRegistry | None = None,
        *,
        event_types: Mapping[str, type[Event]] = EVENT_TYPES,
        upcasters: Mapping[tuple[str, int], Upcaster] | None = None,
    ) -> None:
        self.registry = registry or SchemaRegistry()
        self.event_types = event_types
        self.upcasters = UPCASTERS if upcasters is None else upcasters
        self._writers: dict[type[Event], _Writer] = {}
        self._readers: dict[bytes, _Reader] = {}
        for name, cls in event_types.items():
            current = self.registry.current(name)
            fast = compile_writer(current.parsed)
            self._writers[cls] = _Writer(header_for(current.fingerprint), current, _plan(cls), fast)

    # ── encode ──────────────────────────────────────────────────────────────────────────

    def encode(self, event: Event) -> bytes:
        """Single-object encode ``event`` with its current schema."""
        writer = self._writers.get(type(event))
        if writer is None:
            raise SchemaError(f"{type(event).__name__}: not a known event type")
        datum = writer.plan.encode(event)
        if writer.fast is not None:
            try:
                return writer.header + writer.fast(datum)
            except Exception:  # not the expected shape: fastavro encodes it or names the field
                pass
        buf = io.BytesIO()
        buf.write(writer.header)
        try:
            schemaless_writer(buf, writer.schema.parsed, datum)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise self._encode_error(writer.schema.name, writer.schema, datum, exc) from exc
        return buf.getvalue()

    def encode_dict(self, name: str, datum: Mapping[str, Any]) -> bytes:
        """Single-object encode a raw dict in fastavro form (no model involved)."""
        schema = self.registry.current(name)
        buf = io.BytesIO()
        buf.write(header_for(schema.fingerprint))
        try:
            schemaless_writer(buf, schema.parsed, dict(datum), strict=True)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise self._encode_error(name, schema, datum, exc) from exc
        return buf.getvalue()

    @staticmethod
    def _encode_error(
        name: str, schema: SchemaVersion, datum: Mapping[str, Any], exc: Exception
    ) -> SchemaError:
        try:
            avro_validate(dict(datum), schema.parsed, raise_errors=True, strict=True)
        except AvroValidationError as verr:
            first = str(verr.errors[0]) if verr.errors else str(verr)
            field = first.split(" ", 1)[0].removeprefix(f"{NAMESPACE}.{name}.")
            return SchemaError(f"{name}.{field}: {first}", event=name, field=field)
        return SchemaError(f"{name}: cannot encode: {exc}", event=name)

    # ── decode ──────────────────────────────────────────────────────────────────────────

    def writer_of(self, data: bytes) -> SchemaVersion:
        """The writer schema a datum names, without decoding the body."""
        try:
            fingerprint, _ = split_header(data)
        except ValueError as exc:
            raise SchemaError(f"not an Avro single-object datum: {exc}") from exc
        writer = self.registry.by_fingerprint(fingerprint)
        if writer is None:
            fp = fingerprint.to_bytes(8, "little").hex()
            raise SchemaError(f"unknown schema fingerprint {fp}: not a released event schema")
        return writer

    def _reader(self, data: bytes) -> _Reader:
        header = bytes(data[:10])
        reader = self._readers.get(header)
        if reader is not None:
            return reader
        writer = self.writer_of(data)
        name = writer.name
        cls = self.event_types.get(name)
        if cls is None:
            raise SchemaError(f"{name}: no event model for this schema", event=name)
        current = self.registry.current(name)
        is_current = writer.fingerprint == current.fingerprint
        named_unions = _has_record_unions(writer.schema)
        reader = _Reader(
            writer=writer,
            cls=cls,
            reader_schema=None if is_current else current.parsed,
            named_unions=named_unions,
            upcasters=tuple(
                up
                for version in range(writer.version, current.version)
                if (up := self.upcasters.get((name, version))) is not None
            ),
            plan=_plan(cls),
            # older versions are resolved to the current schema by fastavro
            fast=(
                fast := compile_reader(writer.parsed, record_names=named_unions)
                if is_current
                else None
            ),
            build=builder_for(cls) if fast is not None else None,
        )
        self._readers[header] = reader
        return reader

    def decode(self, data: bytes, *, trusted: bool = False) -> Event:
        """Decode one single-object datum into its event model (validated).

        ``trusted``: the datum was validated when it was produced (every record on the
        log was), so the model is built without validating it again; the bytes are still
        checked against the schema. Data of an older schema version is validated anyway.
        """
        reader = self._reader(data)
        name = reader.writer.name
        if reader.fast is not None:
            try:
                datum, end = reader.fast(data, 10)
            except Exception as exc:  # corrupt input: IndexError, UnicodeDecodeError...
                raise self._decode_error(reader.writer, data, exc) from exc
            if end > len(data):
                raise self._decode_error(reader.writer, data, EOFError("truncated"))
        else:
            datum, end = self._read_with_fastavro(reader, data)
        if end != len(data):
            extra = len(data) - end
            raise SchemaError(f"{name}: {extra} unexpected trailing bytes", event=name)
        if not isinstance(datum, dict):
            raise SchemaError(
                f"{name}: decoded to {type(datum).__name__}, not a record", event=name
            )
        if trusted and reader.build is not None:
            try:
                return reader.build(datum)
            except (ValueError, TypeError, KeyError) as exc:  # a JSON field that is not JSON
                raise SchemaError(f"{name}: {exc}", event=name) from exc
        for upcaster in reader.upcasters:
            datum = upcaster(datum)
        try:
            return reader.cls.model_validate(reader.plan.decode(datum))
        except PydanticValidationError as exc:
            field, msg = pydantic_error_field(exc)
            raise SchemaError(f"{name}.{field}: {msg}", event=name, field=field) from exc
        except (ValueError, TypeError) as exc:  # e.g. a JSON field that is not JSON
            raise SchemaError(f"{name}: {exc}", event=name) from exc

    def _read_with_fastavro(self, reader: _Reader, data: bytes) -> tuple[Any, int]:
        """The datum, read (and resolved to the current schema) by fastavro; its end."""
        body = io.BytesIO(data)
        body.seek(10)
        try:
            if reader.named_unions:
                datum = schemaless_reader(
                    body,
                    reader.writer.parsed,
                    reader.reader_schema,
                    return_record_name=True,
                    return_record_name_override=True,
                )
            else:
                datum = schemaless_reader(body, reader.writer.parsed, reader.reader_schema)
        except Exception as exc:  # fastavro raises many types on corrupt input
            raise self._decode_error(reader.writer, data, exc) from exc
        return datum, body.tell()

    @staticmethod
    def _decode_error(writer: SchemaVersion, data: bytes, exc: Exception) -> SchemaError:
        """Find the field where decoding failed by reading the body field by field."""
        name = writer.name
        named: dict[str, Any] = {}
        parse_schema(writer.schema, named_schemas=named)
        body = io.BytesIO(memoryview(data)[10:])
        for field in writer.schema["fields"]:
            try:
                field_schema = parse_schema(field["type"], named_schemas=named)
                schemaless_reader(body, field_schema, None)
            except Exception as fexc:
                kind = "truncated" if isinstance(fexc, EOFError | StopIteration) else "invalid"
                return SchemaError(
                    f"{name}.{field['name']}: {kind} data ({type(fexc).__name__}: {fexc})",
                    event=name,
                    field=field["name"],
                )
        return SchemaError(f"{name}: cannot decode: {exc}", event=name)
