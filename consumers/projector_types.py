"""The projector's settings, counters and the small types of a batch in flight."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from hub.infra.ports import ConsumerRecord, TopicPartition
from schemas.events import Event

__all__ = [
    "Decoded",
    "FlushFailed",
    "Item",
    "Key",
    "Poison",
    "ProjectorSettings",
    "ProjectorStats",
    "not_in",
]

Key = tuple[TopicPartition, int]


@dataclass(frozen=True)
class ProjectorSettings:
    batch_size: int = 2000
    batch_linger: float = 0.01
    fetch_timeout: float = 1.0
    retry_initial: float = 0.1
    retry_max: float = 30.0
    lag_interval: float = 15.0
    retired_grace: float = 3600.0
    """How long a version replaced by a newer one keeps its schema before it is dropped."""
    dedupe_window: float | None = 30 * 86_400.0
    """How long applied event ids are remembered (None: forever)."""
    dedupe_check_every: float = 600.0
    """How often ids older than the window are looked for."""


@dataclass
class ProjectorStats:
    batches: int = 0
    events: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    dropped_batches: int = 0
    retries: int = 0
    last_batch_at: float | None = None
    lag: dict[TopicPartition, int] = field(default_factory=dict)


class Poison(Exception):
    def __init__(self, key: Key, error: BaseException, event_type: str | None) -> None:
        super().__init__(str(error))
        self.key, self.error, self.event_type = key, error, event_type


class FlushFailed(Exception):
    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


Item = tuple[ConsumerRecord, Event | None]
Decoded = tuple[list[Item], dict[Key, "Poison"]]


def not_in(batch: Sequence[ConsumerRecord], more: Sequence[ConsumerRecord]) -> list[ConsumerRecord]:
    """``more`` without the records ``batch`` holds already: a rebalance while the batch
    lingers re-reads a partition from its stored position, and the batch must not hold
    one record twice (its events would be applied twice, or left to the event-id dedupe)."""
    last: dict[TopicPartition, int] = {}
    for rec in batch:
        last[rec.tp] = rec.offset
    return [rec for rec in more if rec.offset > last.get(rec.tp, -1)]
