"""Strands content blocks as hub message parts, and back.

Text, tool uses and tool results have parts of their own; images and documents go to the
blob store by reference; other blocks (reasoning, cache points, citations) are kept as
they were, in data parts."""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from strands.types.session import decode_bytes_values, encode_bytes_values

if TYPE_CHECKING:
    from hub.client import Hub

__all__ = ["from_parts", "to_parts"]

_DOCUMENT_TYPES = {
    "pdf": "application/pdf",
    "csv": "text/csv",
    "doc": "application/msword",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xls": "application/vnd.ms-excel",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "html": "text/html",
    "txt": "text/plain",
    "md": "text/markdown",
}
_DOCUMENT_FORMATS = {v: k for k, v in _DOCUMENT_TYPES.items()}


def to_parts(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Strands content blocks as hub parts (bytes still inline: the SDK stores them)."""
    parts: list[dict[str, Any]] = []
    for block in message.get("content", []):
        if "text" in block and len(block) == 1:
            parts.append({"type": "text", "text": block["text"]})
        elif "toolUse" in block:
            use = block["toolUse"]
            parts.append(
                {
                    "type": "tool_call",
                    "tool_call_id": use["toolUseId"],
                    "name": use["name"],
                    "input": encode_bytes_values(use.get("input", {})),
                }
            )
        elif "toolResult" in block:
            res = block["toolResult"]
            parts.append(
                {
                    "type": "tool_result",
                    "tool_call_id": res["toolUseId"],
                    "status": res.get("status", "success"),
                    "content": encode_bytes_values(res.get("content", [])),
                }
            )
        elif "image" in block and "bytes" in block["image"].get("source", {}):
            image = block["image"]
            parts.append(
                {
                    "type": "blob",
                    "data": image["source"]["bytes"],
                    "content_type": f"image/{image.get('format', 'png')}",
                }
            )
        elif "document" in block and "bytes" in block["document"].get("source", {}):
            doc = block["document"]
            content_type = _DOCUMENT_TYPES.get(doc.get("format", ""), "application/octet-stream")
            parts.append(
                {
                    "type": "blob",
                    "data": doc["source"]["bytes"],
                    "content_type": content_type,
                    "name": doc.get("name"),
                }
            )
        else:  # reasoning, cache points, citations...: kept as they were
            ((kind, value),) = block.items() if len(block) == 1 else (("block", block),)
            parts.append({"type": "data", "kind": kind, "data": encode_bytes_values(value)})
    return parts


async def from_parts(hub: Hub, parts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Hub parts back as Strands content blocks (blob bytes fetched from the store)."""
    blocks: list[dict[str, Any]] = []
    for part in parts:
        kind = part["type"]
        if kind == "text":
            blocks.append({"text": part["text"]})
        elif kind == "tool_call":
            blocks.append(
                {
                    "toolUse": {
                        "toolUseId": part["tool_call_id"],
                        "name": part["name"],
                        "input": decode_bytes_values(part["input"]),
                    }
                }
            )
        elif kind == "tool_result":
            blocks.append(
                {
                    "toolResult": {
                        "toolUseId": part["tool_call_id"],
                        "status": part["status"],
                        "content": decode_bytes_values(part["content"]),
                    }
                }
            )
        elif kind == "blob":
            store = await hub.runtime.blob_store()
            data = await store.get(part["uri"].removeprefix(store.url + "/"))
            content_type = part["content_type"]
            if content_type.startswith("image/"):
                blocks.append(
                    {"image": {"format": content_type.split("/", 1)[1], "source": {"bytes": data}}}
                )
            else:
                fmt = _DOCUMENT_FORMATS.get(content_type) or (
                    (mimetypes.guess_extension(content_type) or ".bin").lstrip(".")
                )
                blocks.append(
                    {
                        "document": {
                            "format": fmt,
                            "name": part.get("name") or "document",
                            "source": {"bytes": data},
                        }
                    }
                )
        elif kind == "data":
            data = decode_bytes_values(part["data"])
            blocks.append(data if part["kind"] == "block" else {part["kind"]: data})
    return blocks
