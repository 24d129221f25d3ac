"""Checkpoint events encoded in one pass, without building a model per event.

A LangGraph turn saves about three checkpoints and two sets of pending writes, each an
event of a few kilobytes, and most of their fields are ids and opaque bytes. Building and
validating a model per event, then turning it into the codec's datum, cost more than the
rest of the write. :class:`CheckpointBytes` writes the Avro bytes of
:class:`~schemas.checkpoints.CheckpointSaved` and
:class:`~schemas.checkpoints.CheckpointWritesSaved` straight from the values: the same
bytes :meth:`Codec.encode` gives for the same event (a test holds the two to that).

It accepts a subset of what the models accept, checked the cheap way: ids and namespaces
of printable ASCII (no surrounding spaces for ids), strings that encode as UTF-8, a
metadata object the model's JSON check passes, channel versions of strings. Anything else
gets ``None``: the caller builds the event the usual way, which names what is wrong.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol
from uuid import UUID

from schemas.avro_bytes import avro_long, avro_string
from schemas.checkpoints import CheckpointSaved, CheckpointWritesSaved
from schemas.codec import Codec, json_field_text
from schemas.fingerprint import header_for
from schemas.ids import uuid7
from schemas.types import MAX_ID_LENGTH, is_plain_json

__all__ = ["CheckpointBytes", "Value"]

_UUID_STRING = b"\x48"  # the length (36) of a UUID's text, as an Avro long
_NULL = b"\x00"
_AVRO_INT = range(-(2**31), 2**31)
_strict_json = json.JSONEncoder(allow_nan=False).encode  # as schemas.types checks


class Value(Protocol):
    """A stored value as :class:`~schemas.checkpoints.StoredValue` holds it."""

    @property
    def type(self) -> str: ...
    @property
    def data(self) -> bytes | None: ...
    @property
    def blob_key(self) -> str | None: ...


def _is_id(value: Any) -> bool:
    """An :data:`~schemas.types.Identifier` of printable ASCII (the usual ids)."""
    return (
        type(value) is str
        and 0 < len(value) <= MAX_ID_LENGTH
        and value.isascii()
        and value.isprintable()
        and value[0] != " "
        and value[-1] != " "
    )


def _is_text(value: Any) -> bool:
    """A :data:`~schemas.types.Text` of printable ASCII (or empty)."""
    return type(value) is str and (not value or (value.isascii() and value.isprintable()))


def _string(value: Any) -> bytes:
    """An Avro string of a ``str`` (raises ``TypeError`` for anything else, and
    ``UnicodeEncodeError`` for a lone surrogate)."""
    if type(value) is not str:
        raise TypeError(type(value).__name__)
    return avro_string(value)


def _optional(value: Any) -> bytes:
    return _NULL if value is None else b"\x02" + _string(value)


def _stored(value: Value) -> bytes:
    data = value.data
    if data is not None and type(data) is not bytes:
        raise TypeError(type(data).__name__)
    inline = _NULL if data is None else b"\x02" + avro_long(len(data)) + data
    return _string(value.type) + inline + _optional(value.blob_key)


def _json_object(value: Any) -> str | None:
    """The JSON text of a metadata object the model accepts as it is; ``None`` if not
    one (not a dict of ``str`` keys, or not JSON)."""
    if type(value) is not dict or not all(type(k) is str for k in value):
        return None
    if value and not is_plain_json(value):
        try:
            _strict_json(value)
        except (TypeError, ValueError):
            return None
    return json_field_text(value)


def _versions(value: Any) -> bytes | None:
    if type(value) is not dict:
        return None
    if not value:
        return _NULL
    parts = [avro_long(len(value))]
    for channel, version in value.items():
        if type(channel) is not str or type(version) is not str:
            return None
        parts += (avro_string(channel), avro_string(version))
    parts.append(_NULL)
    return b"".join(parts)


def _array(items: list[bytes]) -> bytes:
    return b"".join((avro_long(len(items)), *items, _NULL)) if items else _NULL


class CheckpointBytes:
    """Encoder of one writer's checkpoint events (its tenant and actor, checked once)."""

    def __init__(self, codec: Codec, tenant_id: str, actor: str) -> None:
        self.tenant_id, self.actor = tenant_id, actor
        self.usable = _is_id(tenant_id) and _is_id(actor)
        # tenant, actor, correlation_id: null
        self._envelope = avro_string(tenant_id) + avro_string(actor) + _NULL
        self._saved = self._header(codec, CheckpointSaved.type_name())
        self._writes = self._header(codec, CheckpointWritesSaved.type_name())

    @staticmethod
    def _header(codec: Codec, name: str) -> bytes:
        return header_for(codec.registry.current(name).fingerprint)

    def saved(
        self,
        *,
        thread_id: str,
        checkpoint_id: str,
        checkpoint: Value,
        metadata: Value,
        checkpoint_ns: str = "",
        parent_checkpoint_id: str | None = None,
        run_id: str | None = None,
        metadata_json: Mapping[str, Any],
        channel_versions: Mapping[str, str],
        values: Sequence[tuple[str, str, Value]],
        event_id: UUID | None = None,
        occurred_us: int | None = None,
    ) -> bytes | None:
        """A ``CheckpointSaved`` (``values``: ``(channel, version, value)``), or ``None``
        if it is not of the shape this encoder takes."""
        head = self._thread_part(thread_id, checkpoint_ns, checkpoint_id)
        if parent_checkpoint_id is not None and not _is_id(parent_checkpoint_id):
            return None
        text, versions = _json_object(metadata_json), _versions(channel_versions)
        if head is None or text is None or versions is None:
            return None
        return self._event(
            self._saved,
            head,
            lambda: [
                _optional(parent_checkpoint_id),
                _optional(run_id),
                _stored(checkpoint),
                _stored(metadata),
                avro_string(text),
                versions,
                _array([_string(ch) + _string(v) + _stored(sv) for ch, v, sv in values]),
            ],
            event_id,
            occurred_us,
        )

    def writes(
        self,
        *,
        thread_id: str,
        checkpoint_id: str,
        task_id: str,
        writes: Sequence[tuple[int, str, Value]],
        checkpoint_ns: str = "",
        task_path: str = "",
        event_id: UUID | None = None,
        occurred_us: int | None = None,
    ) -> bytes | None:
        """A ``CheckpointWritesSaved`` (``writes``: ``(index, channel, value)``), or
        ``None`` if it is not of the shape this encoder takes."""
        head = self._thread_part(thread_id, checkpoint_ns, checkpoint_id)
        if head is None or not _is_text(task_path):
            return None
        if not all(type(idx) is int and idx in _AVRO_INT for idx, _, _ in writes):
            return None
        return self._event(
            self._writes,
            head,
            lambda: [
                _string(task_id),
                avro_string(task_path),
                _array([avro_long(i) + _string(ch) + _stored(v) for i, ch, v in writes]),
            ],
            event_id,
            occurred_us,
        )

    def _thread_part(self, thread_id: str, ns: str, checkpoint_id: str) -> bytes | None:
        """The fields both events start with (thread, namespace, checkpoint), or ``None``
        if this encoder does not take them."""
        if not self.usable or not _is_id(thread_id) or not _is_id(checkpoint_id):
            return None
        if not _is_text(ns):
            return None
        return avro_string(thread_id) + avro_string(ns) + avro_string(checkpoint_id)

    def _event(
        self,
        header: bytes,
        head: bytes,
        rest: Callable[[], list[bytes]],
        event_id: UUID | None,
        occurred_us: int | None,
    ) -> bytes | None:
        """The event: its header and envelope, ``head``, then the fields ``rest()``
        encodes (``None`` if one is not of the shape taken)."""
        try:
            tail = b"".join(rest())
        except (TypeError, UnicodeEncodeError):
            return None
        event = uuid7() if event_id is None else event_id
        micros = time.time_ns() // 1000 if occurred_us is None else occurred_us  # as utcnow()
        start = (header, _UUID_STRING, str(event).encode(), avro_long(micros), self._envelope)
        return b"".join((*start, head, tail))
