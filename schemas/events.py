"""The event catalogue as frozen pydantic models.

Each model matches ``schemas/avro/<Name>.avsc`` field for field (``tests/unit/test_schema_drift.py``
proves it). The envelope fields come first in every event. ``topic`` says where an event
goes and ``key_field`` which field is its partition key.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import AllowInfNan, Field, Strict, model_validator

from schemas import checkpoints, memory
from schemas.envelope import TOPICS, Event, Record, Topic
from schemas.types import (
    AvroInt,
    FrozenList,
    Identifier,
    Json,
    JsonObject,
    MetricName,
    Text,
    Title,
    TokenCount,
    UtcDatetime,
)

__all__ = [
    "EVENT_TYPES",
    "TOPICS",
    "AgentRegistered",
    "AgentRetired",
    "AgentStateSaved",
    "AgentUpdated",
    "ApiKeyCreated",
    "ApiKeyRevoked",
    "ApiKeyRole",
    "ArtifactStored",
    "BlobPart",
    "DataPart",
    "DeadLettered",
    "Event",
    "Header",
    "MessageAppended",
    "MessageRedacted",
    "MetricKind",
    "MetricRecorded",
    "MetricsRecorded",
    "Part",
    "PromptLabelMoved",
    "PromptVersionCreated",
    "Provenance",
    "Record",
    "Role",
    "RunFinished",
    "RunStarted",
    "RunStatus",
    "TextPart",
    "ThreadArchived",
    "ThreadForked",
    "ThreadRenamed",
    "ThreadStarted",
    "ThreadUnarchived",
    "TokenUsage",
    "ToolCallPart",
    "ToolResultPart",
    "Topic",
]

Enum = Field(strict=False)

# ── shared records ──────────────────────────────────────────────────────────────────────


class TokenUsage(Record):
    input_tokens: TokenCount = 0
    output_tokens: TokenCount = 0
    total_tokens: TokenCount = 0


class Role(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"
    TOOL = "tool"


class TextPart(Record):
    text: Text


class ToolCallPart(Record):
    tool_call_id: Identifier
    name: Identifier
    input: Json = Field(default_factory=dict)


class ToolResultPart(Record):
    tool_call_id: Identifier
    status: Identifier = "success"
    content: Json = None


class BlobPart(Record):
    uri: str
    content_type: str
    size: int
    sha256: str
    name: str | None = None


class DataPart(Record):
    """A framework-specific block kept as it was (reasoning, citations, cache points)."""

    kind: Identifier
    data: Json = None


Part = TextPart | ToolCallPart | ToolResultPart | BlobPart | DataPart

# ── agenthub.sessions (key: root thread id) ─────────────────────────────────────────────


class _SessionEvent(Event):
    topic = Topic.SESSIONS
    key_field = "root_thread_id"

    root_thread_id: Identifier
    thread_id: Identifier


class ThreadStarted(_SessionEvent):
    agent_id: Identifier
    user_id: Identifier | None = None
    title: Title | None = None
    metadata: JsonObject = Field(default_factory=dict)


class MessageAppended(_SessionEvent):
    message_id: UUID
    role: Annotated[Role, Enum]
    parts: FrozenList[Part]
    model: str | None = None
    usage: TokenUsage | None = None
    metadata: JsonObject = Field(default_factory=dict)


class ThreadForked(_SessionEvent):
    source_thread_id: Identifier
    at_message_id: UUID | None = None
    inclusive: bool = True
    title: Title | None = None
    metadata: JsonObject = Field(default_factory=dict)


class ThreadRenamed(_SessionEvent):
    title: Title


class ThreadArchived(_SessionEvent):
    pass


class ThreadUnarchived(_SessionEvent):
    pass


class AgentStateSaved(_SessionEvent):
    agent_id: Identifier
    state: JsonObject = Field(default_factory=dict)


class MessageRedacted(_SessionEvent):
    message_id: UUID
    reason: Text | None = None
    replacement: FrozenList[TextPart] = ()
    # v2: a replacement of any parts (tool calls, data, blobs); when given, it is what
    # shows instead and ``replacement`` is empty (v1 readers show nothing instead)
    replacement_parts: FrozenList[Part] = ()


# ── agenthub.runs (key: run id) ─────────────────────────────────────────────────────────


class _RunEvent(Event):
    topic = Topic.RUNS
    key_field = "run_id"

    run_id: Identifier
    agent_id: Identifier


class Provenance(Record):
    model_name: str | None = None
    model_version: str | None = None
    code_version: str | None = None
    prompt_name: str | None = None
    prompt_version: str | None = None
    seed: int | None = None


class MetricKind(StrEnum):
    COUNTER = "counter"
    GAUGE = "gauge"
    TIMING = "timing"
    STAT = "stat"


class RunStatus(StrEnum):
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"


class RunStarted(_RunEvent):
    input: Json = None
    provenance: Provenance
    metadata: JsonObject = Field(default_factory=dict)


class MetricRecorded(_RunEvent):
    name: MetricName
    value: float = Field(allow_inf_nan=False)
    kind: Annotated[MetricKind, Enum]
    unit: str | None = None
    tags: Mapping[str, str] = Field(default_factory=dict)


FiniteFloat = Annotated[float, AllowInfNan(False)]
LaxMetricKind = Annotated[MetricKind, Strict(False)]
MAX_BATCH_METRICS = 10_000


class MetricsRecorded(_RunEvent):
    """Many metric observations of a run in one event (how the SDK sends its batches):
    the i-th entry of every list is one observation, as MetricRecorded would carry it."""

    names: FrozenList[MetricName]
    values: FrozenList[FiniteFloat]
    kinds: FrozenList[LaxMetricKind]
    units: FrozenList[str | None]
    tags: FrozenList[Mapping[str, str]]
    recorded_at: FrozenList[UtcDatetime]

    @model_validator(mode="after")
    def _columns_line_up(self) -> MetricsRecorded:
        n = len(self.names)
        if not 1 <= n <= MAX_BATCH_METRICS:
            raise ValueError(f"names: 1 to {MAX_BATCH_METRICS} metrics per event, not {n}")
        for column in ("values", "kinds", "units", "tags", "recorded_at"):
            if len(getattr(self, column)) != n:
                raise ValueError(f"{column}: {len(getattr(self, column))} entries for {n} names")
        return self


class ArtifactStored(_RunEvent):
    artifact_id: UUID
    name: Identifier
    key: str
    uri: str
    content_type: str
    size: int = Field(ge=0)
    sha256: str
    metadata: JsonObject = Field(default_factory=dict)


class RunFinished(_RunEvent):
    status: Annotated[RunStatus, Enum]
    error: Text | None = None
    duration_s: float = Field(ge=0, allow_inf_nan=False)
    usage: TokenUsage | None = None
    result: Json = None


# ── agenthub.prompts (key: prompt name) ─────────────────────────────────────────────────


class _PromptEvent(Event):
    topic = Topic.PROMPTS
    key_field = "name"

    name: Identifier
    version: Identifier


class PromptVersionCreated(_PromptEvent):
    content: str
    sha256: str
    note: Text | None = None
    author: str | None = None


class PromptLabelMoved(_PromptEvent):
    label: Identifier
    previous_version: Identifier | None = None


# ── agenthub.registry (key: agent id) ───────────────────────────────────────────────────


class _RegistryEvent(Event):
    topic = Topic.REGISTRY
    key_field = "agent_id"

    agent_id: Identifier


class AgentRegistered(_RegistryEvent):
    description: Text = ""
    tags: FrozenList[Identifier] = ()
    metadata: JsonObject = Field(default_factory=dict)


class AgentUpdated(_RegistryEvent):
    description: Text = ""
    tags: FrozenList[Identifier] = ()
    metadata: JsonObject = Field(default_factory=dict)


class AgentRetired(_RegistryEvent):
    reason: Text | None = None


# ── agenthub.access (key: key id) ───────────────────────────────────────────────────────


class ApiKeyRole(StrEnum):
    """What an API key may do: read; read and write; everything, keys and operations too."""

    READER = "reader"
    WRITER = "writer"
    ADMIN = "admin"


class _AccessEvent(Event):
    topic = Topic.ACCESS
    key_field = "key_id"

    key_id: Identifier


class ApiKeyCreated(_AccessEvent):
    """A key of ``tenant_id`` was made; only the SHA-256 of its secret is kept."""

    role: Annotated[ApiKeyRole, Enum]
    name: Text | None = None
    secret_sha256: str


class ApiKeyRevoked(_AccessEvent):
    reason: Text | None = None


# ── agenthub.dlq (key: the original record's key) ───────────────────────────────────────


class Header(Record):
    key: str
    value: bytes


class DeadLettered(Event):
    topic = Topic.DLQ
    key_field = "original_key"

    consumer: Identifier
    source_topic: Identifier
    source_partition: AvroInt
    source_offset: int
    original_key: bytes | None = None
    original_value: bytes
    original_headers: FrozenList[Header] = ()
    event_type: str | None = None
    error_type: str
    reason: str
    attempts: AvroInt = 1

    def partition_key(self) -> bytes:
        return self.original_key or b""


EVENT_TYPES: Mapping[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        ThreadStarted,
        MessageAppended,
        ThreadForked,
        ThreadRenamed,
        ThreadArchived,
        ThreadUnarchived,
        AgentStateSaved,
        MessageRedacted,
        RunStarted,
        MetricRecorded,
        MetricsRecorded,
        ArtifactStored,
        RunFinished,
        PromptVersionCreated,
        PromptLabelMoved,
        AgentRegistered,
        AgentUpdated,
        AgentRetired,
        ApiKeyCreated,
        ApiKeyRevoked,
        *checkpoints.EVENTS,
        *memory.EVENTS,
        DeadLettered,
    )
}
"""Every event type by its Avro record name."""
