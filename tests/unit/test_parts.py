"""The JSON form of message parts, and the content size the read models store."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.events import Part, TextPart
from schemas.parts import PART_TYPES, json_size, part_to_json, parts_bytes, parts_json
from tests.support.strategies import models

parts = st.one_of(*(models(cls) for cls in PART_TYPES.values()))


@settings(max_examples=300, deadline=None)
@given(st.lists(parts, max_size=5))
def test_json_size_is_the_utf8_length_of_the_json_document(content: list[Part]) -> None:
    document = parts_json(content)
    assert json_size(document) == len(json.dumps(document, ensure_ascii=False).encode())
    assert parts_bytes(content) == json_size(document)


@given(st.text())
def test_text_parts_have_the_same_json_form_as_their_model_dump(text: str) -> None:
    part = TextPart.model_construct(text=text)
    assert part_to_json(part) == {"type": "text", **part.model_dump(mode="json")}
    assert list(part_to_json(part)) == ["type", "text"]


def test_sizes_of_a_few_documents() -> None:
    assert json_size([]) == 2
    assert json_size([{"type": "text", "text": 'é\\n"x'}]) == len(
        '[{"type": "text", "text": "é\\\\n\\"x"}]'.encode()
    )
    assert json_size([{"text": "a", "type": "text"}, {"type": "data", "kind": "k", "data": 1}]) == (
        len(
            json.dumps(
                [{"text": "a", "type": "text"}, {"type": "data", "kind": "k", "data": 1}],
                ensure_ascii=False,
            ).encode()
        )
    )
