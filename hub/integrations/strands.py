"""Strands sessions kept in Agent Hub (``pip install 'agent-hub[strands]'``).

A Strands session is a root thread; each of its agents is a thread forked from it, named
``{session_id}/{agent_id}``. Strands' message indexes are the thread's seqs minus one.
Agent state goes in ``AgentStateSaved`` events. A redaction becomes ``MessageRedacted``
with the redacted content shown instead. Images and documents go to the blob store by
reference; other blocks (reasoning, cache points, citations) are kept as they were.

    from hub.integrations.strands import HubSessionManager
    agent = Agent(model=..., session_manager=HubSessionManager(session_id="s1"))
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from strands.session.repository_session_manager import RepositorySessionManager
from strands.session.session_repository import SessionRepository
from strands.types.session import (
    Session,
    SessionAgent,
    SessionMessage,
    SessionType,
    decode_bytes_values,
    encode_bytes_values,
)

from hub.bridge import SyncHub, sync_hub
from hub.sessions.models import Message
from hub.settings import HubSettings
from schemas.errors import NotFoundError

if TYPE_CHECKING:
    from hub.client import Hub

__all__ = ["HubSessionManager", "HubSessionRepository"]

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


def _agent_thread(session_id: str, agent_id: str) -> str:
    return f"{session_id}/{agent_id}"


def _to_parts(message: Mapping[str, Any]) -> list[dict[str, Any]]:
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


async def _from_parts(hub: Hub, parts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
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


class HubSessionRepository(SessionRepository):
    """Strands' ``SessionRepository`` over ``hub.sessions``."""

    def __init__(self, hub: SyncHub | None = None, *, settings: HubSettings | None = None) -> None:
        self.hub = hub or sync_hub(settings)
        self._ids: dict[tuple[str, str, int], UUID] = {}

    # ── sessions ────────────────────────────────────────────────────────────────────────

    def create_session(self, session: Session, **kwargs: Any) -> Session:
        async def create(hub: Hub) -> None:
            await hub.sessions.start_thread(
                thread_id=session.session_id,
                agent_id="strands",
                title=session.session_id,
                metadata={"strands": {"session_type": str(session.session_type.value)}},
            )

        self.hub.call(create)
        return session

    def read_session(self, session_id: str, **kwargs: Any) -> Session | None:
        info = self.hub.call(lambda hub: hub.sessions.get(session_id))
        if info is None:
            return None
        kind = info.metadata.get("strands", {}).get("session_type", "AGENT")
        return Session(
            session_id=session_id,
            session_type=SessionType(kind),
            created_at=info.created_at.isoformat(),
            updated_at=info.updated_at.isoformat(),
        )

    def fork_session(self, session_id: str, new_session_id: str) -> Session:
        """A copy-on-write fork of a whole session (every agent's thread, at its head)."""

        async def fork(hub: Hub) -> None:
            s = hub.sessions
            source = await s.get(session_id)
            if source is None:
                raise NotFoundError(f"no Strands session {session_id!r}")
            await s.start_thread(
                thread_id=new_session_id,
                agent_id="strands",
                title=new_session_id,
                metadata={**source.metadata, "forked_from_session": session_id},
            )
            tree = await s.tree(session_id)
            for child in tree.children:
                agent_id = child.thread_id.removeprefix(f"{session_id}/")
                await s.fork(child.thread_id, new_thread_id=_agent_thread(new_session_id, agent_id))
                state = await s.agent_state(child.thread_id)
                if state is not None:
                    await s.save_agent_state(
                        _agent_thread(new_session_id, agent_id), agent_id, state["state"]
                    )

        self.hub.call(fork)
        session = self.read_session(new_session_id)
        assert session is not None
        return session

    # ── agents ──────────────────────────────────────────────────────────────────────────

    def create_agent(self, session_id: str, session_agent: SessionAgent, **kwargs: Any) -> None:
        thread_id = _agent_thread(session_id, session_agent.agent_id)

        async def create(hub: Hub) -> None:
            await hub.sessions.fork(
                session_id, new_thread_id=thread_id, title=session_agent.agent_id
            )
            await hub.sessions.save_agent_state(
                thread_id, session_agent.agent_id, session_agent.to_dict()
            )

        self.hub.call(create)

    def read_agent(self, session_id: str, agent_id: str, **kwargs: Any) -> SessionAgent | None:
        thread_id = _agent_thread(session_id, agent_id)

        async def read(hub: Hub) -> dict[str, Any] | None:
            if await hub.sessions.get(thread_id) is None:
                return None
            return await hub.sessions.agent_state(thread_id)

        saved = self.hub.call(read)
        return SessionAgent.from_dict(saved["state"]) if saved else None

    def update_agent(self, session_id: str, session_agent: SessionAgent, **kwargs: Any) -> None:
        thread_id = _agent_thread(session_id, session_agent.agent_id)
        self.hub.call(
            lambda hub: hub.sessions.save_agent_state(
                thread_id, session_agent.agent_id, session_agent.to_dict()
            )
        )

    # ── messages ────────────────────────────────────────────────────────────────────────

    def create_message(
        self, session_id: str, agent_id: str, session_message: SessionMessage, **kwargs: Any
    ) -> None:
        message = session_message.message
        extras = {
            k: encode_bytes_values(v) for k, v in message.items() if k not in ("role", "content")
        }
        metadata: dict[str, Any] = {"strands_index": session_message.message_id}
        if extras:
            metadata["strands_extras"] = extras
        thread_id = _agent_thread(session_id, agent_id)
        message_id = self.hub.call(
            lambda hub: hub.sessions.append(
                thread_id, message["role"], _to_parts(message), metadata=metadata
            )
        )
        self._ids[(session_id, agent_id, session_message.message_id)] = message_id

    async def _read(
        self, hub: Hub, session_id: str, agent_id: str, *, offset: int, limit: int
    ) -> list[SessionMessage]:
        thread_id = _agent_thread(session_id, agent_id)
        if await hub.sessions.get(thread_id) is None:
            return []
        found = await hub.sessions.messages(thread_id, after=offset, limit=limit)
        return [await self._session_message(hub, m) for m in found]

    async def _session_message(self, hub: Hub, m: Message) -> SessionMessage:
        content: Any = {"role": m.role, "content": await _from_parts(hub, m.parts)}
        content.update(decode_bytes_values(m.metadata.get("strands_extras", {})))
        created = m.created_at.isoformat()
        redacted = content if m.redacted else None  # the original is gone: show its replacement
        return SessionMessage(
            content, m.seq - 1, redact_message=redacted, created_at=created, updated_at=created
        )

    def read_message(
        self, session_id: str, agent_id: str, message_id: int, **kwargs: Any
    ) -> SessionMessage | None:
        found = self.hub.call(
            lambda hub: self._read(hub, session_id, agent_id, offset=message_id, limit=1)
        )
        return found[0] if found else None

    def update_message(
        self, session_id: str, agent_id: str, session_message: SessionMessage, **kwargs: Any
    ) -> None:
        if session_message.redact_message is None:
            return  # Strands only updates a message to redact it
        thread_id = _agent_thread(session_id, agent_id)
        index = session_message.message_id
        text = "\n".join(
            b["text"] for b in session_message.redact_message.get("content", []) if "text" in b
        )

        async def redact(hub: Hub) -> None:
            target = self._ids.get((session_id, agent_id, index))
            if target is None:
                found = await hub.sessions.messages(thread_id, after=index, limit=1)
                if not found:
                    raise NotFoundError(f"no message {index} in {thread_id!r}")
                target = found[0].message_id
            await hub.sessions.redact(
                thread_id, target, reason="redacted by Strands", replacement=text or None
            )

        self.hub.call(redact)

    def list_messages(
        self,
        session_id: str,
        agent_id: str,
        limit: int | None = None,
        offset: int = 0,
        **kwargs: Any,
    ) -> list[SessionMessage]:
        return self.hub.call(
            lambda hub: self._read(hub, session_id, agent_id, offset=offset, limit=limit or 10_000)
        )


class HubSessionManager(RepositorySessionManager):
    """Strands' ``RepositorySessionManager`` over Agent Hub."""

    def __init__(
        self,
        session_id: str,
        *,
        hub: SyncHub | None = None,
        settings: HubSettings | None = None,
        **kwargs: Any,
    ) -> None:
        self.repository = HubSessionRepository(hub, settings=settings)
        super().__init__(session_id=session_id, session_repository=self.repository, **kwargs)

    def fork(self, new_session_id: str) -> HubSessionManager:
        """A manager for a copy-on-write fork of this session; the original is untouched."""
        self.repository.fork_session(self.session_id, new_session_id)
        return HubSessionManager(new_session_id, hub=self.repository.hub)
