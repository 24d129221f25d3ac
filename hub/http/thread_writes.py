"""HTTP routes writing the conversation store: start a thread, append messages (one or a
batch, all or none), fork, branch, edit, rename, archive, redact, save agent state.

Retries are safe: give ``message_id``\\s (or ``thread_id``/``new_thread_id``), or send an
``Idempotency-Key`` header."""

from __future__ import annotations

import base64
import binascii
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote
from uuid import UUID

import orjson
from fastapi import Depends, FastAPI, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from hub.http.json_body import json_request_body, read_json, read_json_fast, validate
from hub.sessions.models import ThreadInfo
from schemas.errors import InputError, NotFoundError

if TYPE_CHECKING:
    from hub.client import HubScope
    from hub.http.auth import Access

__all__ = ["add_thread_write_routes"]

MAX_BATCH = 1000


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartThread(_Body):
    agent_id: str
    user_id: str | None = None
    title: str | None = None
    metadata: dict[str, Any] | None = None
    thread_id: str | None = Field(None, description="Give one to make retries safe")


class ThreadRef(BaseModel):
    thread_id: str


class MessageIn(_Body):
    role: str
    content: str | list[Any] = Field(
        description="Text, or parts: {type: text|tool_call|tool_result|data|blob, ...}; a "
        "blob part carries its bytes as data_base64"
    )
    model: str | None = None
    usage: dict[str, int] | None = None
    metadata: dict[str, Any] | None = None
    message_id: UUID | None = Field(None, description="Give one to make retries safe")


class AppendMessages(_Body):
    messages: list[MessageIn] = Field(min_length=1, max_length=MAX_BATCH)


class Appended(BaseModel):
    message_ids: list[UUID]


class ForkRequest(_Body):
    """``POST /v1/threads/{id}/fork``: where to fork (``null``: at the head)."""

    at_message_id: UUID | None = None
    title: str | None = None
    inclusive: bool = True
    metadata: dict[str, Any] | None = None
    new_thread_id: str | None = None


class BranchRequest(_Body):
    from_message_id: UUID
    title: str | None = None


class EditRequest(_Body):
    message_id: UUID
    content: str | list[Any]
    title: str | None = None


class ThreadChange(_Body):
    title: str | None = None
    archived: bool | None = None


class RedactRequest(_Body):
    reason: str | None = None
    replacement: str | list[Any] | None = Field(
        None, description="What shows instead: a text, or parts as a message's content"
    )


class SaveAgentState(_Body):
    agent_id: str
    state: dict[str, Any]


def _content(content: str | list[Any], where: str) -> str | list[Any]:
    """Content as the SDK takes it: blob parts' ``data_base64`` decoded to ``data``."""
    if isinstance(content, str):
        return content
    parts: list[Any] = []
    for i, part in enumerate(content):
        if isinstance(part, dict) and part.get("type") == "blob" and "data_base64" in part:
            encoded = part["data_base64"]
            try:
                if not isinstance(encoded, str):
                    raise ValueError
                data = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                field = f"{where}.{i}.data_base64"
                raise InputError(f"{field}: not base64", field=field) from None
            part = {k: v for k, v in part.items() if k != "data_base64"} | {"data": data}
        parts.append(part)
    return parts


_OPTIONAL = ("model", "usage", "metadata", "message_id")
if set(MessageIn.model_fields) != {"role", "content", *_OPTIONAL}:  # _spec passes each on
    raise RuntimeError("MessageIn's fields changed: update _OPTIONAL in hub/http/thread_writes.py")


def _spec(message: MessageIn, where: str) -> dict[str, Any]:
    """The message as ``append_many`` takes it (the fields given; no dump per message)."""
    spec: dict[str, Any] = {
        "role": message.role,
        "content": _content(message.content, f"{where}.content"),
    }
    for name in _OPTIONAL:
        value = getattr(message, name)
        if value is not None:
            spec[name] = value
    return spec


_PLAIN_KEYS = frozenset({"role", "content", "message_id"})
_CANONICAL_UUID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
).fullmatch


def _plain_texts(data: Any) -> list[dict[str, Any]] | None:
    """The batch's messages as they came, when each is a plain text message that
    :class:`AppendMessages` takes unchanged (a role, a string, perhaps a canonical
    ``message_id``): ``append_many`` checks the rest as it does for any caller. Anything
    else (``None``) is validated into the models first, which names a wrong field."""
    if type(data) is not dict or data.keys() != {"messages"}:
        return None
    messages = data["messages"]
    if type(messages) is not list or not 1 <= len(messages) <= MAX_BATCH:
        return None
    for m in messages:
        if (
            type(m) is not dict
            or not _PLAIN_KEYS.issuperset(m)
            or type(m.get("role")) is not str
            or type(m.get("content")) is not str
        ):
            return None
        given = m.get("message_id")
        if given is not None and (type(given) is not str or not _CANONICAL_UUID(given)):
            return None
    return messages


async def _info(hub: HubScope, thread_id: str) -> ThreadInfo:
    info = await hub.sessions.get(thread_id)
    if info is None:  # written but not readable: the projection refused it
        raise NotFoundError(f"no thread {thread_id!r}")
    return info


def add_thread_write_routes(app: FastAPI, access: Access) -> None:
    writer = Depends(access.writer)

    @app.post("/v1/threads", status_code=201)
    async def start_thread(
        body: StartThread, response: Response, hub: HubScope = writer
    ) -> ThreadRef:
        thread = await hub.sessions.start_thread(**body.model_dump())
        response.headers["Location"] = f"/v1/threads/{quote(thread.thread_id, safe='')}"
        return ThreadRef(thread_id=thread.thread_id)

    @app.post(
        "/v1/threads/{thread_id:path}/messages",
        status_code=201,
        response_model=Appended,
        openapi_extra={"requestBody": json_request_body(AppendMessages)},
    )
    async def append_messages(thread_id: str, request: Request, hub: HubScope = writer) -> Response:
        # the agents' hot write: its body (an AppendMessages) is read without a model per
        # message where every message is plain text
        specs = _plain_texts(await read_json_fast(request))
        if specs is None:
            body = validate(AppendMessages, await read_json(request))
            specs = [_spec(m, f"messages.{i}") for i, m in enumerate(body.messages)]
        ids = await hub.sessions.append_many(thread_id, specs)
        return Response(
            orjson.dumps({"message_ids": ids}), status_code=201, media_type="application/json"
        )

    @app.post("/v1/threads/{thread_id:path}/fork", status_code=201)
    async def fork_thread(
        thread_id: str, request: ForkRequest | None = None, hub: HubScope = writer
    ) -> ThreadInfo:
        body = request or ForkRequest()
        fork = await hub.sessions.fork(
            thread_id,
            body.at_message_id,
            title=body.title,
            inclusive=body.inclusive,
            metadata=body.metadata,
            new_thread_id=body.new_thread_id,
        )
        return await _info(hub, fork.thread_id)

    @app.post("/v1/threads/{thread_id:path}/branch", status_code=201)
    async def branch_thread(
        thread_id: str, body: BranchRequest, hub: HubScope = writer
    ) -> ThreadInfo:
        branch = await hub.sessions.branch(thread_id, body.from_message_id, title=body.title)
        return await _info(hub, branch.thread_id)

    @app.post("/v1/threads/{thread_id:path}/edit", status_code=201)
    async def edit_message(thread_id: str, body: EditRequest, hub: HubScope = writer) -> ThreadInfo:
        content = _content(body.content, "content")
        branch = await hub.sessions.edit(thread_id, body.message_id, content, title=body.title)
        return await _info(hub, branch.thread_id)

    @app.patch("/v1/threads/{thread_id:path}", status_code=204)
    async def change_thread(thread_id: str, body: ThreadChange, hub: HubScope = writer) -> None:
        if body.title is None and body.archived is None:
            raise InputError("give title or archived")
        if body.title is not None:
            await hub.sessions.rename(thread_id, body.title)
        if body.archived is True:
            await hub.sessions.archive(thread_id)
        elif body.archived is False:
            await hub.sessions.unarchive(thread_id)

    @app.post("/v1/threads/{thread_id:path}/messages/{message_id}/redact", status_code=204)
    async def redact_message(
        thread_id: str, message_id: UUID, body: RedactRequest | None = None, hub: HubScope = writer
    ) -> None:
        body = body or RedactRequest()
        replacement = body.replacement
        if replacement is not None:
            replacement = _content(replacement, "replacement")
        await hub.sessions.redact(
            thread_id, message_id, reason=body.reason, replacement=replacement
        )

    @app.put("/v1/threads/{thread_id:path}/agent-state", status_code=204)
    async def save_agent_state(
        thread_id: str, body: SaveAgentState, hub: HubScope = writer
    ) -> None:
        await hub.sessions.save_agent_state(thread_id, body.agent_id, body.state)
