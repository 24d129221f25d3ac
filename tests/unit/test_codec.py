"""Single-object encoding: round trips, headers, and errors that name event and field."""

from __future__ import annotations

import io
import json
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum, IntEnum
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint as fastavro_fingerprint
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codec import Codec
from schemas.errors import SchemaError
from schemas.events import AgentRegistered, Event, MetricKind, MetricRecorded
from schemas.fingerprint import crc64_avro, header_for
from schemas.registry import SchemaRegistry, default_schema_dir
from tests.support.strategies import events

CODEC = Codec()


def read_body(data: bytes, schema: Any) -> dict[str, Any]:
    """fastavro's reading of a datum's body (the reference implementation)."""
    body = io.BytesIO(data[10:])
    datum = schemaless_reader(body, schema, None)
    assert isinstance(datum, dict) and body.tell() == len(data) - 10
    return datum


def agent(**kw: Any) -> AgentRegistered:
    base: dict[str, Any] = {"tenant_id": "t1", "actor": "tester", "agent_id": "agent-1"}
    return AgentRegistered(**(base | kw))


@settings(max_examples=300, deadline=None)
@given(events())
def test_every_event_round_trips(event: Event) -> None:
    data = CODEC.encode(event)
    assert CODEC.decode(data) == event


@settings(max_examples=100, deadline=None)
@given(events())
def test_body_is_plain_avro_for_the_avsc(event: Event) -> None:
    """Any Avro implementation reading the .avsc gets the body back (fastavro as reference)."""
    data = CODEC.encode(event)
    name = type(event).__name__
    schema = parse_schema(json.loads((default_schema_dir() / f"{name}.avsc").read_text()))
    datum = read_body(data, schema)
    assert datum["event_id"] == event.event_id
    assert datum["tenant_id"] == event.tenant_id


def test_header_is_c301_and_the_crc64_fingerprint_little_endian() -> None:
    data = CODEC.encode(agent())
    sv = CODEC.registry.current("AgentRegistered")
    assert data[:2] == b"\xc3\x01"
    assert data[:10] == header_for(sv.fingerprint)
    # fastavro's independent CRC-64-AVRO prints the little-endian bytes
    assert data[2:10].hex() == fastavro_fingerprint(sv.canonical, "CRC-64-AVRO")


def test_crc64_of_empty_input_is_the_empty_constant() -> None:
    assert crc64_avro(b"") == 0xC15D213AA4D7A795


def test_unknown_fingerprint() -> None:
    data = bytearray(CODEC.encode(agent()))
    data[2:10] = b"\x01" * 8
    with pytest.raises(SchemaError, match="unknown schema fingerprint 0101010101010101"):
        CODEC.decode(bytes(data))


def test_bad_magic_and_short_input() -> None:
    with pytest.raises(SchemaError, match="bad magic"):
        CODEC.decode(b"\x00\x01" + b"\x00" * 20)
    with pytest.raises(SchemaError, match="shorter than the 10-byte"):
        CODEC.decode(b"\xc3\x01\x00")


def test_truncation_names_event_and_field() -> None:
    event = agent(description="a description", tags=["x", "y"])
    data = CODEC.encode(event)
    seen_fields = set()
    for cut in range(11, len(data)):
        with pytest.raises(SchemaError) as err:
            CODEC.decode(data[:cut])
        assert err.value.event == "AgentRegistered"
        assert err.value.field is not None
        assert str(err.value).startswith(f"AgentRegistered.{err.value.field}: ")
        seen_fields.add(err.value.field)
    assert {"event_id", "tenant_id", "agent_id", "description", "tags", "metadata"} <= seen_fields


def test_trailing_bytes_are_rejected() -> None:
    with pytest.raises(SchemaError, match="trailing bytes"):
        CODEC.decode(CODEC.encode(agent()) + b"\x00")


def test_wrong_type_on_encode_names_event_and_field() -> None:
    datum = read_body(CODEC.encode(agent()), CODEC.registry.current("AgentRegistered").parsed)
    datum["tags"] = "not-a-list"
    datum["description"] = 42
    with pytest.raises(SchemaError) as err:
        CODEC.encode_dict("AgentRegistered", datum)
    assert err.value.event == "AgentRegistered"
    assert err.value.field in {"description", "tags"}
    assert f"AgentRegistered.{err.value.field}" in str(err.value)


def test_wrong_value_on_decode_names_event_and_field() -> None:
    """Bytes from a foreign producer that break a model constraint are a SchemaError."""
    sv = CODEC.registry.current("MetricRecorded")
    good = MetricRecorded(
        tenant_id="t",
        actor="a",
        run_id="r",
        agent_id="a",
        name="m",
        value=1.0,
        kind=MetricKind.GAUGE,
    )
    datum = read_body(CODEC.encode(good), sv.parsed)
    datum["value"] = float("nan")
    datum["agent_id"] = ""
    buf = io.BytesIO()
    buf.write(header_for(sv.fingerprint))
    schemaless_writer(buf, sv.parsed, datum)
    with pytest.raises(SchemaError) as err:
        CODEC.decode(buf.getvalue())
    assert err.value.event == "MetricRecorded"
    assert err.value.field in {"agent_id", "value"}


def _registry_with_old_version(tmp_path: Path) -> SchemaRegistry:
    """A schema dir where AgentRegistered v1 had no ``metadata`` and ``tags`` field."""
    directory = tmp_path / "avro"
    shutil.copytree(default_schema_dir(), directory)
    v1 = json.loads((directory / "AgentRegistered.avsc").read_text())
    v1["fields"] = [f for f in v1["fields"] if f["name"] not in ("metadata", "tags")]
    (directory / "history").mkdir(exist_ok=True)
    (directory / "history" / "AgentRegistered.v1.avsc").write_text(json.dumps(v1))
    return SchemaRegistry(directory)


OLD_ENVELOPE = {
    "event_id": "0190b2a0-0000-7000-8000-000000000001",
    "occurred_at": 1_700_000_000_000_000,
    "tenant_id": "t1",
    "actor": "old-producer",
    "correlation_id": None,
}


def _encode_old(registry: SchemaRegistry, name: str, fields: dict[str, Any]) -> bytes:
    """An event as version 1 of its schema wrote it."""
    v1 = registry.history(name)[0]
    buf = io.BytesIO()
    buf.write(header_for(v1.fingerprint))
    schemaless_writer(buf, v1.parsed, OLD_ENVELOPE | fields)
    return buf.getvalue()


def _encode_v1(registry: SchemaRegistry) -> bytes:
    fields = {"agent_id": "legacy", "description": "from v1"}
    return _encode_old(registry, "AgentRegistered", fields)


def test_old_writer_version_resolves_to_current(tmp_path: Path) -> None:
    registry = _registry_with_old_version(tmp_path)
    event = Codec(registry).decode(_encode_v1(registry))
    assert isinstance(event, AgentRegistered)
    assert (event.agent_id, event.description, event.tags, event.metadata) == (
        "legacy",
        "from v1",
        (),
        {},
    )


def test_upcaster_runs_for_old_versions_only(tmp_path: Path) -> None:
    registry = _registry_with_old_version(tmp_path)

    def v1_to_v2(datum: dict[str, Any]) -> dict[str, Any]:
        return datum | {"tags": ["legacy"], "metadata": json.dumps({"upcast_from": 1})}

    codec = Codec(registry, upcasters={("AgentRegistered", 1): v1_to_v2})
    old = codec.decode(_encode_v1(registry))
    assert old.tags == ("legacy",) and old.metadata == {"upcast_from": 1}  # type: ignore[attr-defined]
    new = codec.decode(codec.encode(agent()))
    assert new.tags == ()  # type: ignore[attr-defined]


def test_a_released_v1_redaction_reads_as_one_with_no_parts_replacement() -> None:
    """MessageRedacted v2 added ``replacement_parts``: redactions already on the log (v1)
    decode with it empty, and v1's text replacement kept, trusted or not."""
    from schemas.events import MessageRedacted, TextPart

    registry = SchemaRegistry()
    fields = {
        "root_thread_id": "t",
        "thread_id": "t",
        "message_id": "0190b2a0-0000-7000-8000-000000000003",
        "reason": "pii",
        "replacement": [{"text": "[redacted]"}],
    }
    data = _encode_old(registry, "MessageRedacted", fields)
    for trusted in (False, True):
        event = Codec(registry).decode(data, trusted=trusted)
        assert isinstance(event, MessageRedacted)
        assert event.replacement == (TextPart(text="[redacted]"),)
        assert event.replacement_parts == ()


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(value=_json_values)
def test_json_fields_read_back_as_the_standard_library_writes_them(value: Any) -> None:
    """A JSON field's text (orjson where the two agree) reads back as the value the
    standard library's text reads back as, whatever the value."""
    from schemas.codec import _encode_json, json_field_text

    text = json_field_text(value)
    assert json.loads(text) == json.loads(_encode_json(value))


@pytest.mark.parametrize(
    "value",
    [{"n": float("nan")}, [float("inf")], {"big": 2**70}, {1: "int key"}, {"s": "\ud800"}],
)
def test_json_fields_orjson_does_not_write_are_the_standard_librarys(value: Any) -> None:
    from schemas.codec import _encode_json, json_field_text

    try:
        expected: Any = _encode_json(value)
    except ValueError as exc:
        expected = type(exc)
    try:
        got: Any = json_field_text(value)
    except ValueError as exc:
        got = type(exc)
    assert got == expected


class _Colour(Enum):
    RED = "red"


class _Level(IntEnum):
    HIGH = 2


class _Name(str):
    pass


@dataclass
class _Point:
    x: int


_not_only_json = st.recursive(
    _json_values
    | st.sampled_from(
        [
            float("nan"),
            float("-inf"),
            uuid.UUID(int=7),
            _Colour.RED,
            _Level.HIGH,
            _Name("n"),
            datetime(2026, 1, 1, tzinfo=UTC),
            _Point(1),
            b"bytes",
            {1, 2},
            (1, "two"),
        ]
    ),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.text() | st.integers() | st.builds(_Name, st.text()), inner, max_size=3
        )
        | st.tuples(inner, inner)
    ),
    max_leaves=8,
)


@settings(max_examples=600, deadline=None)
@given(value=_not_only_json)
def test_a_json_field_accepts_what_the_standard_library_writes(value: Any) -> None:
    """The check of a ``Json`` field (orjson first, where its answer is certain) accepts
    exactly the values the standard library's strict encoder writes, and refuses the rest
    with the standard library's reason."""
    from pydantic import TypeAdapter, ValidationError

    from schemas.types import Json

    try:
        json.JSONEncoder(allow_nan=False).encode(value)
        expected = True
    except (TypeError, ValueError):
        expected = False
    try:
        TypeAdapter(Json).validate_python(value)
        accepted = True
    except ValidationError as exc:
        assert "must be JSON" in str(exc)
        accepted = False
    assert accepted == expected
