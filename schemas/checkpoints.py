"""The checkpoint events: a framework's checkpoints (LangGraph's), on ``agenthub.checkpoints``
keyed by tenant. Values are opaque serialized bytes with the serializer's own type
tags, stored and read back byte for byte (``schemas.events`` lists them with the rest)."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field

from schemas.envelope import Event, Record, Topic
from schemas.types import AvroInt, FrozenList, Identifier, JsonObject, Text

__all__ = [
    "EVENTS",
    "ChannelValue",
    "CheckpointRunsDeleted",
    "CheckpointSaved",
    "CheckpointThreadCopied",
    "CheckpointThreadDeleted",
    "CheckpointWritesSaved",
    "CheckpointsPruned",
    "PendingWrite",
    "StoredValue",
]


class StoredValue(Record):
    """A serialized value: inline ``data``, or by reference (``blob_key`` in the blob
    store, for large values). ``type`` is the serializer's tag (``msgpack``, ``json``...)."""

    type: str
    data: bytes | None = None
    blob_key: str | None = None


class ChannelValue(Record):
    """A channel's value at one version (a checkpoint's new versions only)."""

    channel: str
    version: str
    value: StoredValue


class PendingWrite(Record):
    """One write of a task, at its index (negative for the special channels)."""

    idx: AvroInt
    channel: str
    value: StoredValue


class _CheckpointEvent(Event):
    """Keyed by the tenant: a copy, a prune or a deletion in one thread depends on what
    copies of it (other threads) exist, so a tenant's checkpoint events keep one order,
    live and in a rebuild."""

    topic = Topic.CHECKPOINTS
    key_field = "tenant_id"

    thread_id: Identifier


class CheckpointSaved(_CheckpointEvent):
    checkpoint_ns: Text = ""
    checkpoint_id: Identifier
    parent_checkpoint_id: Identifier | None = None
    run_id: str | None = None
    checkpoint: StoredValue
    metadata: StoredValue
    metadata_json: JsonObject = Field(default_factory=dict)
    channel_versions: Mapping[str, str] = Field(default_factory=dict)
    values: FrozenList[ChannelValue] = ()


class CheckpointWritesSaved(_CheckpointEvent):
    checkpoint_ns: Text = ""
    checkpoint_id: Identifier
    task_id: str
    task_path: Text = ""
    writes: FrozenList[PendingWrite]


class CheckpointThreadDeleted(_CheckpointEvent):
    pass


class CheckpointThreadCopied(_CheckpointEvent):
    """``thread_id`` (the source) copied to ``target_thread_id`` as it is now."""

    target_thread_id: Identifier


class CheckpointsPruned(_CheckpointEvent):
    strategy: str


class CheckpointRunsDeleted(_CheckpointEvent):
    run_ids: FrozenList[str]


EVENTS = (
    CheckpointSaved,
    CheckpointWritesSaved,
    CheckpointThreadDeleted,
    CheckpointThreadCopied,
    CheckpointsPruned,
    CheckpointRunsDeleted,
)
