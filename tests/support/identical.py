"""Equality that also holds the types, at every depth."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

__all__ = ["assert_identical"]


def assert_identical(ours: Any, validated: Any, where: str = "event") -> None:
    """Equal, and of the same type, all the way down (``==`` alone lets "user" pass for
    ``Role.USER`` and a list for a tuple)."""
    assert type(ours) is type(validated), f"{where}: {type(ours)} is not {type(validated)}"
    if isinstance(validated, BaseModel):
        assert list(ours.__dict__) == list(validated.__dict__), where
        assert ours.model_fields_set == validated.model_fields_set, where
        for name, value in validated.__dict__.items():
            assert_identical(ours.__dict__[name], value, f"{where}.{name}")
    elif isinstance(validated, dict):
        assert list(ours) == list(validated), where
        for key, value in validated.items():
            assert_identical(ours[key], value, f"{where}[{key!r}]")
    elif isinstance(validated, list | tuple):
        assert len(ours) == len(validated), where
        for i, (a, b) in enumerate(zip(ours, validated, strict=True)):
            assert_identical(a, b, f"{where}[{i}]")
    else:
        assert ours == validated, where
