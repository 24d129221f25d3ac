"""Plain text messages encoded in one pass, without building a model per message.

Most messages an agent appends are one text and nothing else. In a batch they share
their envelope (tenant, actor, correlation, thread), so :class:`TextMessages` takes it
from the batch's first event, built and checked the usual way, and writes each further
message's Avro bytes directly: the same bytes :meth:`Codec.encode` gives for the same
event (a test holds the two to that), with the same checks (the role, the text's
characters, the message id). A message of any other shape, or one that fails a check,
gets ``None``: the caller builds it the usual way, which names what is wrong.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from schemas.avro_bytes import avro_long, avro_string
from schemas.codec import Codec, json_field_text
from schemas.events import MessageAppended
from schemas.fingerprint import header_for
from schemas.ids import uuid7, uuid7_many
from schemas.types import is_plain_json

__all__ = ["TextMessages"]

ROLE_INDEX = {"user": 0, "assistant": 1, "system": 2, "tool": 3}  # the Role enum's symbols
SIMPLE_KEYS = frozenset({"role", "content", "message_id", "model", "usage", "metadata"})
_BAD_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]").search  # schemas.types.Text
_UUID_STRING = b"\x48"  # the length (36) of a UUID's text, as an Avro long
_ROLES = [avro_long(i) for i in range(len(ROLE_INDEX))]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _optional_string(value: str | None) -> bytes:
    return b"\x00" if value is None else b"\x02" + avro_string(value)


class TextMessages:
    """Encoder of the text messages of one batch, given its first (checked) event."""

    def __init__(self, codec: Codec, first: MessageAppended, expected: int = 0) -> None:
        """``expected``: how many messages will follow (their ids are made at once)."""
        self._ids = uuid7_many(2 * expected)
        self._ids.reverse()  # popped from the end: in the order they were made
        current = codec.registry.current(MessageAppended.type_name())
        self.header = header_for(current.fingerprint)
        self.envelope = b"".join(
            (
                avro_string(first.tenant_id),
                avro_string(first.actor),
                _optional_string(first.correlation_id),
                avro_string(first.root_thread_id),
                avro_string(first.thread_id),
            )
        )
        # model: null, usage: null, metadata: "{}"
        self.tail = b"\x00\x00" + avro_string("{}")
        # the batch's messages occurred when its first did (they are appended together)
        since_epoch = first.occurred_at - _EPOCH
        self.occurred = avro_long(
            (since_epoch.days * 86_400 + since_epoch.seconds) * 1_000_000 + since_epoch.microseconds
        )

    def for_batch(self, expected: int) -> TextMessages:
        """An encoder of the same envelope (tenant, actor, thread) for a new batch of
        ``expected`` messages, occurring now: a writer that checked the envelope once
        (with its batch's first event) encodes its thread's later messages without
        building an event each, a single one included."""
        batch = object.__new__(TextMessages)  # a shallow copy (copy.copy's generic way
        batch.__dict__.update(self.__dict__)  # costs a few times more)
        batch._ids = uuid7_many(2 * expected)
        batch._ids.reverse()
        batch.occurred = avro_long(time.time_ns() // 1000)  # as utcnow(), in microseconds
        return batch

    def encode(self, spec: Mapping[str, Any]) -> tuple[UUID, bytes] | None:
        """``(message_id, value)`` of a plain text message (``role``, ``content`` a
        string, optionally ``message_id``, a ``model`` name, and plain JSON ``metadata``,
        as a framework's message id; no ``usage``); ``None`` for anything else."""
        if not SIMPLE_KEYS.issuperset(spec):
            return None
        role, text = spec.get("role"), spec.get("content")
        if type(role) is not str or role not in ROLE_INDEX or type(text) is not str:
            return None
        if spec.get("usage") is not None or _BAD_TEXT(text):
            return None
        model, metadata = spec.get("model"), spec.get("metadata")
        try:
            text_bytes = avro_string(text)
            bare = metadata is None or (type(metadata) is dict and not metadata)
            tail = self.tail if model is None and bare else _tail(model, metadata)
        except UnicodeEncodeError:  # lone surrogates: the usual path names the field
            return None
        if tail is None:
            return None
        given = spec.get("message_id")
        message_id = self._new_id() if given is None else _message_id(given)
        if message_id is None:
            return None
        return message_id, self.value(
            message_id, self._new_id(), ROLE_INDEX[role], text_bytes, tail
        )

    def _new_id(self) -> UUID:
        return self._ids.pop() if self._ids else uuid7()

    def value(
        self, message_id: UUID, event_id: UUID, role: int, text: bytes, tail: bytes | None = None
    ) -> bytes:
        """The encoded event (``text`` already an Avro string; ``tail``: the model, usage
        and metadata fields encoded, by default none of them)."""
        return b"".join(
            (
                self.header,
                _UUID_STRING,
                str(event_id).encode(),
                self.occurred,
                self.envelope,
                _UUID_STRING,
                str(message_id).encode(),
                _ROLES[role],
                b"\x02\x00",  # parts: a block of one item, the TextPart branch
                text,
                b"\x00",  # end of the parts array
                self.tail if tail is None else tail,
            )
        )


def _tail(model: Any, metadata: Any) -> bytes | None:
    """The model, usage (none) and metadata fields of a message whose model is a string
    (or ``None``) and whose metadata maps strings to strings, or is a JSON object of
    JSON's own types without nulls (what the model's validation accepts as it is, checked
    in C); ``None`` for anything else. Raises ``UnicodeEncodeError`` on a lone surrogate."""
    if model is not None and type(model) is not str:
        return None
    if metadata is None:
        metadata = {}
    elif type(metadata) is not dict:
        return None
    elif not _strings(metadata) and not is_plain_json(metadata):
        return None  # (is_plain_json also says no to a string holding "null")
    return _optional_string(model) + b"\x00" + avro_string(json_field_text(metadata))


def _strings(metadata: dict[Any, Any]) -> bool:
    """Whether every key and value is a ``str`` (JSON whatever they hold)."""
    return all(type(k) is str and type(v) is str for k, v in metadata.items())


def _message_id(given: Any) -> UUID | None:
    if isinstance(given, UUID):
        return given
    if isinstance(given, str):
        try:
            return UUID(given)
        except ValueError:
            return None
    return None
