"""Trusted decoding (``Codec.decode(data, trusted=True)``, the projectors' path) builds
exactly the event that validation builds: equal values of identical types at every
depth (tuples, enum members, nested and union models, parsed JSON), for every event type;
and the bytes are still checked against the schema."""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codec import Codec
from schemas.construct import builder_for, loads_json
from schemas.errors import SchemaError
from schemas.events import EVENT_TYPES, Event, MessageAppended, Role, TextPart, ToolCallPart
from tests.support.identical import assert_identical
from tests.support.strategies import events

CODEC = Codec()


@settings(max_examples=500, deadline=None)
@given(events())
def test_trusted_decoding_builds_what_validation_builds(event: Event) -> None:
    data = CODEC.encode(event)
    trusted = CODEC.decode(data, trusted=True)
    assert_identical(trusted, CODEC.decode(data))
    assert trusted == event
    assert trusted.model_dump() == event.model_dump()
    assert CODEC.encode(trusted) == data


@pytest.mark.parametrize("name", sorted(EVENT_TYPES))
def test_every_event_type_has_a_builder(name: str) -> None:
    data_cls = EVENT_TYPES[name]
    assert callable(builder_for(data_cls))


def message(**fields: Any) -> MessageAppended:
    return MessageAppended(
        tenant_id="acme",
        actor="agent",
        root_thread_id="t",
        thread_id="t",
        message_id=uuid4(),
        **fields,
    )


def test_a_built_event_is_a_normal_frozen_model() -> None:
    event = message(
        role=Role.ASSISTANT,
        parts=(TextPart(text="hi"), ToolCallPart(tool_call_id="c", name="f", input={"a": 1})),
    )
    built = CODEC.decode(CODEC.encode(event), trusted=True)
    assert isinstance(built, MessageAppended) and built.role is Role.ASSISTANT
    assert isinstance(built.parts, tuple | list) and built.parts[1].input == {"a": 1}
    with pytest.raises(ValueError, match="frozen"):
        built.thread_id = "other"  # type: ignore[misc]
    assert built.model_copy(update={"thread_id": "u"}).thread_id == "u"


def test_trusted_bytes_are_still_checked() -> None:
    data = CODEC.encode(message(role=Role.USER, parts=()))
    with pytest.raises(SchemaError, match="MessageAppended"):
        CODEC.decode(data[:-3], trusted=True)
    with pytest.raises(SchemaError, match="trailing"):
        CODEC.decode(data + b"\x00", trusted=True)


@settings(max_examples=500, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=12,
    )
)
def test_loads_json_is_json_loads(value: Any) -> None:
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False)):
        ours, theirs = loads_json(text), json.loads(text)
        if "NaN" in text:  # NaN is never equal, even to itself: compare the spelling
            assert json.dumps(ours) == json.dumps(theirs)
        else:
            assert_identical(ours, theirs)


@pytest.mark.parametrize(
    "text", ["12345678901234567890", "-99999999999999999999.5", "NaN", '"\\ud800"', "1e400"]
)
def test_loads_json_falls_back_where_orjson_differs(text: str) -> None:
    ours, theirs = loads_json(text), json.loads(text)
    assert type(ours) is type(theirs) and repr(ours) == repr(theirs)
