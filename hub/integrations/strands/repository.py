"""Strands' ``SessionRepository`` over ``hub.sessions``, behaving as Strands' own
``FileSessionManager`` does for every method: the same ids refused, the same
``SessionException``\\s, Strands' own timestamps kept, and multi-agent state (Swarm,
Graph).

Layout: a session is a root thread named by its id; each agent is a thread forked from
it, ``{session_id}/{agent_id}``; a Swarm's or Graph's state is a thread
``{session_id}/multi_agents/{id}``. Ids are checked as Strands checks them (no path
separators), so these names never collide. A Strands message index is its thread's seq
minus one. Agent and multi-agent state go in ``AgentStateSaved`` events; a message
update becomes ``MessageRedacted`` showing the new content, whatever its blocks (the old
content is gone from the read models, as a redaction must make it).

What this repository wrote it also remembers (sessions, the latest agent and multi-agent
states, each agent's message count), so Strands' reads after its own writes and its
appends do not wait for the projection. Like Strands' own stores, it expects one writer
per session at a time.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from strands.session.session_repository import SessionRepository
from strands.types.exceptions import SessionException
from strands.types.session import (
    Session,
    SessionAgent,
    SessionMessage,
    SessionType,
    decode_bytes_values,
    encode_bytes_values,
)

from hub.bridge import SyncHub, sync_hub
from hub.integrations.strands.content import from_parts, to_parts
from hub.sessions.content import as_content
from hub.sessions.models import Message
from hub.settings import HubSettings
from schemas.errors import InputError, NotFoundError

if TYPE_CHECKING:
    from strands.multiagent.base import MultiAgentBase

    from hub.client import Hub

__all__ = ["HubSessionRepository"]

SESSION_AGENT = "strands"  # the agent_id of a session's root thread
MULTI_AGENTS = "multi_agents"
PAGE = 10_000  # the most messages one read returns


def checked(id_: str, kind: str) -> str:
    """An id as Strands checks it (``strands._identifier.validate``): no path separators,
    or ``ValueError``."""
    if os.path.basename(id_) != id_:
        raise ValueError(f"{kind}_id={id_} | id cannot contain path separators")
    return id_


def session_thread(session_id: str) -> str:
    return checked(session_id, "session")


def agent_thread(session_id: str, agent_id: str) -> str:
    return f"{session_thread(session_id)}/{checked(agent_id, 'agent')}"


def multi_agent_thread(session_id: str, multi_agent_id: str) -> str:
    multi = checked(multi_agent_id, "agent")
    return f"{session_thread(session_id)}/{MULTI_AGENTS}/{multi}"


def _index(message_id: Any) -> int:
    if not isinstance(message_id, int) or isinstance(message_id, bool):
        raise ValueError(f"message_id=<{message_id}> | message id must be an integer")
    return message_id


class HubSessionRepository(SessionRepository):
    """Strands' ``SessionRepository`` over ``hub.sessions``."""

    def __init__(self, hub: SyncHub | None = None, *, settings: HubSettings | None = None) -> None:
        self.hub = hub or sync_hub(settings)
        self._sessions: dict[str, dict[str, Any]] = {}  # session thread -> Session.to_dict()
        self._states: dict[str, dict[str, Any]] = {}  # thread -> its latest state
        self._counts: dict[str, int] = {}  # agent thread -> its number of messages

    # ── sessions ────────────────────────────────────────────────────────────────────────

    def create_session(self, session: Session, **kwargs: Any) -> Session:
        thread_id = session_thread(session.session_id)

        async def create(hub: Hub) -> None:
            if thread_id in self._sessions:
                raise SessionException(f"Session {session.session_id} already exists")
            try:  # start_thread refuses a thread id that exists: one read, not two
                await hub.sessions.start_thread(
                    thread_id=thread_id,
                    agent_id=SESSION_AGENT,
                    title=session.session_id,
                    metadata={"strands": {"session": session.to_dict()}},
                )
            except InputError:
                if await hub.sessions.get(thread_id) is not None:
                    raise SessionException(f"Session {session.session_id} already exists") from None
                raise

        self.hub.call(create)
        self._sessions[thread_id] = session.to_dict()
        return session

    def read_session(self, session_id: str, **kwargs: Any) -> Session | None:
        thread_id = session_thread(session_id)
        if thread_id in self._sessions:
            return Session.from_dict(self._sessions[thread_id])
        info = self.hub.call(lambda hub: hub.sessions.get(thread_id))
        strands = info.metadata.get("strands") if info is not None else None
        if info is None or info.parent_id is not None or not isinstance(strands, dict):
            return None  # not a Strands session (an agent's thread is never one)
        if "session" in strands:
            self._sessions[thread_id] = strands["session"]
            return Session.from_dict(strands["session"])
        return Session(  # written before Strands' own fields were kept
            session_id=session_id,
            session_type=SessionType(strands.get("session_type", "AGENT")),
            created_at=info.created_at.isoformat(),
            updated_at=info.updated_at.isoformat(),
        )

    def fork_session(self, session_id: str, new_session_id: str) -> Session:
        """A copy-on-write fork of a whole session (every agent's thread at its head, and
        the multi-agent states)."""
        source_id, new_id = session_thread(session_id), session_thread(new_session_id)
        source_session = self.read_session(session_id)
        if source_session is None:
            raise SessionException(f"Session {session_id} does not exist")
        forked = Session.from_dict({**source_session.to_dict(), "session_id": new_session_id})

        async def fork(hub: Hub) -> None:
            s = hub.sessions
            source = await s.get(source_id)
            assert source is not None
            if await s.get(new_id) is not None:
                raise SessionException(f"Session {new_session_id} already exists")
            strands = {**source.metadata.get("strands", {}), "session": forked.to_dict()}
            await s.start_thread(
                thread_id=new_id,
                agent_id=SESSION_AGENT,
                title=new_session_id,
                metadata={**source.metadata, "strands": strands, "forked_from_session": session_id},
            )
            for child in (await s.tree(source_id)).children:
                new_child = new_id + child.thread_id.removeprefix(source_id)
                state = await s.agent_state(child.thread_id)
                await s.fork(  # the thread and its state in one write
                    child.thread_id,
                    new_thread_id=new_child,
                    agent_state=(state["agent_id"], state["state"]) if state else None,
                )

        self.hub.call(fork)
        self._sessions[new_id] = forked.to_dict()
        return forked

    # ── agents and multi-agent state ────────────────────────────────────────────────────

    async def _save_state(
        self, hub: Hub, session_id: str, thread_id: str, owner: str, state: Mapping[str, Any]
    ) -> None:
        """``state`` as the latest of ``thread_id`` (a thread forked from the session,
        made if it is new)."""
        encoded = encode_bytes_values(dict(state))
        if thread_id in self._states or not await self._forked(
            hub, session_id, thread_id, owner, encoded
        ):
            await hub.sessions.save_agent_state(thread_id, owner, encoded)
        self._states[thread_id] = dict(state)

    async def _forked(
        self, hub: Hub, session_id: str, thread_id: str, owner: str, state: dict[str, Any]
    ) -> bool:
        """Whether ``thread_id`` was made now, forked from the session with its first
        ``state`` in one write (``False``: it exists already)."""
        session = session_thread(session_id)
        if session not in self._sessions and await hub.sessions.get(session) is None:
            raise SessionException(f"Session {session_id} does not exist")
        try:  # fork refuses a thread id that exists: one read, not two
            await hub.sessions.fork(
                session_id, new_thread_id=thread_id, title=owner, agent_state=(owner, state)
            )
        except InputError:
            if await hub.sessions.get(thread_id) is None:
                raise
            return False
        self._counts[thread_id] = 0
        return True

    async def _state(self, hub: Hub, thread_id: str) -> dict[str, Any] | None:
        if thread_id in self._states:
            return copy.deepcopy(self._states[thread_id])
        try:  # one read: a missing thread is an error of agent_state's own
            saved = await hub.sessions.agent_state(thread_id)
        except NotFoundError:
            return None
        if saved is None:
            return None
        self._states[thread_id] = decode_bytes_values(saved["state"])
        return copy.deepcopy(self._states[thread_id])

    def create_agent(self, session_id: str, session_agent: SessionAgent, **kwargs: Any) -> None:
        thread_id = agent_thread(session_id, session_agent.agent_id)
        state = session_agent.to_dict()
        self.hub.call(
            lambda hub: self._save_state(hub, session_id, thread_id, session_agent.agent_id, state)
        )

    def read_agent(self, session_id: str, agent_id: str, **kwargs: Any) -> SessionAgent | None:
        thread_id = agent_thread(session_id, agent_id)
        state = self.hub.call(lambda hub: self._state(hub, thread_id))
        return SessionAgent.from_dict(state) if state is not None else None

    def update_agent(self, session_id: str, session_agent: SessionAgent, **kwargs: Any) -> None:
        known = self._states.get(agent_thread(session_id, session_agent.agent_id))
        if known is not None:  # what this repository wrote or read: no round trip
            created_at = known["created_at"]
        elif (previous := self.read_agent(session_id, session_agent.agent_id)) is not None:
            created_at = previous.created_at
        else:
            raise SessionException(
                f"Agent {session_agent.agent_id} in session {session_id} does not exist"
            )
        session_agent.created_at = created_at
        self.create_agent(session_id, session_agent)

    def create_multi_agent(
        self, session_id: str, multi_agent: MultiAgentBase, **kwargs: Any
    ) -> None:
        thread_id = multi_agent_thread(session_id, multi_agent.id)
        state = multi_agent.serialize_state()
        self.hub.call(
            lambda hub: self._save_state(hub, session_id, thread_id, multi_agent.id, state)
        )

    def read_multi_agent(
        self, session_id: str, multi_agent_id: str, **kwargs: Any
    ) -> dict[str, Any] | None:
        thread_id = multi_agent_thread(session_id, multi_agent_id)
        return self.hub.call(lambda hub: self._state(hub, thread_id))

    def update_multi_agent(
        self, session_id: str, multi_agent: MultiAgentBase, **kwargs: Any
    ) -> None:
        if self.read_multi_agent(session_id, multi_agent.id) is None:
            raise SessionException(
                f"MultiAgent state {multi_agent.id} in session {session_id} does not exist"
            )
        self.create_multi_agent(session_id, multi_agent)

    # ── messages ────────────────────────────────────────────────────────────────────────

    def create_message(
        self, session_id: str, agent_id: str, session_message: SessionMessage, **kwargs: Any
    ) -> None:
        """Append the message at its index; a message already at that index is replaced,
        as Strands' file store overwrites it. An index past the end is refused (the hub
        keeps a conversation without gaps)."""
        thread_id = agent_thread(session_id, agent_id)
        index = _index(session_message.message_id)

        async def create(hub: Hub) -> None:
            count = self._counts.get(thread_id)
            if count is None:
                info = await hub.sessions.get(thread_id)
                if info is None:
                    raise SessionException(
                        f"Agent {agent_id} in session {session_id} does not exist"
                    )
                count = self._counts[thread_id] = info.message_count
            if index < count:
                await self._update(hub, session_id, agent_id, session_message, keep_created=False)
                return
            if index > count:
                raise SessionException(
                    f"Message {index} of agent {agent_id} would leave a gap: the agent has "
                    f"{count} messages"
                )
            message = session_message.message
            await hub.sessions.append(
                thread_id,
                message["role"],
                as_content(to_parts(message)),
                metadata=_metadata(session_message, _extras(message)),
            )
            self._counts[thread_id] = count + 1
            if session_message.redact_message is not None:
                await self._update(hub, session_id, agent_id, session_message, keep_created=True)

        self.hub.call(create)

    async def _at(self, hub: Hub, thread_id: str, index: int) -> Message | None:
        """The message at a Strands index; ``None`` if it, or the agent's thread, is missing."""
        if index < 0:
            return None
        try:  # a missing thread is an error of messages' own
            found = await hub.sessions.messages(thread_id, after=index, limit=1)
        except NotFoundError:
            return None
        return found[0] if found and found[0].seq == index + 1 else None

    async def _session_message(self, hub: Hub, m: Message) -> SessionMessage:
        content: Any = {"role": m.role, "content": await from_parts(hub, m.parts)}
        content.update(decode_bytes_values(m.metadata.get("strands_extras", {})))
        strands = m.metadata.get("strands", {})
        created = strands.get("created_at") or m.created_at.isoformat()
        updated = strands.get("updated_at") or created
        redacted = content if m.redacted else None  # the original is gone: show its replacement
        return SessionMessage(
            content, m.seq - 1, redact_message=redacted, created_at=created, updated_at=updated
        )

    def read_message(
        self, session_id: str, agent_id: str, message_id: int, **kwargs: Any
    ) -> SessionMessage | None:
        thread_id = agent_thread(session_id, agent_id)
        index = _index(message_id)

        async def read(hub: Hub) -> SessionMessage | None:
            found = await self._at(hub, thread_id, index)
            return await self._session_message(hub, found) if found is not None else None

        return self.hub.call(read)

    def update_message(
        self, session_id: str, agent_id: str, session_message: SessionMessage, **kwargs: Any
    ) -> None:
        """The message at its index now shows ``session_message.to_message()`` (a
        redaction's content, or an alias record Strands rewrites after one)."""
        self.hub.call(
            lambda hub: self._update(hub, session_id, agent_id, session_message, keep_created=True)
        )

    async def _update(
        self,
        hub: Hub,
        session_id: str,
        agent_id: str,
        session_message: SessionMessage,
        *,
        keep_created: bool,
    ) -> None:
        thread_id = agent_thread(session_id, agent_id)
        index = _index(session_message.message_id)
        stored = await self._at(hub, thread_id, index)
        if stored is None:
            raise SessionException(f"Message {index} does not exist")
        previous = await self._session_message(hub, stored)
        if keep_created:
            session_message.created_at = previous.created_at
        # a message's role and content can change (a redaction); its other keys are kept
        # with the message as it was appended (Strands' tracking ids, usage)
        shown, before = session_message.to_message(), previous.to_message()
        if shown.get("content") == before.get("content") and shown.get("role") == stored.role:
            return  # nothing the hub shows changes
        if shown.get("role") != stored.role:
            raise SessionException(
                f"Message {index}: Agent Hub keeps a message's role ({stored.role}); this "
                f"update makes it {shown.get('role')}"
            )
        try:
            await hub.sessions.redact(
                thread_id,
                stored.message_id,
                reason="updated by Strands",
                replacement=to_parts(shown),
            )
        except NotFoundError as exc:
            raise SessionException(f"Message {index} does not exist") from exc

    def list_messages(
        self,
        session_id: str,
        agent_id: str,
        limit: int | None = None,
        offset: int = 0,
        **kwargs: Any,
    ) -> list[SessionMessage]:
        """Every message from ``offset`` (``limit`` of them, or all), however many."""
        thread_id = agent_thread(session_id, agent_id)

        async def read(hub: Hub) -> list[SessionMessage]:
            out: list[SessionMessage] = []
            after, wanted = max(offset, 0), limit
            while True:  # at least one read: a missing agent is an error even for no messages
                page_size = PAGE if wanted is None else min(PAGE, wanted - len(out))
                try:  # a missing thread is an error of messages' own
                    page = await hub.sessions.messages(
                        thread_id, after=after, limit=max(page_size, 1)
                    )
                except NotFoundError as exc:
                    raise SessionException(
                        f"Messages directory missing from agent: {agent_id} in session {session_id}"
                    ) from exc
                out += [await self._session_message(hub, m) for m in page[: max(page_size, 0)]]
                if len(page) < page_size or (wanted is not None and len(out) >= wanted):
                    return out
                after = page[-1].seq

        return self.hub.call(read)


def _metadata(session_message: SessionMessage, extras: Mapping[str, Any]) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "strands_index": session_message.message_id,
        "strands": {
            "created_at": session_message.created_at,
            "updated_at": session_message.updated_at,
        },
    }
    if extras:
        metadata["strands_extras"] = encode_bytes_values(dict(extras))
    return metadata


def _extras(message: Mapping[str, Any]) -> dict[str, Any]:
    """A Strands message's keys besides its role and content."""
    return {k: v for k, v in message.items() if k not in ("role", "content")}
