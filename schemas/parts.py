"""Message content parts: the event models, and their JSON form in read models and APIs.

The JSON form carries a ``type`` discriminator::

    {"type": "text", "text": "..."}
    {"type": "tool_call", "tool_call_id": "...", "name": "...", "input": {...}}
    {"type": "tool_result", "tool_call_id": "...", "status": "success", "content": ...}
    {"type": "blob", "uri": "...", "content_type": "...", "size": 123, "sha256": "...", "name": ...}
    {"type": "data", "kind": "reasoningContent", "data": {...}}
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from schemas.codec import pydantic_error_field
from schemas.errors import InputError
from schemas.events import BlobPart, DataPart, Part, TextPart, ToolCallPart, ToolResultPart

__all__ = [
    "PART_TYPES",
    "json_size",
    "part_from_json",
    "part_to_json",
    "parts_bytes",
    "parts_json",
    "parts_text",
]

PART_TYPES: Mapping[str, type[Part]] = {
    "text": TextPart,
    "tool_call": ToolCallPart,
    "tool_result": ToolResultPart,
    "blob": BlobPart,
    "data": DataPart,
}
_NAMES = {cls: name for name, cls in PART_TYPES.items()}


if set(TextPart.model_fields) != {"text"}:  # part_to_json's shortcut writes only the text
    raise RuntimeError("TextPart's fields changed: update part_to_json in schemas/parts.py")


def part_to_json(part: Part) -> dict[str, Any]:
    """The JSON form of a part."""
    if type(part) is TextPart:  # most parts: the same dict as model_dump's, built directly
        return {"type": "text", "text": part.text}
    return {"type": _NAMES[type(part)], **part.model_dump(mode="json")}


def parts_json(parts: Iterable[Part]) -> list[dict[str, Any]]:
    """The JSON form of a message's parts."""
    return [part_to_json(p) for p in parts]


def part_from_json(data: Mapping[str, Any], *, where: str = "parts") -> Part:
    """A part from its JSON form; bad input raises :class:`InputError` naming the field."""
    kind = data.get("type")
    cls = PART_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise InputError(
            f"{where}.type: must be one of {', '.join(PART_TYPES)}, not {kind!r}",
            field=f"{where}.type",
        )
    try:
        return cls.model_validate({k: v for k, v in data.items() if k != "type"})
    except PydanticValidationError as exc:
        loc, msg = pydantic_error_field(exc)
        field = f"{where}.{loc}" if loc else where
        raise InputError(f"{field}: {msg}", field=field) from None


def parts_text(parts: Iterable[Part]) -> str:
    """The searchable text of a message: its text, and tool output given as text."""
    chunks: list[str] = []
    for part in parts:
        if isinstance(part, TextPart):
            chunks.append(part.text)
        elif isinstance(part, ToolResultPart) and isinstance(part.content, str):
            chunks.append(part.content)
    return "\n".join(chunks)


def parts_bytes(parts: Sequence[Part]) -> int:
    """The size of a message's content (its JSON form; blobs count their reference)."""
    return json_size(parts_json(parts))


_escape = json.encoder.encode_basestring  # how json.dumps(..., ensure_ascii=False) writes a str
_TEXT_PART = len('{"type": "text", "text": }')


def json_size(parts_json: Sequence[Mapping[str, Any]]) -> int:
    """The size of content given in its JSON form (as :func:`parts_bytes` counts it): the
    UTF-8 length of ``json.dumps(parts_json, ensure_ascii=False)``, with text parts
    counted without building the whole document."""
    size = 2 + 2 * max(len(parts_json) - 1, 0)  # "[" "]" and the ", " between parts
    for part in parts_json:
        text = part.get("text")
        if len(part) == 2 and part.get("type") == "text" and type(text) is str:
            size += _TEXT_PART + len(_escape(text).encode())
        else:
            size += len(json.dumps(part, ensure_ascii=False).encode())
    return size
