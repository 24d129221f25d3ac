"""The projector's settings, counters and the small types of a batch in flight."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio

from hub.infra.ports import ConsumerRecord, EventLog, LogConsumer, PositionStore, TopicPartition
from schemas.codec import Codec
from schemas.errors import HubError, SchemaError
from schemas.events import Event

__all__ = [
    "Applying",
    "BatchInHand",
    "Decoded",
    "FlushFailed",
    "Item",
    "Key",
    "Lanes",
    "Part",
    "Poison",
    "ProjectorSettings",
    "ProjectorStats",
    "Seeks",
    "decode_batch",
    "handled_ids",
    "measure_lag",
    "not_in",
    "rewound",
]

Key = tuple[TopicPartition, int]


@dataclass(frozen=True)
class ProjectorSettings:
    batch_size: int = 2000
    """Most records a lane applies at once (a fetch reads up to this many per lane)."""
    batch_linger: float = 0.01
    idle_linger: float = 0.0
    """How long an idle projector waits to gather more records into a batch while no
    reader of its process waits for it (0: it takes what it has at once)."""
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
    lanes: int = 2
    """Transactions applied at once, each for its own partitions (1: one at a time)."""
    revoke_wait: float = 10.0
    """How long a revocation waits for the revoked partitions' batches in a transaction
    to commit, so their next owner starts from where they end."""


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

    def count(self, applied: int, duplicates: int, dead: int, *, dropped: bool) -> None:
        """One batch done."""
        self.batches += 1
        self.events += applied
        self.duplicates += duplicates
        self.dead_lettered += dead
        self.dropped_batches += int(dropped)
        self.last_batch_at = time.time()

    def summary(self) -> dict[str, int]:
        return {
            "batches": self.batches,
            "events": self.events,
            "duplicates": self.duplicates,
            "dead_lettered": self.dead_lettered,
        }


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


def handled_ids(
    items: Sequence[Item], handlers: Mapping[type[Any], Any], poison: Mapping[Key, Poison]
) -> list[tuple[Any, TopicPartition]]:
    """The event ids (with their partitions) of the events in ``items`` that a handler
    applies: what the event-id dedupe records."""
    return [
        (e.event_id, r.tp)
        for r, e in items
        if e is not None and type(e) in handlers and (r.tp, r.offset) not in poison
    ]


def not_in(batch: Sequence[ConsumerRecord], more: Sequence[ConsumerRecord]) -> list[ConsumerRecord]:
    """``more`` without the records ``batch`` holds already: a rebalance while the batch
    lingers re-reads a partition from its stored position, and the batch must not hold
    one record twice (its events would be applied twice, or left to the event-id dedupe)."""
    last: dict[TopicPartition, int] = {}
    for rec in batch:
        last[rec.tp] = rec.offset
    return [rec for rec in more if rec.offset > last.get(rec.tp, -1)]


def decode_batch(codec: Codec, records: Sequence[ConsumerRecord]) -> Decoded:
    """The records' events, decoded trusted; bytes that do not fit their schema are poison
    (their item's event is ``None``)."""
    items: list[Item] = []
    poison: dict[Key, Poison] = {}
    for rec in records:
        try:
            items.append((rec, codec.decode(rec.value, trusted=True)))
        except SchemaError as exc:
            hint = rec.header("hub-type")
            event_type = exc.event or (hint.decode(errors="replace") if hint else None)
            key = (rec.tp, rec.offset)
            poison[key] = Poison(key, exc, event_type)
            items.append((rec, None))
    return items, poison


class BatchInHand:
    """A fetched batch, split into parts by lane: ``applied`` is set once every part is;
    ``seeks`` is :attr:`Seeks.count` when its fetch began."""

    def __init__(self, parts: int, seeks: int = 0) -> None:
        self.left = parts
        self.seeks = seeks
        self.applied = anyio.Event()

    def part_applied(self) -> None:
        self.left -= 1
        if self.left <= 0:
            self.applied.set()


Part = tuple[list[Item], dict[Key, "Poison"], BatchInHand]


class Seeks:
    """The projector's seeks, counted, and each partition's latest; and the partitions
    revoked and not assigned again.

    A batch read before its partition's latest seek is stale: the seek was made because
    an earlier batch did not start at the stored position, and this one was read ahead
    from the same wrong place. Claimed, it would be dropped and sought again, and by then
    the batch read after the first seek has moved the stored position on: the partition
    went on dropping every other batch (seen with two projector processes sharing
    partitions after a hand-over: 26 of 34 batches of one process dropped). Such records
    are left out before the claim instead; the records read after the seek follow.

    Records of a revoked partition are left out too: they are its next owner's, who reads
    them from the stored position. Applied here meanwhile, one of the two would drop its
    batch and read it again.
    """

    def __init__(self) -> None:
        self.count = 0
        self._latest: dict[TopicPartition, int] = {}
        self._revoked: set[TopicPartition] = set()

    def sought(self, tp: TopicPartition) -> None:
        """Say that ``tp`` is about to be sought."""
        self.count += 1
        self._latest[tp] = self.count

    def revoked(self, tps: Iterable[TopicPartition]) -> None:
        """Say that ``tps`` are no longer this projector's."""
        self._revoked.update(tps)

    def assigned(self, tps: Iterable[TopicPartition]) -> None:
        """Say that ``tps`` are this projector's (again)."""
        self._revoked.difference_update(tps)

    def current(self, items: list[Item], fetched_at: int) -> list[Item]:
        """``items`` without those of partitions sought since ``fetched_at`` or revoked."""
        if self.count <= fetched_at and not self._revoked:
            return items
        latest, revoked = self._latest, self._revoked
        return [
            item
            for item in items
            if latest.get(item[0].tp, 0) <= fetched_at and item[0].tp not in revoked
        ]


class Applying:
    """The partitions whose batches are in a transaction now, so that a revocation can
    let those commit before the partitions are handed over: their next owner then loads
    the position they end at, instead of reading that batch again and dropping it."""

    def __init__(self) -> None:
        self._count: dict[TopicPartition, int] = {}
        self._done = anyio.Event()

    @asynccontextmanager
    async def of(self, tps: Iterable[TopicPartition]) -> AsyncIterator[None]:
        """Hold ``tps`` as being applied for the block."""
        held = list(tps)
        for tp in held:
            self._count[tp] = self._count.get(tp, 0) + 1
        try:
            yield
        finally:
            for tp in held:
                left = self._count.pop(tp) - 1
                if left:
                    self._count[tp] = left
            self._done.set()
            self._done = anyio.Event()

    async def settled(self, tps: Collection[TopicPartition], timeout: float) -> bool:
        """Wait, at most ``timeout``, until no batch of ``tps`` is being applied; whether
        none is."""
        with anyio.move_on_after(timeout):
            while any(tp in self._count for tp in tps):
                await self._done.wait()
        return not any(tp in self._count for tp in tps)


class Lanes:
    """Which lane applies each partition of a shared batch: given in turn as partitions
    are first seen, and kept, so shared batches of a partition are applied in order by
    one lane."""

    def __init__(self, count: int) -> None:
        self.count = max(1, count)
        self._of: dict[TopicPartition, int] = {}

    def lane_of(self, tp: TopicPartition) -> int:
        lane = self._of.get(tp)
        if lane is None:
            lane = self._of[tp] = len(self._of) % self.count
        return lane

    def route(
        self, items: list[Item], poison: dict[Key, Poison], *, split: bool
    ) -> dict[int, Decoded]:
        """A decoded batch's items (and their poison) by lane, each in the log's order:
        shared by partition if ``split``, else all for the first lane (a small batch costs
        one transaction, not one per lane; the caller lets the lanes finish first)."""
        if self.count == 1 or not split:
            return {0: (items, poison)}
        parts: dict[int, Decoded] = {}
        for item in items:
            lane = self.lane_of(item[0].tp)
            part = parts.get(lane)
            if part is None:
                part = parts[lane] = ([], {})
            part[0].append(item)
            key = (item[0].tp, item[0].offset)
            if key in poison:
                part[1][key] = poison[key]
        return parts


async def measure_lag(
    log: EventLog, consumer: LogConsumer, positions: Mapping[TopicPartition, int]
) -> dict[TopicPartition, int]:
    """Each assigned partition's lag behind the log's end, from ``positions`` (the next
    offset to apply; the beginning if absent), committed to the consumer too (for Kafka's
    own lag tools); empty if nothing is assigned."""
    assigned = sorted(consumer.assignment())
    if not assigned:
        return {}
    ends = await log.end_offsets(assigned)
    mine = {tp: positions.get(tp, 0) for tp in assigned}
    await consumer.commit(mine)
    return {tp: max(0, ends[tp] - mine[tp]) for tp in assigned}


async def rewound(
    positions: PositionStore,
    name: str,
    consumer: LogConsumer,
    applied: Mapping[TopicPartition, int],
) -> dict[TopicPartition, int]:
    """The assigned partitions whose stored position is now behind ``applied`` (a replay
    in another process moved it back), with that position; empty if the positions cannot
    be read now (a retriable error)."""
    assigned = sorted(consumer.assignment())
    if not assigned:
        return {}
    try:
        stored = await positions.load(name, assigned)
    except HubError as exc:
        if not exc.retriable:
            raise
        return {}
    return {tp: p for tp, p in stored.items() if p < applied.get(tp, p)}
