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

__all__ = ["PART_TYPES", "part_from_json", "part_to_json", "parts_bytes", "parts_text"]

PART_TYPES: Mapping[str, type[Part]] = {
    "text": TextPart,
    "tool_call": ToolCallPart,
    "tool_result": ToolResultPart,
    "blob": BlobPart,
    "data": DataPart,
}
_NAMES = {cls: name for name, cls in PART_TYPES.items()}


def part_to_json(part: Part) -> dict[str, Any]:
    """The JSON form of a part."""
    return {"type": _NAMES[type(part)], **part.model_dump(mode="json")}


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
    return len(json.dumps([part_to_json(p) for p in parts], ensure_ascii=False).encode())
