"""Checkpoint events encoded in one pass (``schemas.checkpoint_bytes``) give exactly the
bytes the codec gives for the same event, and whatever they do not take is left to the
usual path (``None``), which names what is wrong."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas.checkpoint_bytes import CheckpointBytes
from schemas.checkpoints import (
    ChannelValue,
    CheckpointSaved,
    CheckpointWritesSaved,
    PendingWrite,
    StoredValue,
)
from schemas.codec import Codec
from schemas.ids import uuid7

CODEC = Codec()
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

printable = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
ids = st.text(printable, min_size=1, max_size=200).filter(lambda s: s == s.strip(" "))
namespaces = st.text(printable, max_size=30)
strings = st.text(max_size=20)  # any str, surrogates aside (hypothesis leaves them out)
stored = st.builds(
    StoredValue,
    type=strings,
    data=st.none() | st.binary(max_size=300),
    blob_key=st.none() | strings,
)
json_values = st.recursive(  # (and infinity, which the model refuses)
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
metadata = st.dictionaries(st.text(max_size=10), json_values, max_size=5)
versions = st.dictionaries(strings, strings, max_size=4)
channel_values = st.lists(st.tuples(strings, strings, stored), max_size=4)
pending = st.lists(st.tuples(st.integers(-(2**31), 2**31 - 1), strings, stored), max_size=4)
micros = st.integers(0, 2**50)


def _when(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


@settings(max_examples=300, deadline=None)
@given(
    tenant=ids,
    actor=ids,
    thread=ids,
    ns=namespaces,
    checkpoint_id=ids,
    parent=st.none() | ids,
    run_id=st.none() | strings,
    checkpoint=stored,
    meta=stored,
    meta_json=metadata,
    channel_versions=versions,
    values=channel_values,
    us=micros,
)
def test_a_checkpoint_in_the_same_bytes_as_the_codec(
    tenant: str,
    actor: str,
    thread: str,
    ns: str,
    checkpoint_id: str,
    parent: str | None,
    run_id: str | None,
    checkpoint: StoredValue,
    meta: StoredValue,
    meta_json: dict[str, Any],
    channel_versions: dict[str, str],
    values: list[tuple[str, str, StoredValue]],
    us: int,
) -> None:
    event_id = uuid7()
    fields: dict[str, Any] = {
        "thread_id": thread,
        "checkpoint_ns": ns,
        "checkpoint_id": checkpoint_id,
        "parent_checkpoint_id": parent,
        "run_id": run_id,
        "checkpoint": checkpoint,
        "metadata": meta,
        "metadata_json": meta_json,
        "channel_versions": channel_versions,
    }
    ours = CheckpointBytes(CODEC, tenant, actor).saved(
        **fields, values=values, event_id=event_id, occurred_us=us
    )
    try:
        event = CheckpointSaved(
            event_id=event_id,
            occurred_at=_when(us),
            tenant_id=tenant,
            actor=actor,
            values=[ChannelValue(channel=c, version=v, value=sv) for c, v, sv in values],
            **fields,
        )
    except ValidationError:  # (infinity in the metadata)
        assert ours is None
        return
    assert ours == CODEC.encode(event)


@settings(max_examples=300, deadline=None)
@given(
    tenant=ids,
    actor=ids,
    thread=ids,
    ns=namespaces,
    checkpoint_id=ids,
    task_id=strings,
    task_path=namespaces,
    writes=pending,
    us=micros,
)
def test_pending_writes_in_the_same_bytes_as_the_codec(
    tenant: str,
    actor: str,
    thread: str,
    ns: str,
    checkpoint_id: str,
    task_id: str,
    task_path: str,
    writes: list[tuple[int, str, StoredValue]],
    us: int,
) -> None:
    event_id = uuid7()
    fields = {
        "thread_id": thread,
        "checkpoint_ns": ns,
        "checkpoint_id": checkpoint_id,
        "task_id": task_id,
        "task_path": task_path,
    }
    ours = CheckpointBytes(CODEC, tenant, actor).writes(
        **fields, writes=writes, event_id=event_id, occurred_us=us
    )
    event = CheckpointWritesSaved(
        event_id=event_id,
        occurred_at=_when(us),
        tenant_id=tenant,
        actor=actor,
        writes=[PendingWrite(idx=i, channel=c, value=v) for i, c, v in writes],
        **fields,
    )
    assert ours == CODEC.encode(event)


def test_a_fresh_event_id_and_time_for_each_event() -> None:
    encoder = CheckpointBytes(CODEC, "default", "agent")
    value = StoredValue(type="json", data=b"{}")
    saved = [
        encoder.saved(
            thread_id="t",
            checkpoint_id="1",
            checkpoint=value,
            metadata=value,
            metadata_json={},
            channel_versions={},
            values=[],
        )
        for _ in range(2)
    ]
    first, second = (CODEC.decode(data or b"") for data in saved)
    assert first.event_id != second.event_id
    now = datetime.now(UTC)
    assert now - timedelta(seconds=5) < first.occurred_at <= second.occurred_at <= now


VALUE = StoredValue(type="json", data=b"{}")
GOOD: dict[str, Any] = {
    "thread_id": "thread-1",
    "checkpoint_id": "1f0c",
    "checkpoint": VALUE,
    "metadata": VALUE,
    "metadata_json": {"source": "loop", "step": 1, "parents": {}, "note": None},
    "channel_versions": {"messages": "00001.0.5"},
    "values": [("messages", "00001.0.5", VALUE)],
}


def _model_error(**changed: Any) -> None:
    fields = GOOD | changed
    values = fields.pop("values")
    with pytest.raises(ValidationError):
        CheckpointSaved(
            tenant_id="default",
            actor="agent",
            values=[ChannelValue(channel=c, version=v, value=sv) for c, v, sv in values],
            **fields,
        )


def test_the_usual_shape_is_taken() -> None:
    assert CheckpointBytes(CODEC, "default", "agent").saved(**GOOD) is not None


@pytest.mark.parametrize(
    "changed",
    [
        {"thread_id": ""},
        {"thread_id": " padded"},
        {"thread_id": "bell\x07"},
        {"thread_id": "x" * 201},
        {"checkpoint_id": "tab\tin"},
        {"parent_checkpoint_id": "new\nline"},
        {"checkpoint_ns": "nul\x00"},
        {"metadata_json": {"bad": math.nan}},
        {"metadata_json": {"bad": object()}},
        {"metadata_json": "not an object"},
        {"channel_versions": {"messages": 5}},
        {"values": [(5, "1", VALUE)]},
    ],
)
def test_what_the_model_refuses_is_left_to_the_usual_path(changed: dict[str, Any]) -> None:
    assert CheckpointBytes(CODEC, "default", "agent").saved(**(GOOD | changed)) is None
    _model_error(**changed)


@pytest.mark.parametrize(
    "changed",
    [
        {"thread_id": "café"},  # not ASCII: the model decides
        {"checkpoint_ns": "tab\tin"},  # a tab is text, but not printable
        {"run_id": "lone \ud800"},  # not UTF-8: fastavro names the field
        {"metadata_json": {1: "int key"}},
        {"channel_versions": ["not", "a", "dict"]},
    ],
)
def test_other_shapes_are_left_to_the_usual_path(changed: dict[str, Any]) -> None:
    assert CheckpointBytes(CODEC, "default", "agent").saved(**(GOOD | changed)) is None


def test_a_writer_of_unusual_ids_uses_the_usual_path() -> None:
    assert CheckpointBytes(CODEC, "tenant é", "agent").saved(**GOOD) is None
    assert CheckpointBytes(CODEC, "default", " agent").saved(**GOOD) is None


NOT_BYTES = StoredValue.model_construct(type="json", data="text")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "changed",
    [
        {"thread_id": "bell\x07"},
        {"task_path": "nul\x00"},
        {"task_id": 5},
        {"writes": [(2**31, "messages", VALUE)]},
        {"writes": [(True, "messages", VALUE)]},
        {"writes": [(0, "messages", NOT_BYTES)]},
    ],
)
def test_pending_writes_not_taken(changed: dict[str, Any]) -> None:
    fields: dict[str, Any] = {
        "thread_id": "thread-1",
        "checkpoint_id": "1f0c",
        "task_id": "task",
        "writes": [(0, "messages", VALUE)],
    }
    assert CheckpointBytes(CODEC, "default", "agent").writes(**(fields | changed)) is None
