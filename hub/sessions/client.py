"""``hub.sessions``: conversations as events, with O(1) forks, time travel and search.

Writes are events on ``agenthub.sessions``, keyed by the thread family's root, so a family
is totally ordered. Reads come from the ``sessions`` projection after waiting for this
client's own writes. Everything is checked before anything is produced: the thread must
exist, a fork point must be in the thread, a message must fit the size limit, and binary
content goes to the blob store as a reference.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from pydantic import ValidationError as PydanticValidationError

from hub.core.inputs import build_event, reject_unknown
from hub.infra.ports import Position, ProducerRecord
from hub.sessions.content import message_parts
from hub.sessions.models import (
    Message,
    ThreadInfo,
    ThreadSnapshot,
    ThreadStats,
    TreeNode,
)
from hub.sessions.windows import Tokenizer
from projections.sessions import queries
from schemas.codec import pydantic_error_field
from schemas.errors import InputError, NotFoundError
from schemas.events import (
    AgentStateSaved,
    Event,
    MessageAppended,
    MessageRedacted,
    Part,
    TextPart,
    ThreadArchived,
    ThreadForked,
    ThreadRenamed,
    ThreadStarted,
    ThreadUnarchived,
    TokenUsage,
)
from schemas.ids import uuid7
from schemas.text_messages import TextMessages

if TYPE_CHECKING:
    from hub.core.context import HubContext

from hub.sessions.reads import SessionReader

__all__ = ["SessionsClient", "Thread"]

ROLES = ("user", "assistant", "system", "tool")


MAX_KNOWN_THREADS = 10_000
"""How many threads' text encoders a client keeps (all are forgotten when it fills up)."""


class SessionsClient(SessionReader):
    """Threads and messages, as ``hub.sessions``: writes here, reads in :class:`SessionReader`."""

    def __init__(self, ctx: HubContext) -> None:
        super().__init__(ctx)
        # per (thread, root): its plain text messages' encoder and the record of one, made
        # from an event built and checked the usual way (the envelope does not change)
        self._texts: dict[tuple[str, str], tuple[TextMessages, ProducerRecord]] = {}

    async def _emit(self, *events: Event) -> builtins.list[Position]:
        return await self._ctx.emit(*events)

    async def _parts(self, content: Any, field: str = "content") -> tuple[Part, ...]:
        return await message_parts(content, field, self._put_blob)

    async def _put_blob(self, data: bytes, digest: str, content_type: str, name: str | None) -> str:
        """Store a message blob under its digest (once per tenant); its URI."""
        store = await self._ctx.blob_store()
        key = f"blobs/{self._ctx.tenant}/{digest[:2]}/{digest}"
        if await store.exists(key):
            return store.uri(key)
        return await store.put(key, data, content_type=content_type)

    def _record(self, event: MessageAppended) -> ProducerRecord:
        """The log record of a message, refused if it is over the message size limit."""
        limit = self._ctx.settings.max_message_bytes

        def too_large(size: int) -> InputError:
            return InputError(
                f"content: message is {size} bytes, over the {limit}-byte limit "
                "(HUB_MAX_MESSAGE_BYTES); send large or binary content as a blob part",
                field="content",
            )

        return self._ctx.producer.record(event, max_bytes=limit, too_large=too_large)

    # ── writing ─────────────────────────────────────────────────────────────────────────

    async def start_thread(
        self,
        *,
        agent_id: str,
        user_id: str | None = None,
        title: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        thread_id: str | None = None,
        **unknown: Any,
    ) -> Thread:
        """A new thread (its id is generated unless you give one)."""
        reject_unknown(unknown)
        given = thread_id is not None  # a fresh UUIDv7 needs no existence check
        thread_id = thread_id or str(uuid7())
        event = build_event(
            ThreadStarted,
            **self._ctx.envelope(),
            root_thread_id=thread_id,
            thread_id=thread_id,
            agent_id=agent_id,
            user_id=user_id,
            title=title,
            metadata=dict(metadata or {}),
        )
        if given and (thread_id in self._roots or await self.get(thread_id) is not None):
            raise InputError(f"thread_id: thread {thread_id!r} exists already", field="thread_id")
        await self._emit(event)
        self._roots[thread_id] = thread_id
        return Thread(self, thread_id)

    async def _message(
        self, thread_id: str, root: str, spec: Mapping[str, Any]
    ) -> tuple[MessageAppended, ProducerRecord]:
        spec = dict(spec)
        role = spec.pop("role", None)
        if role not in ROLES:
            raise InputError(f"role: must be one of {', '.join(ROLES)}, not {role!r}", field="role")
        content = spec.pop("content", None)
        usage = spec.pop("usage", None)
        fields = {
            "model": spec.pop("model", None),
            "metadata": dict(spec.pop("metadata", None) or {}),
            "message_id": spec.pop("message_id", None) or uuid7(),
        }
        reject_unknown(spec)
        if isinstance(fields["message_id"], str):
            try:
                fields["message_id"] = UUID(fields["message_id"])
            except ValueError:
                raise InputError("message_id: not a UUID", field="message_id") from None
        if isinstance(usage, Mapping):
            usage = build_event_part(TokenUsage, usage, "usage")
        event = build_event(
            MessageAppended,
            **self._ctx.envelope(),
            root_thread_id=root,
            thread_id=thread_id,
            role=role,
            parts=await self._parts(content),
            usage=usage,
            **fields,
        )
        assert isinstance(event, MessageAppended)
        return event, self._record(event)

    async def append(
        self,
        thread_id: str,
        role: str,
        content: Any,
        *,
        model: str | None = None,
        usage: Mapping[str, int] | TokenUsage | None = None,
        metadata: Mapping[str, Any] | None = None,
        message_id: UUID | str | None = None,
        **unknown: Any,
    ) -> UUID:
        """Append one message; returns its id. ``content``: a string or a list of parts."""
        reject_unknown(unknown)
        spec = {
            "role": role,
            "content": content,
            "model": model,
            "usage": usage,
            "metadata": metadata,
            "message_id": message_id,
        }
        return (await self.append_many(thread_id, [spec]))[0]

    async def append_many(
        self, thread_id: str, messages: Sequence[Mapping[str, Any]]
    ) -> builtins.list[UUID]:
        """Append several messages in order, all or none (each a dict like ``append``'s)."""
        root = await self._root_of(thread_id)
        ids: builtins.list[UUID] = []
        records: builtins.list[ProducerRecord] = []
        # plain texts in one pass, once the thread's envelope was checked by an event built
        # the usual way (in this batch or an earlier one)
        texts, like_first = self._texts.get((thread_id, root), (None, None))
        if texts is not None:
            texts = texts.for_batch(len(messages))
        limit = min(self._ctx.settings.max_message_bytes, self._ctx.producer.max_event_bytes)
        for i, spec in enumerate(messages):
            fast = texts.encode(spec) if texts is not None else None
            if fast is not None and len(fast[1]) <= limit:
                assert like_first is not None
                ids.append(fast[0])
                records.append(
                    ProducerRecord(like_first.topic, like_first.key, fast[1], like_first.headers)
                )
                continue
            try:
                event, record = await self._message(thread_id, root, spec)
            except InputError as exc:  # name the failing message: nothing was sent
                if len(messages) == 1:
                    raise
                field = f"messages.{i}.{exc.field}" if exc.field else f"messages.{i}"
                raise InputError(f"messages.{i}: {exc.message}", field=field) from None
            ids.append(event.message_id)
            records.append(record)
            if texts is None:
                codec, expected = self._ctx.producer.codec, len(messages) - i - 1
                like_first, texts = record, TextMessages(codec, event, expected)
                if len(self._texts) >= MAX_KNOWN_THREADS:
                    self._texts.clear()
                self._texts[(thread_id, root)] = (texts, record)
        await self._send_messages(records)
        return ids

    async def _send_messages(self, records: builtins.list[ProducerRecord]) -> None:
        await self._ctx.producer.send(records)

    async def fork(
        self,
        thread_id: str,
        at_message_id: UUID | str | None = None,
        *,
        title: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        new_thread_id: str | None = None,
        inclusive: bool = True,
        agent_state: tuple[str, Mapping[str, Any]] | None = None,
    ) -> Thread:
        """A new thread holding ``thread_id``'s messages up to and including
        ``at_message_id`` (``None``: all of them), then its own. O(1) whatever the length.

        ``inclusive=False`` ends the fork just before ``at_message_id``. ``agent_state``
        (an agent id and its state) is saved with the fork, in the same write."""
        root = await self._root_of(thread_id)
        at = await self._check_in_thread(thread_id, at_message_id) if at_message_id else None
        new_id = new_thread_id or str(uuid7())
        event = self._build(
            ThreadForked,
            new_id,
            root,
            source_thread_id=thread_id,
            at_message_id=at,
            inclusive=inclusive,
            title=title,
            metadata=dict(metadata or {}),
        )
        if new_thread_id is not None and await self.get(new_thread_id) is not None:
            raise InputError(
                f"new_thread_id: thread {new_thread_id!r} exists already", field="new_thread_id"
            )
        events = [event]
        if agent_state is not None:
            agent_id, state = agent_state[0], dict(agent_state[1])
            events.append(
                self._build(AgentStateSaved, new_id, root, agent_id=agent_id, state=state)
            )
        await self._emit(*events)
        self._roots[new_id] = root
        return Thread(self, new_id)

    async def branch(
        self, thread_id: str, from_message_id: UUID | str, *, title: str | None = None
    ) -> Thread:
        """Branch from a message: a fork at that message."""
        return await self.fork(thread_id, from_message_id, title=title)

    async def edit(
        self, thread_id: str, message_id: UUID | str, new_content: Any, *, title: str | None = None
    ) -> Thread:
        """Edit a message: fork just before it and append the new content there.

        Returns the new branch; the original thread is left as it was."""
        target = await self._check_in_thread(thread_id, message_id)
        original = await self._message_at(thread_id, target)
        fork = await self.fork(thread_id, target, title=title, inclusive=False)
        await fork.append(original.role, new_content, metadata={"edited_from": str(target)})
        return fork

    async def rename(self, thread_id: str, title: str) -> None:
        await self._simple(ThreadRenamed, thread_id, title=title)

    async def archive(self, thread_id: str) -> None:
        await self._simple(ThreadArchived, thread_id)

    async def unarchive(self, thread_id: str) -> None:
        await self._simple(ThreadUnarchived, thread_id)

    async def save_agent_state(
        self, thread_id: str, agent_id: str, state: Mapping[str, Any]
    ) -> None:
        """Keep a framework's agent state with the thread (the latest one is read back)."""
        await self._simple(AgentStateSaved, thread_id, agent_id=agent_id, state=dict(state))

    async def redact(
        self,
        thread_id: str,
        message_id: UUID | str,
        *,
        reason: str | None = None,
        replacement: str | Sequence[Any] | None = None,
    ) -> None:
        """Remove a message's content from the read models (optionally show
        ``replacement`` instead: a text, or parts as ``append`` takes them)."""
        target = await self._check_in_thread(thread_id, message_id)
        parts = await self._parts(replacement, "replacement") if replacement else ()
        shown = (  # text only: the v1 field, which every reader shows
            {"replacement": parts}
            if all(isinstance(p, TextPart) for p in parts)
            else {"replacement_parts": parts}
        )
        await self._simple(MessageRedacted, thread_id, message_id=target, reason=reason, **shown)

    async def _simple(self, cls: type[Event], thread_id: str, **fields: Any) -> None:
        await self._emit(self._build(cls, thread_id, await self._root_of(thread_id), **fields))

    def _build(self, cls: type[Event], thread_id: str, root: str, **fields: Any) -> Event:
        envelope = self._ctx.envelope()
        return build_event(cls, **envelope, root_thread_id=root, thread_id=thread_id, **fields)

    async def _check_in_thread(self, thread_id: str, message_id: UUID | str) -> UUID:
        """``message_id`` as a UUID, if ``thread_id`` shows it; else an error."""
        return (await self.message(thread_id, message_id)).message_id

    async def _message_at(self, thread_id: str, message_id: UUID) -> Message:
        return await self.message(thread_id, message_id)

    async def message(self, thread_id: str, message_id: UUID | str) -> Message:
        """One message as ``thread_id`` shows it (its own, or an ancestor's before the
        fork); :class:`NotFoundError` if the thread does not show it."""
        try:
            target = message_id if isinstance(message_id, UUID) else UUID(str(message_id))
        except ValueError:
            raise InputError("message_id: not a UUID", field="message_id") from None
        await self._root_of(thread_id)
        await self._settled_for(thread_id)
        found = await self._ctx.pool.fetchrow(queries.FIND_MESSAGE, self._ctx.tenant, target)
        if found is not None:
            window = await self.messages(thread_id, after=found["seq"] - 1, limit=1)
            if window and window[0].message_id == target:
                return window[0]
        raise NotFoundError(f"message {target} is not in thread {thread_id!r}")


def build_event_part(cls: type[TokenUsage], data: Mapping[str, Any], where: str) -> TokenUsage:
    if not isinstance(data, Mapping):
        raise InputError(f"{where}: expected a mapping, got {type(data).__name__}", field=where)
    try:
        return cls.model_validate(dict(data))
    except PydanticValidationError as exc:
        loc, msg = pydantic_error_field(exc)
        field = f"{where}.{loc}" if loc else where
        raise InputError(f"{field}: {msg}", field=field) from None


class Thread:
    """A thread, for calling the sessions API without repeating its id."""

    def __init__(self, client: SessionsClient, thread_id: str) -> None:
        self.client = client
        self.thread_id = thread_id

    def __repr__(self) -> str:
        return f"Thread({self.thread_id!r})"

    async def append(self, role: str, content: Any, **kw: Any) -> UUID:
        return await self.client.append(self.thread_id, role, content, **kw)

    async def append_many(self, messages: Sequence[Mapping[str, Any]]) -> list[UUID]:
        return await self.client.append_many(self.thread_id, messages)

    async def fork(self, at_message_id: UUID | str | None = None, **kw: Any) -> Thread:
        return await self.client.fork(self.thread_id, at_message_id, **kw)

    async def edit(self, message_id: UUID | str, new_content: Any, **kw: Any) -> Thread:
        return await self.client.edit(self.thread_id, message_id, new_content, **kw)

    async def info(self) -> ThreadInfo:
        return await self.client._info(self.thread_id)

    async def messages(self, **kw: Any) -> list[Message]:
        return await self.client.messages(self.thread_id, **kw)

    async def stats(self) -> ThreadStats:
        return await self.client.stats(self.thread_id)

    async def tree(self) -> TreeNode:
        return await self.client.tree(self.thread_id)

    async def rename(self, title: str) -> None:
        await self.client.rename(self.thread_id, title)

    async def archive(self) -> None:
        await self.client.archive(self.thread_id)

    async def unarchive(self) -> None:
        await self.client.unarchive(self.thread_id)

    async def as_of(self, at: datetime | int | Position) -> ThreadSnapshot:
        return await self.client.as_of(self.thread_id, at)

    async def last_n(self, n: int) -> list[Message]:
        return await self.client.last_n(self.thread_id, n)

    async def first_last(self, first: int, last: int) -> list[Message]:
        return await self.client.first_last(self.thread_id, first, last)

    async def token_window(
        self, max_tokens: int, *, tokenizer: Tokenizer | None = None
    ) -> list[Message]:
        return await self.client.token_window(self.thread_id, max_tokens, tokenizer=tokenizer)
