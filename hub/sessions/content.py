"""A message's content as the SDK takes it (a string, or a list of parts) made into parts;
a blob part's bytes are stored first, and the part refers to them."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from schemas.errors import InputError
from schemas.events import BlobPart, Part
from schemas.parts import part_from_json

__all__ = ["PutBlob", "as_content", "message_parts"]

PutBlob = Callable[[bytes, str, str, str | None], Awaitable[str]]
"""Stores a blob (data, sha256, content type, name); its URI."""


def as_content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """Parts as the SDK takes content: one non-empty text part as its string (the same
    message, which the SDK encodes in one pass), else the parts."""
    if len(parts) == 1 and parts[0].get("type") == "text":
        text = parts[0].get("text")
        if isinstance(text, str) and text:
            return text
    return parts


async def message_parts(content: Any, field: str, put_blob: PutBlob) -> tuple[Part, ...]:
    """``content`` as parts, or :class:`InputError` naming ``field`` (or its item)."""
    if isinstance(content, str):
        return (part_from_json({"type": "text", "text": content}, where=field),)
    if isinstance(content, Part.__args__):
        return (content,)
    if not isinstance(content, Sequence) or isinstance(content, bytes):
        raise InputError(
            f"{field}: a string, or a list of parts ({{'type': 'text', ...}})", field=field
        )
    parts: list[Part] = []
    for i, item in enumerate(content):
        where = f"{field}.{i}"
        if isinstance(item, Part.__args__):
            parts.append(item)
        elif isinstance(item, str):
            parts.append(part_from_json({"type": "text", "text": item}, where=where))
        elif isinstance(item, Mapping):
            if item.get("type") == "blob" and "data" in item:
                parts.append(await _store_blob(item, where, put_blob))
            else:
                parts.append(part_from_json(item, where=where))
        else:
            raise InputError(f"{where}: not a part: {type(item).__name__}", field=where)
    return tuple(parts)


async def _store_blob(item: Mapping[str, Any], where: str, put_blob: PutBlob) -> BlobPart:
    data = item["data"]
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InputError(f"{where}.data: must be bytes", field=f"{where}.data")
    data = bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    content_type = item.get("content_type") or "application/octet-stream"
    uri = await put_blob(data, digest, content_type, item.get("name"))
    return BlobPart(
        uri=uri, content_type=content_type, size=len(data), sha256=digest, name=item.get("name")
    )
