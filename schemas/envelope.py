"""The envelope every event shares, the topics of the log, and the frozen record base.

:mod:`schemas.events` builds the catalogue on these.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from schemas.ids import uuid7
from schemas.types import Identifier, UtcDatetime, utcnow

__all__ = ["NAMESPACE", "TOPICS", "Event", "Record", "Topic"]

NAMESPACE = "agenthub.events.v1"


class Topic(StrEnum):
    """The log's topics."""

    SESSIONS = "agenthub.sessions"
    RUNS = "agenthub.runs"
    PROMPTS = "agenthub.prompts"
    REGISTRY = "agenthub.registry"
    ACCESS = "agenthub.access"
    CHECKPOINTS = "agenthub.checkpoints"
    MEMORY = "agenthub.memory"
    DLQ = "agenthub.dlq"


TOPICS: tuple[Topic, ...] = tuple(Topic)


class Record(BaseModel):
    """A frozen Avro record."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class Event(Record):
    """Envelope shared by every event."""

    topic: ClassVar[Topic]
    key_field: ClassVar[str]

    event_id: UUID = Field(default_factory=uuid7)
    occurred_at: UtcDatetime = Field(default_factory=utcnow)
    tenant_id: Identifier
    actor: Identifier
    correlation_id: Identifier | None = None

    @classmethod
    def type_name(cls) -> str:
        """The event's Avro record name, e.g. ``AgentRegistered``."""
        return cls.__name__

    def partition_key(self) -> bytes:
        """The partition key: every event of one entity lands on one partition."""
        value = getattr(self, self.key_field)
        return value if isinstance(value, bytes) else str(value).encode()
