"""The reversible escape that lets Postgres hold any text (projections.text)."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from projections.text import json_text, load_json, load_text, load_texts, store_text

# what Postgres must hold: any code point but lone surrogates (not encodable as UTF-8),
# with NUL and the escape characters drawn often
texts = st.text(
    alphabet=st.one_of(
        st.sampled_from(["\x00", "\ue000", "\ue001", "a"]),
        st.characters(exclude_categories=["Cs"]),
    )
)
json_values: Any = st.recursive(
    st.none() | st.booleans() | st.integers() | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)


@given(texts)
def test_text_round_trips_and_holds_no_nul(value: str) -> None:
    stored = store_text(value)
    assert "\x00" not in stored
    assert load_text(stored) == value
    assert load_texts([stored, stored]) == [value, value]


def test_plain_text_is_stored_as_it_is() -> None:
    assert store_text("plain ünïcode ✓") == "plain ünïcode ✓"


# a JSON escape of NUL (what Postgres refuses): \u0000 after an even number of backslashes
NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


@given(json_values)
@example("\\u0000")  # a backslash and "u0000", not NUL: JSON spells it \\u0000, which is fine
@example({"k": ["\x00", "\\\x00"]})
def test_json_round_trips_without_nul_escapes(value: Any) -> None:
    text = json_text(value)
    assert not NUL_ESCAPE.search(text)
    assert load_json(text) == value
    assert load_json(text.encode()) == value


def test_json_text_in_a_text_array_is_not_escaped_twice() -> None:
    from projections.connection import _safe

    escaped = json_text({"k": "\ue000\ue001\x00"})
    assert _safe([escaped, "a\x00"]) == [escaped, store_text("a\x00")]
    assert load_json(_safe([escaped])[0]) == {"k": "\ue000\ue001\x00"}
