"""The compiled reader (``schemas.avro_reader``) gives exactly the values fastavro gives
for the same bytes, for every event type, and corrupt bytes are still errors that name
the event and field."""

from __future__ import annotations

import io
from typing import Any

import pytest
from fastavro import schemaless_reader, schemaless_writer
from hypothesis import given, settings

from schemas.avro_reader import compile_reader
from schemas.codec import Codec
from schemas.errors import SchemaError
from schemas.events import EVENT_TYPES, Event
from tests.support.strategies import events

CODEC = Codec()


def fastavro_read(schema: Any, body: bytes, *, names: bool) -> Any:
    if names:
        return schemaless_reader(
            io.BytesIO(body),
            schema,
            None,
            return_record_name=True,
            return_record_name_override=True,
        )
    return schemaless_reader(io.BytesIO(body), schema, None)


@settings(max_examples=400, deadline=None)
@given(events())
def test_every_event_reads_as_fastavro_reads_it(event: Event) -> None:
    data = CODEC.encode(event)
    parsed = CODEC.registry.current(type(event).__name__).parsed
    for names in (False, True):
        read = compile_reader(parsed, record_names=names)
        assert read is not None
        value, end = read(data, 10)
        assert end == len(data)
        assert value == fastavro_read(parsed, data[10:], names=names)


@pytest.mark.parametrize("name", sorted(EVENT_TYPES))
def test_every_current_schema_compiles(name: str) -> None:
    assert compile_reader(CODEC.registry.current(name).parsed, record_names=True) is not None


SCHEMA: Any = {
    "type": "record",
    "name": "All",
    "fields": [
        {"name": "b", "type": "boolean"},
        {"name": "f", "type": "float"},
        {"name": "d", "type": "double"},
        {"name": "raw", "type": "bytes"},
        {"name": "fx", "type": {"type": "fixed", "name": "Four", "size": 4}},
        {"name": "m", "type": {"type": "map", "values": ["null", "long"]}},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
        {"name": "again", "type": ["null", "E", "Four"]},
        {"name": "big", "type": {"type": "array", "items": "long"}},
    ],
}


def test_other_types_and_blocked_arrays() -> None:
    from fastavro import parse_schema

    parsed = parse_schema(SCHEMA)
    datum = {
        "b": True,
        "f": 1.5,
        "d": -2.25,
        "raw": b"\x00\xff",
        "fx": b"abcd",
        "m": {"x": 1, "y": None},
        "e": "B",
        "again": "A",
        "big": list(range(-70, 70)),
    }
    out = io.BytesIO()
    schemaless_writer(out, parsed, datum)
    read = compile_reader(parsed, record_names=False)
    assert read is not None
    assert read(out.getvalue(), 0) == (
        fastavro_read(parsed, out.getvalue(), names=False),
        len(out.getvalue()),
    )
    # a block written with its byte size (negative count), as other writers may
    blocked = b"\x05" + b"\x06" + b"\x02\x04\x06" + b"\x00"  # [1, 2, 3]: count -3, 3 bytes
    array = compile_reader({"type": "array", "items": "long"})
    assert array is not None and array(blocked, 0) == ([1, 2, 3], len(blocked))


def test_unknown_logical_types_are_left_to_fastavro() -> None:
    schema = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "d", "type": {"type": "int", "logicalType": "date"}}],
    }
    assert compile_reader(schema) is None


def test_corrupt_bytes_are_schema_errors_naming_the_field() -> None:
    from tests.unit.test_codec import agent

    data = CODEC.encode(agent(description="a description"))
    for cut in range(11, len(data)):
        with pytest.raises(SchemaError) as err:
            CODEC.decode(data[:cut])
        assert err.value.event == "AgentRegistered" and err.value.field is not None
    bad_union = bytearray(data)
    with pytest.raises(SchemaError):
        CODEC.decode(bytes(bad_union[:-1]) + b"\x7f\x7f")


@settings(max_examples=400, deadline=None)
@given(events())
def test_every_event_writes_as_fastavro_writes_it(event: Event) -> None:
    from schemas.avro_writer import compile_writer
    from schemas.codec import _plan

    parsed = CODEC.registry.current(type(event).__name__).parsed
    write = compile_writer(parsed)
    assert write is not None
    datum = _plan(type(event)).encode(event)
    expected = io.BytesIO()
    schemaless_writer(expected, parsed, datum)
    assert write(datum) == expected.getvalue()
    assert CODEC.decode(CODEC.encode(event)) == event


def test_a_datum_of_the_wrong_shape_falls_back_to_fastavro_and_its_errors() -> None:
    from schemas.avro_writer import compile_writer

    parsed = CODEC.registry.current("AgentRegistered").parsed
    write = compile_writer(parsed)
    assert write is not None
    with pytest.raises(KeyError):
        write({"event_id": "x"})
    with pytest.raises(SchemaError):
        CODEC.encode_dict("AgentRegistered", {"event_id": "x"})
