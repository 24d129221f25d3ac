"""The ports: what the hub needs from a log, a position store and a blob store.

One adapter per backend implements each; ``tests/integration/test_log_contract.py`` runs
one shared suite against every ``EventLog`` adapter.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol, Self, runtime_checkable

__all__ = [
    "BlobStore",
    "ConsumerRecord",
    "EventLog",
    "LogConsumer",
    "Position",
    "PositionStore",
    "ProducerRecord",
    "RebalanceListener",
    "RecordSink",
    "StoredObject",
    "TopicPartition",
]

Headers = tuple[tuple[str, bytes], ...]


class TopicPartition(NamedTuple):
    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]"


class Position(NamedTuple):
    """Where a record sits in the log."""

    topic: str
    partition: int
    offset: int

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


@dataclass(frozen=True, slots=True)
class ProducerRecord:
    """A record to append. The adapter picks the partition from the key (murmur2)."""

    topic: str
    key: bytes
    value: bytes
    headers: Headers = ()


class ConsumerRecord(NamedTuple):
    """A record read back from the log, with its position (a named tuple: made for every
    record read, and a tuple is built in a fifth of a frozen dataclass's time)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers
    timestamp_ms: int
    tp: TopicPartition
    """``(topic, partition)``, shared by the records of one partition."""

    def header(self, name: str) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


class RebalanceListener(Protocol):
    """Told when a group member gains or loses partitions."""

    async def on_assigned(
        self, partitions: frozenset[TopicPartition]
    ) -> Mapping[TopicPartition, int | None]:
        """Return where to start reading each partition (``None``: the beginning)."""
        ...

    async def on_revoked(self, partitions: frozenset[TopicPartition]) -> None:
        """Called between batches, before the partitions go to another member."""
        ...


@runtime_checkable
class LogConsumer(Protocol):
    """Reads records in order, per partition, as a group member or from fixed partitions."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc: object) -> None: ...

    def assignment(self) -> frozenset[TopicPartition]: ...

    async def fetch(self, max_records: int, timeout: float) -> list[ConsumerRecord]:
        """Up to ``max_records`` next records; an empty list once ``timeout`` s pass."""
        ...

    async def seek(self, tp: TopicPartition, offset: int) -> None:
        """Read ``tp`` from ``offset`` next (discarding anything already fetched)."""
        ...

    def wakeup(self) -> None:
        """End a fetch that is waiting for records: it returns now, with nothing (one that
        is not waiting reads once more, without waiting). For another task that must act
        between fetches, such as a seek, which would otherwise wait for the timeout."""
        ...

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Record group progress for monitoring; the truth is the position store."""
        ...


@runtime_checkable
class EventLog(Protocol):
    """An append-only, partitioned log: Kafka, or the Postgres log."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def ensure_topics(self, topics: Mapping[str, int]) -> None:
        """Create missing topics with the given partition counts."""
        ...

    async def partitions_for(self, topic: str) -> int: ...

    async def append(self, records: Sequence[ProducerRecord]) -> list[Position]:
        """Append records; returns each one's ``(topic, partition, offset)`` in input order."""
        ...

    async def end_offsets(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        """The offset the next appended record of each partition will get."""
        ...

    async def beginning_offsets(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        """The first offset still held by each partition."""
        ...

    def consumer(
        self,
        *,
        group_id: str | None,
        topics: Sequence[str] = (),
        listener: RebalanceListener | None = None,
        partitions: Sequence[TopicPartition] = (),
    ) -> LogConsumer:
        """A group member over ``topics``, or (``group_id=None``) a reader of ``partitions``."""
        ...


class PositionStore(Protocol):
    """Where each consumer has got to, stored with the data it produced.

    Methods taking ``tx`` run in the caller's transaction (a connection of the read
    models' database), so positions move with the rows a batch wrote.
    """

    async def load(self, consumer: str, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        """Stored positions of ``consumer`` for ``tps`` (absent: never stored)."""
        ...

    async def all(self, consumer: str) -> dict[TopicPartition, int]:
        """Every stored position of ``consumer``."""
        ...

    async def of_consumers(self, consumers: Sequence[str]) -> dict[tuple[str, TopicPartition], int]:
        """Stored positions of several consumers, keyed by (consumer, partition)."""
        ...

    async def claim(
        self, tx: Any, consumer: str, starts: Mapping[TopicPartition, int]
    ) -> tuple[set[TopicPartition], dict[TopicPartition, int]]:
        """Lock positions in ``tx``; return the partitions whose stored position is
        ``starts[tp]``, and the stored positions of the others."""
        ...

    async def advance(
        self,
        tx: Any,
        consumer: str,
        positions: Mapping[TopicPartition, int],
        *,
        applied: int = 0,
        duplicates: int = 0,
        dead_lettered: int = 0,
    ) -> None:
        """Store where ``consumer`` has got to, and count what the batch did."""
        ...

    async def lock_all(self, tx: Any, consumer: str) -> dict[TopicPartition, int]:
        """Lock every position of ``consumer`` in ``tx`` (its batches wait) and return them."""
        ...

    async def rewind(self, tx: Any, consumer: str, positions: Mapping[TopicPartition, int]) -> None:
        """Store ``positions`` whatever they were (a rewind)."""
        ...

    async def forget(self, tx: Any, consumer: str) -> None:
        """Drop every position and count of ``consumer``."""
        ...

    async def hand_over(self, tx: Any, source: str, target: str) -> None:
        """Give ``source``'s positions and counts to ``target`` (whose own are dropped)."""
        ...

    async def stats(self, consumer: str) -> dict[str, int]:
        """Events applied, duplicates skipped, dead letters and batches, over all time."""
        ...


@dataclass(frozen=True, slots=True)
class StoredObject:
    """What a streamed upload stored."""

    uri: str
    size: int
    sha256: str


class RecordSink(Protocol):
    """Where a producer appends records: an :class:`EventLog`, or a hub's HTTP API."""

    name: str

    async def append(self, records: Sequence[ProducerRecord]) -> list[Position]:
        """Append records (all or none); returns their positions."""
        ...


@runtime_checkable
class BlobStore(Protocol):
    """Immutable objects by key: S3 (or MinIO), or a local directory."""

    url: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc: object) -> None: ...

    def uri(self, key: str) -> str:
        """Where ``key`` lives, as a URI (``s3://bucket/prefix/key``, ``file:///...``)."""
        ...

    async def put(self, key: str, data: bytes, *, content_type: str = ...) -> str:
        """Store ``data`` whole and durably (atomic: all or nothing); returns its URI."""
        ...

    async def get(self, key: str) -> bytes:
        """The object's bytes; :class:`NotFoundError` if there is none."""
        ...

    async def put_stream(
        self, key: str, chunks: AsyncIterable[bytes], *, content_type: str = ...
    ) -> StoredObject:
        """Store a stream without holding it in memory (S3: multipart upload). All or
        nothing: a failed upload leaves no object. Returns the URI, size and sha256."""
        ...

    async def put_file(self, key: str, path: Path, *, content_type: str = ...) -> StoredObject:
        """Store a local file without reading it into memory (S3: one streamed PUT up to
        ``SINGLE_PUT_MAX``, multipart above). All or nothing."""
        ...

    async def presign(self, key: str, *, expires_s: int = 3600) -> str:
        """A URL that downloads ``key`` without credentials (S3: a presigned GET)."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def list(self, prefix: str) -> list[str]:
        """Keys under ``prefix``, sorted."""
        ...

    async def delete(self, key: str) -> None: ...
