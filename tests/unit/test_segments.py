"""The archive's segments, written from the records' bytes, are Avro container files any
reader reads back to the same entries as fastavro's own writer would have written; and
they read back as the records they were written from, whoever wrote them."""

from __future__ import annotations

import io
import os
from typing import Any

import pytest
from fastavro import reader, writer
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.archive.segments import (
    ARCHIVED_RECORD,
    BLOCK_BYTES,
    encode_segment,
    iter_records,
    read_segment,
)
from hub.infra.ports import ConsumerRecord, TopicPartition

TP = TopicPartition("agenthub.sessions", 3)

headers = st.lists(st.tuples(st.text(max_size=20), st.binary(max_size=30)), max_size=4).map(tuple)
records = st.lists(
    st.tuples(
        st.none() | st.binary(max_size=40), headers, st.binary(max_size=300), st.integers(0, 2**45)
    ),
    min_size=1,
    max_size=40,
)


def _records(
    specs: list[tuple[bytes | None, tuple[tuple[str, bytes], ...], bytes, int]],
) -> list[ConsumerRecord]:
    return [
        ConsumerRecord(TP.topic, TP.partition, 1000 + i, key, value, hs, ts, TP)
        for i, (key, hs, value, ts) in enumerate(specs)
    ]


def _fastavro_segment(recs: list[ConsumerRecord]) -> bytes:
    out = io.BytesIO()
    entries = (
        {
            "offset": r.offset,
            "timestamp_ms": r.timestamp_ms,
            "key": r.key,
            "headers": [{"key": k, "value": v} for k, v in r.headers],
            "value": r.value,
        }
        for r in recs
    )
    writer(out, ARCHIVED_RECORD, entries, codec="deflate")
    return out.getvalue()


@settings(max_examples=200, deadline=None)
@given(records, st.sampled_from([0, 1, 6, 9]))
def test_entries_as_fastavro_writes_them(
    specs: list[tuple[bytes | None, tuple[tuple[str, bytes], ...], bytes, int]], level: int
) -> None:
    recs = _records(specs)
    ours = encode_segment(TP, recs, level=level)
    assert read_segment(ours) == read_segment(_fastavro_segment(recs))


def test_metadata_and_many_blocks() -> None:
    value = os.urandom(200)
    recs = _records([(b"k", (("hub-type", b"MessageAppended"),), value, 7)] * 2000)
    data = encode_segment(TP, recs)
    with io.BytesIO(data) as f:
        avro = reader(f)
        meta = avro.metadata
        entries: list[Any] = list(avro)
    assert meta["agenthub.topic"] == TP.topic and meta["agenthub.partition"] == "3"
    assert (meta["agenthub.first_offset"], meta["agenthub.last_offset"]) == ("1000", "2999")
    assert meta["avro.codec"] == "deflate"
    assert [e["offset"] for e in entries] == list(range(1000, 3000))
    assert all(
        e["value"] == value and e["headers"] == [{"key": "hub-type", "value": b"MessageAppended"}]
        for e in entries
    )
    assert len(data) < 2000 * 200 and BLOCK_BYTES * 2 < 2000 * 230  # compressed, several blocks


# a few header sets, as a log's records carry them: most records repeat one
header_sets = st.lists(headers, min_size=1, max_size=3)


@settings(max_examples=200, deadline=None)
@given(records, st.integers(0, 1060), st.sampled_from([0, 1]), st.data())
def test_records_read_back_as_written_from_any_offset(
    specs: list[tuple[bytes | None, tuple[tuple[str, bytes], ...], bytes, int]],
    start: int,
    level: int,
    data: st.DataObject,
) -> None:
    sets = data.draw(header_sets)
    shared = [(k, data.draw(st.sampled_from([*sets, hs])), v, ts) for k, hs, v, ts in specs]
    recs = _records(shared)
    expected = [r for r in recs if r.offset >= start]
    assert list(iter_records(encode_segment(TP, recs, level=level), TP, start)) == expected
    # a container written by another writer (fastavro's) reads back the same
    assert list(iter_records(_fastavro_segment(recs), TP, start)) == expected


def test_records_of_many_blocks_and_many_header_sets() -> None:
    recs = _records(
        [
            (b"k%d" % i, (("hub-tenant", b"t%d" % (i % 20)),), os.urandom(300), i)
            for i in range(3000)
        ]
    )
    data = encode_segment(TP, recs)
    assert list(iter_records(data, TP)) == recs
    assert list(iter_records(data, TP, 2500)) == recs[1500:]


def test_a_damaged_segment_is_an_error_not_fewer_records() -> None:
    recs = _records([(None, (), b"v" * 100, 1)] * 10)
    data = encode_segment(TP, recs, level=0)
    with pytest.raises(ValueError, match="sync marker"):
        list(iter_records(data[:-3], TP))
    with pytest.raises(ValueError, match="magic"):
        list(iter_records(b"junk" + data, TP))
