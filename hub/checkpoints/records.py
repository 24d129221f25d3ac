"""The log records of the checkpoints and pending writes a client saves.

Values travel inline up to a limit; a larger one goes to the blob store, named by its
SHA-256, and the event carries the name. Events of the usual shape (ASCII ids, plain JSON
metadata: what LangGraph writes) are encoded in one pass
(:mod:`schemas.checkpoint_bytes`); any other is built and checked as a model, which names
what is wrong.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from hub.core.inputs import build_event
from hub.infra.ports import ProducerRecord
from schemas.checkpoint_bytes import CheckpointBytes
from schemas.checkpoints import CheckpointSaved, CheckpointWritesSaved
from schemas.errors import HubError, InputError
from schemas.events import Event

if TYPE_CHECKING:
    from hub.core.context import HubContext

__all__ = ["CheckpointRecords", "Serialized", "Stored"]


@dataclass(frozen=True)
class Serialized:
    """A value as its serializer wrote it: the type tag and the bytes."""

    type: str
    data: bytes


class Stored(NamedTuple):
    """A value as an event holds it (``StoredValue``'s fields): inline ``data`` or a
    ``blob_key``. The one-pass encoder takes it as it is; the model path checks it."""

    type: str
    data: bytes | None = None
    blob_key: str | None = None

    def fields(self) -> dict[str, Any]:
        """As a ``StoredValue``'s fields (the model path)."""
        return self._asdict()


class CheckpointRecords:
    """Builds the records of one client's checkpoint events."""

    def __init__(self, ctx: HubContext) -> None:
        self._ctx = ctx
        self._encoder: CheckpointBytes | None = None

    async def saved(
        self,
        thread_id: str,
        *,
        checkpoint_id: str,
        checkpoint: Serialized,
        metadata: Serialized,
        checkpoint_ns: str,
        parent_checkpoint_id: str | None,
        metadata_json: Mapping[str, Any] | None,
        run_id: str | None,
        channel_versions: Mapping[str, str] | None,
        values: Mapping[str, tuple[str, Serialized]] | None,
    ) -> ProducerRecord:
        """A ``CheckpointSaved`` (see :meth:`CheckpointsClient.save`)."""
        new = dict(values or {})
        limit = self._inline_limit()
        stored = [(ch, version, await self.stored(v, limit)) for ch, (version, v) in new.items()]
        fields: dict[str, Any] = {
            "thread_id": thread_id,
            "checkpoint_ns": checkpoint_ns,
            "checkpoint_id": checkpoint_id,
            "parent_checkpoint_id": parent_checkpoint_id,
            "run_id": run_id,
            "checkpoint": await self.stored(checkpoint, limit),
            "metadata": await self.stored(metadata, limit),
            "metadata_json": dict(metadata_json or {}),
            "channel_versions": dict(channel_versions or {ch: v for ch, v, _ in stored}),
        }
        value = self._bytes().saved(**fields, values=stored)
        record = self._record(CheckpointSaved, value)
        if record is not None:
            return record
        changed = [{"channel": ch, "version": v, "value": sv.fields()} for ch, v, sv in stored]
        fields["checkpoint"], fields["metadata"] = (
            fields["checkpoint"].fields(),
            fields["metadata"].fields(),
        )
        event = build_event(CheckpointSaved, **self._ctx.envelope(), **fields, values=changed)
        return self._ctx.producer.record(event)

    async def writes(
        self,
        thread_id: str,
        *,
        checkpoint_id: str,
        task_id: str,
        writes: Sequence[tuple[int, str, Serialized]],
        checkpoint_ns: str,
        task_path: str,
    ) -> ProducerRecord:
        """A ``CheckpointWritesSaved`` (see :meth:`CheckpointsClient.save_writes`)."""
        limit = self._inline_limit()
        stored = [(idx, ch, await self.stored(v, limit)) for idx, ch, v in writes]
        fields: dict[str, Any] = {
            "thread_id": thread_id,
            "checkpoint_ns": checkpoint_ns,
            "checkpoint_id": checkpoint_id,
            "task_id": task_id,
            "task_path": task_path,
        }
        record = self._record(CheckpointWritesSaved, self._bytes().writes(**fields, writes=stored))
        if record is not None:
            return record
        pending = [{"idx": idx, "channel": ch, "value": v.fields()} for idx, ch, v in stored]
        event = build_event(CheckpointWritesSaved, **self._ctx.envelope(), **fields, writes=pending)
        return self._ctx.producer.record(event)

    def _bytes(self) -> CheckpointBytes:
        """The one-pass encoder of this client's tenant and actor (made again if they
        change: remote mode learns them from its key)."""
        ctx, encoder = self._ctx, self._encoder
        if encoder is None or (encoder.tenant_id, encoder.actor) != (ctx.tenant, ctx.actor):
            encoder = self._encoder = CheckpointBytes(ctx.producer.codec, ctx.tenant, ctx.actor)
        return encoder

    def _record(self, cls: type[Event], value: bytes | None) -> ProducerRecord | None:
        """The record of an event encoded in one pass; ``None`` if it was not (or is too
        large: the usual path names the limit)."""
        producer = self._ctx.producer
        if value is None or len(value) > producer.max_event_bytes:
            return None
        tenant = self._ctx.tenant
        return producer.record_of_value(cls, tenant.encode(), tenant, value)

    def _inline_limit(self) -> int:
        return max(1024, self._ctx.settings.max_event_bytes // 16)

    async def stored(self, value: Serialized, limit: int) -> Stored:
        """``value`` inline if it is at most ``limit`` bytes, else by blob."""
        if not isinstance(value, Serialized):
            raise InputError(f"expected a Serialized value, got {type(value).__name__}")
        if len(value.data) <= limit:
            return Stored(value.type, value.data)
        try:
            store = await self._ctx.blob_store()
        except HubError:  # remote mode has no blob store: inline, up to half an event
            most = self._ctx.settings.max_event_bytes // 2
            if len(value.data) <= most:
                return Stored(value.type, value.data)
            raise InputError(
                f"a checkpoint value of {len(value.data)} bytes: remote mode carries values "
                f"of up to {most} bytes (HUB_MAX_EVENT_BYTES / 2); larger ones need direct mode"
            ) from None
        digest = hashlib.sha256(value.data).hexdigest()
        key = f"checkpoints/{self._ctx.tenant}/{digest}"
        await store.put(key, value.data, content_type="application/octet-stream")
        return Stored(value.type, None, key)
