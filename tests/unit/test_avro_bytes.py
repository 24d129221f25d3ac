"""Avro's long encoding written directly (lengths, offsets, timestamps of the archive and
the encoders) is the one fastavro writes, and reads back, over the whole 64-bit range."""

from __future__ import annotations

import io

from fastavro import schemaless_writer
from hypothesis import given
from hypothesis import strategies as st

from schemas.avro_bytes import avro_bytes, avro_long, avro_string, read_long

longs = st.integers(-(2**63), 2**63 - 1)
near_edges = st.sampled_from([0, 63, 64, 8191, 8192, 8193, 2**20 - 1, 2**20, 2**63 - 1, -(2**63)])


def fastavro_long(value: int) -> bytes:
    out = io.BytesIO()
    schemaless_writer(out, {"type": "long"}, value)
    return out.getvalue()


@given(longs | near_edges | st.integers(-20_000, 20_000) | st.integers(0, 2**22))
def test_avro_long_is_fastavros_and_reads_back(value: int) -> None:
    encoded = avro_long(value)
    assert encoded == fastavro_long(value)
    assert read_long(encoded, 0) == (value, len(encoded))


def fastavro_datum(kind: str, value: bytes | str) -> bytes:
    out = io.BytesIO()
    schemaless_writer(out, {"type": kind}, value)
    return out.getvalue()


lengths = st.sampled_from([0, 1, 63, 64, 4095, 4096, 8191, 8192, 8193, 70_000]) | st.integers(
    0, 20_000
)


@given(lengths)
def test_avro_bytes_and_strings_are_fastavros_at_every_length(n: int) -> None:
    assert avro_bytes(b"\xff" * n) == fastavro_datum("bytes", b"\xff" * n)
    assert avro_string("x" * n) == fastavro_datum("string", "x" * n)
    assert avro_string("é" * n) == fastavro_datum("string", "é" * n)  # two bytes each
