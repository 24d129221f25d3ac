"""Hypothesis strategies that build valid events from the models' own annotations."""

from __future__ import annotations

import typing
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from enum import Enum
from typing import Any
from uuid import UUID

from hypothesis import strategies as st
from pydantic import BaseModel

from schemas.events import EVENT_TYPES, Event, MetricsRecorded
from schemas.types import AVRO_INT, AVRO_JSON, Identifier, MetricName, Text, is_union, unwrap

_ID_ALPHABET = st.characters(
    whitelist_categories=("Lu", "Ll", "Nd", "Pd", "Lo"), whitelist_characters="_.:@/"
)
identifiers = st.text(_ID_ALPHABET, min_size=1, max_size=40)
metric_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.:/-]{0,30}", fullmatch=True)
texts = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x7f"), max_size=80
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=4)
timestamps = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)


def _for(annotation: Any, metadata: list[Any]) -> st.SearchStrategy[Any]:
    tp, meta = unwrap(annotation)
    meta = metadata + meta
    if annotation is MetricName or any("A-Za-z_" in repr(m) for m in meta):
        return metric_names
    if annotation is Identifier or (tp is str and any("max_length" in repr(m) for m in meta)):
        return identifiers
    if AVRO_JSON in meta:
        return json_objects if typing.get_origin(tp) is dict else json_values
    if AVRO_INT in meta:
        return st.integers(0, 2**31 - 1)
    if is_union(tp):
        return st.one_of(*[_for(a, []) for a in typing.get_args(tp)])
    origin = typing.get_origin(tp)
    if origin in (tuple, list, Sequence):
        return st.lists(_for(typing.get_args(tp)[0], []), max_size=3).map(tuple)
    if origin in (dict, Mapping):
        return st.dictionaries(st.text(max_size=8), _for(typing.get_args(tp)[1], []), max_size=3)
    if tp is type(None):
        return st.none()
    if annotation is Text or tp is str:
        return texts
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return models(tp)
    if isinstance(tp, type) and issubclass(tp, Enum):
        return st.sampled_from(list(tp))
    simple: dict[Any, st.SearchStrategy[Any]] = {
        bytes: st.binary(max_size=40),
        bool: st.booleans(),
        int: st.integers(0, 2**62),
        float: st.floats(allow_nan=False, allow_infinity=False, min_value=0, max_value=1e12),
        UUID: st.uuids(),
        datetime: timestamps,
    }
    return simple[tp]


def models(cls: type[BaseModel]) -> st.SearchStrategy[Any]:
    """Valid instances of ``cls``."""
    fields = {
        name: _for(info.annotation, list(info.metadata)) for name, info in cls.model_fields.items()
    }
    if cls is MetricsRecorded:  # its lists are columns: one length for all
        columns = ("names", "values", "kinds", "units", "tags", "recorded_at")
        return (
            st.integers(1, 3)
            .flatmap(
                lambda n: st.fixed_dictionaries(
                    {
                        k: (
                            st.lists(_for(*_item(cls, k)), min_size=n, max_size=n)
                            if k in columns
                            else v
                        )
                        for k, v in fields.items()
                    }
                )
            )
            .map(lambda kw: cls(**kw))
        )
    return st.fixed_dictionaries(fields).map(lambda kw: cls(**kw))


def _item(cls: type[BaseModel], name: str) -> tuple[Any, list[Any]]:
    """The item annotation of a list field."""
    tp, _ = unwrap(cls.model_fields[name].annotation)
    return typing.get_args(tp)[0], []


def events() -> st.SearchStrategy[Event]:
    """A valid event of any type."""
    return st.one_of(*[models(cls) for cls in EVENT_TYPES.values()])
