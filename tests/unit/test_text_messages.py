"""Plain text messages encoded in one pass (``schemas.text_messages``) give exactly the
bytes the codec gives for the same event, and everything else is left to the usual path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas.avro_bytes import avro_long, avro_string
from schemas.codec import Codec
from schemas.events import MessageAppended, TextPart
from schemas.ids import uuid7
from schemas.text_messages import ROLE_INDEX, TextMessages

CODEC = Codec()
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

ids = st.text(st.characters(categories=["L", "N", "Pd", "So"]), min_size=1, max_size=40)
texts = st.text(
    st.characters(codec="utf-8", exclude_characters="".join(map(chr, [*range(9), 11, 12])))
).filter(lambda t: not any(0x0E <= ord(c) <= 0x1F or ord(c) == 0x7F for c in t))


def _first(tenant: str, actor: str, correlation: str | None, thread: str, **more: Any) -> Any:
    fields: dict[str, Any] = {
        "message_id": uuid7(),
        "role": "user",
        "parts": (TextPart(text="first"),),
    }
    return MessageAppended(
        tenant_id=tenant,
        actor=actor,
        correlation_id=correlation,
        root_thread_id=f"root-{thread}",
        thread_id=thread,
        **(fields | more),
    )


@settings(max_examples=300, deadline=None)
@given(
    tenant=ids,
    actor=ids,
    correlation=st.none() | ids,
    thread=ids,
    role=st.sampled_from(sorted(ROLE_INDEX)),
    text=texts,
    micros=st.integers(0, 2**50),
)
def test_the_same_bytes_as_the_codec(
    tenant: str, actor: str, correlation: str | None, thread: str, role: str, text: str, micros: int
) -> None:
    first = _first(
        tenant, actor, correlation, thread, occurred_at=EPOCH + timedelta(microseconds=micros)
    )
    event = _first(
        tenant,
        actor,
        correlation,
        thread,
        event_id=uuid7(),
        occurred_at=EPOCH + timedelta(microseconds=micros),
        role=role,
        parts=(TextPart(text=text),),
    )
    ours = TextMessages(CODEC, first).value(
        event.message_id, event.event_id, ROLE_INDEX[role], avro_string(text)
    )
    assert ours == CODEC.encode(event)


nulls = st.sampled_from(["null", "a null", "nullable"])  # JSON's word inside a string
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=400, deadline=None)
@given(
    role=st.sampled_from(sorted(ROLE_INDEX)),
    text=texts,
    model=st.none() | st.text(),
    metadata=st.none()
    | st.dictionaries(st.text() | nulls, st.text() | nulls, max_size=4)
    | st.dictionaries(st.text(), json_values, max_size=4),
)
def test_a_model_and_json_metadata_give_the_same_bytes_as_the_codec(
    role: str, text: str, model: str | None, metadata: dict[str, Any] | None
) -> None:
    """A framework's message (its id and times in ``metadata``, a model name) takes the
    one-pass path too, and gives the codec's bytes. Metadata of strings always does; what
    the codec cannot write (a lone surrogate) never does; the rest may be left to the
    usual path (a null, an integer beyond 64 bits, infinity)."""
    first = _first("acme", "key:1", None, "t/1")
    spec = {"role": role, "content": text, "model": model, "metadata": metadata}
    fast = TextMessages(CODEC, first).encode(spec)
    try:
        CODEC.encode(_first("acme", "key:1", None, "t/1", model=model, metadata=metadata or {}))
    except (ValidationError, UnicodeEncodeError):  # refused (infinity, a lone surrogate)
        assert fast is None  # so it is here
        return
    strings = all(type(v) is str for v in (metadata or {}).values())
    assert fast is not None or not strings
    if fast is None:
        return
    decoded = CODEC.decode(fast[1])
    event = _first(
        "acme",
        "key:1",
        None,
        "t/1",
        event_id=decoded.event_id,
        occurred_at=first.occurred_at,
        message_id=fast[0],
        role=role,
        parts=(TextPart(text=text),),
        model=model,
        metadata=metadata or {},
    )
    assert fast[1] == CODEC.encode(event)
    assert isinstance(decoded, MessageAppended)
    assert (decoded.model, decoded.metadata) == (model, metadata or {})


@pytest.mark.parametrize(
    "metadata", [{"id": "null"}, {"null": "x"}, {"a": "b", "c": "nullable"}, {"k": ""}]
)
def test_string_metadata_holding_null_takes_the_one_pass_path(metadata: dict[str, str]) -> None:
    """A string that holds "null" is still a string (the JSON check alone refuses it)."""
    first = _first("acme", "key:1", None, "t/1")
    fast = TextMessages(CODEC, first).encode({"role": "user", "content": "x", "metadata": metadata})
    assert fast is not None
    decoded = CODEC.decode(fast[1])
    assert isinstance(decoded, MessageAppended) and decoded.metadata == metadata
    assert fast[1] == CODEC.encode(decoded)


def test_a_spec_decodes_to_the_event_it_describes() -> None:
    first = _first("acme", "key:1", "run-1", "t/1")
    given_id = uuid7()
    fast = TextMessages(CODEC, first).encode(
        {"role": "tool", "content": "héllo\n\tworld", "message_id": str(given_id), "metadata": {}}
    )
    assert fast is not None and fast[0] == given_id
    event = CODEC.decode(fast[1])
    assert isinstance(event, MessageAppended)
    assert (event.tenant_id, event.actor, event.correlation_id) == ("acme", "key:1", "run-1")
    assert (event.thread_id, event.root_thread_id, event.role) == ("t/1", "root-t/1", "tool")
    assert event.parts == (TextPart(text="héllo\n\tworld"),) and event.message_id == given_id
    assert event.metadata == {} and event.model is None and event.usage is None
    assert event.occurred_at == first.occurred_at  # a batch's messages occur together


def test_a_later_batch_of_the_same_thread_occurs_now_with_new_ids() -> None:
    """``for_batch``: the envelope checked once serves the thread's later batches (a single
    message included), each occurring when it is made, with ids of its own."""
    first = _first("acme", "key:1", None, "t/1", occurred_at=EPOCH + timedelta(days=1))
    encoder = TextMessages(CODEC, first)
    before = datetime.now(UTC)
    later = encoder.for_batch(2)
    made = [later.encode({"role": "user", "content": f"m{i}"}) for i in range(3)]
    after = datetime.now(UTC)
    events = [
        e for m in made if m is not None if isinstance(e := CODEC.decode(m[1]), MessageAppended)
    ]
    assert len(events) == 3
    assert [e.parts for e in events] == [(TextPart(text=f"m{i}"),) for i in range(3)]
    assert all(before <= e.occurred_at <= after for e in events)
    assert len({e.event_id for e in events} | {e.message_id for e in events}) == 6
    assert all(
        (e.tenant_id, e.thread_id, e.root_thread_id) == ("acme", "t/1", "root-t/1") for e in events
    )
    assert encoder.encode({"role": "user", "content": "x"}) is not None  # the first is unchanged
    again = CODEC.decode(encoder.encode({"role": "user", "content": "x"})[1])  # type: ignore[index]
    assert again.occurred_at == first.occurred_at


@pytest.mark.parametrize(
    "spec",
    [
        {"role": "user", "content": [{"type": "text", "text": "parts"}]},
        {"role": "user", "content": "x", "model": 7},
        {"role": "user", "content": "x", "usage": {"input_tokens": 1}},
        {"role": "user", "content": "x", "metadata": {"k": None}},
        {"role": "user", "content": "x", "metadata": {"k": float("inf")}},
        {"role": "user", "content": "x", "metadata": {"k": 2**64}},
        {"role": "user", "content": "x", "metadata": {"k": ("a", "tuple")}},
        {"role": "user", "content": "x", "metadata": {1: "x"}},
        {"role": "user", "content": "x", "metadata": []},
        {"role": "user", "content": "x", "metadata": [("k", "v")]},
        {"role": "user", "content": "x", "metadata": {"k": "lone \ud800"}},
        {"role": "user", "content": "x", "model": "lone \ud800"},
        {"role": "user", "content": "x", "extra": 1},
        {"role": "robot", "content": "x"},
        {"role": "user", "content": "bell \x07"},
        {"role": "user", "content": "nul \x00"},
        {"role": "user", "content": "lone \ud800"},
        {"role": "user", "content": "x", "message_id": "not-a-uuid"},
        {"role": "user", "content": "x", "message_id": 12},
        {"role": "user", "content": b"bytes"},
        {"content": "no role"},
    ],
)
def test_anything_else_is_left_to_the_usual_path(spec: dict[str, Any]) -> None:
    assert TextMessages(CODEC, _first("acme", "a", None, "t")).encode(spec) is None


@pytest.mark.parametrize("value", [0, 1, -1, 63, 64, -65, 2**31, 2**62, -(2**63), 2**63 - 1])
def test_avro_longs(value: int) -> None:
    from io import BytesIO

    from fastavro import schemaless_reader

    assert schemaless_reader(BytesIO(avro_long(value)), "long", None) == value
