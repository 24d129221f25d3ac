"""Events built from decoded Avro values without validating them again.

Every event on the log was validated when it was produced, and its fingerprint pins the
schema it was written with, so the consume side (projectors, rebuilds) need not run
pydantic's validation once more per event. :func:`builder_for` turns the compiled
reader's values (JSON fields as text, records as dicts, unions of records as
``(name, dict)``) into the model instance that validation would have produced: the same
values of the same types (tuples for frozen lists, enum members, nested models, parsed
JSON), built directly. A property test holds it to ``model_validate`` for every event type.
"""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from typing import Any, TypeVar

import orjson
from pydantic import AfterValidator, BaseModel

from schemas.envelope import NAMESPACE
from schemas.types import AVRO_JSON, is_union, unwrap

__all__ = ["Build", "builder_for", "construct", "loads_json"]

Build = Callable[[Any], Any]
M = TypeVar("M", bound=BaseModel)

_setattr = object.__setattr__
_LONG_NUMBER = re.compile(r"\d{19}")


def loads_json(text: str) -> Any:
    """``json.loads(text)``, by orjson (compiled) where the two agree: not for a number
    of 19 digits or more (orjson reads integers beyond 64 bits as floats), and whatever
    orjson refuses (NaN, lone surrogates...) goes to ``json.loads``."""
    if _LONG_NUMBER.search(text) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


def construct(cls: type[M], values: dict[str, Any]) -> M:
    """``cls`` holding ``values`` (every field, in field order) as they are, unchecked."""
    model = cls.__new__(cls)
    _setattr(model, "__dict__", values)
    _setattr(model, "__pydantic_fields_set__", set(values))
    _setattr(model, "__pydantic_extra__", None)
    _setattr(model, "__pydantic_private__", None)
    return model


_BUILDERS: dict[type[BaseModel], Build] = {}


def builder_for(cls: type[M]) -> Callable[[dict[str, Any]], M]:
    """The function that builds ``cls`` from its decoded Avro record (a dict it reuses)."""
    build = _BUILDERS.get(cls)
    if build is None:
        build = _BUILDERS[cls] = _record_builder(cls)
    return build


def _record_builder(cls: type[BaseModel]) -> Build:
    if cls.__pydantic_post_init__ or cls.__private_attributes__:
        raise TypeError(f"{cls.__name__}: cannot be built without validation")
    names = tuple(cls.model_fields)
    converted: list[tuple[str, Build]] = []
    for name, info in cls.model_fields.items():
        build = _value_builder(info.annotation, list(info.metadata))
        if build is not None:
            converted.append((name, build))
    steps = tuple(converted)
    in_order: list[bool] = []  # whether the reader's dicts come in the model's field order

    def build_record(datum: dict[str, Any]) -> Any:
        for name, step in steps:
            datum[name] = step(datum[name])
        if not in_order:
            in_order.append(tuple(datum) == names)
        if not in_order[0] or len(datum) != len(names):
            datum = {name: datum[name] for name in names}
        return construct(cls, datum)

    return build_record


def _value_builder(annotation: Any, metadata: list[Any]) -> Build | None:
    """How to turn one decoded value into the validated one; ``None``: as it is."""
    tp, meta = unwrap(annotation)
    meta = metadata + meta
    if AVRO_JSON in meta:
        return loads_json
    as_tuple = any(isinstance(m, AfterValidator) and m.func is tuple for m in meta)
    if is_union(tp):
        branches = [b for b in typing.get_args(tp) if b is not type(None)]
        models = [unwrap(b)[0] for b in branches]
        if len(models) > 1 and all(_is_model(m) for m in models):
            return _union_builder(models)
        inner = _value_builder(branches[0], [])
        if inner is None:
            return None
        return lambda v: None if v is None else inner(v)
    origin = typing.get_origin(tp)
    if origin in (tuple, list, Sequence):
        item = _value_builder(typing.get_args(tp)[0], [])
        if item is None:
            return tuple if as_tuple or origin is tuple else None
        if as_tuple or origin is tuple:
            return lambda v: tuple([item(x) for x in v])
        return lambda v: [item(x) for x in v]
    if origin in (dict, Mapping):
        value = _value_builder(typing.get_args(tp)[1], [])
        return None if value is None else (lambda v: {k: value(x) for k, x in v.items()})
    if isinstance(tp, type) and issubclass(tp, Enum):
        return tp
    if _is_model(tp):
        return lambda v: builder_for(tp)(v)
    return None  # str, int, float, bool, bytes, UUID, datetime: the reader's own value


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _union_builder(models: list[type[BaseModel]]) -> Build:
    by_name = {f"{NAMESPACE}.{m.__name__}": m for m in models}

    def build(value: Any) -> Any:
        name, datum = value
        return builder_for(by_name[name])(datum)

    return build
