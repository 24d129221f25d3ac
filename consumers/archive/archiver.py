"""The archiver: the log, kept forever in a blob store as Avro object container files.

Per topic-partition, records are buffered and written as one container file (deflate,
writer schema inside) at a deterministic key::

    {prefix}/{topic}/{partition:04d}/{first_offset:020d}-{last_offset:020d}.avro

Each entry is the log record as it was (offset, timestamp, key, headers and the event's
single-object-encoded bytes), so any event version stays decodable. A segment is cut when
it holds ``max_records`` records or ``max_bytes`` bytes, or when its oldest record is
``max_age`` seconds old (also when nothing new arrives). The position is stored, with a
manifest row, only after the object is durable. On assignment the archiver adopts a
segment written just before a crash (it starts exactly at the stored position) and
deletes stray overlapping ones, so the archive never has a gap or a duplicate.
"""

from __future__ import annotations

import itertools
import operator
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

import anyio
import asyncpg
import structlog
from anyio.abc import TaskStatus

from consumers.archive.segments import DEFAULT_LEVEL, encode_segment, read_segment
from consumers.bookkeeping import ensure_bookkeeping
from consumers.positions import PostgresPositionStore
from consumers.retry import RateLimitedWarnings
from consumers.worker import Worker
from hub.infra.ports import BlobStore, ConsumerRecord, EventLog, LogConsumer, TopicPartition
from schemas.errors import HubError

__all__ = ["Archiver", "ArchiverSettings", "segment_key"]

logger = structlog.get_logger(__name__)

CONSUMER = "archiver"

RECORD_SEGMENT = """
INSERT INTO hub.archive_segments
    (topic, partition, first_offset, last_offset, key, records, bytes, first_ts, last_ts)
VALUES ($1, $2, $3, $4, $5, $6, $7, to_timestamp($8 / 1000.0), to_timestamp($9 / 1000.0))
ON CONFLICT DO NOTHING
"""
SEGMENT_KEYS = "SELECT key FROM hub.archive_segments WHERE topic = $1 AND partition = $2"
_SEGMENT_NAME = re.compile(r"(\d{20})-(\d{20})\.avro$")


_TP = operator.itemgetter(7)  # ConsumerRecord.tp
_KEY, _VALUE = operator.itemgetter(3), operator.itemgetter(4)


def _size(records: Sequence[ConsumerRecord]) -> int:
    """What ``records`` count towards ``max_bytes``: their keys and values, 32 bytes more
    each for the rest."""
    keys = sum(map(len, filter(None, map(_KEY, records))))  # in C: no frame per record
    return sum(map(len, map(_VALUE, records))) + keys + 32 * len(records)


def _chunk(buffer: _Buffer, max_records: int, max_bytes: int) -> list[ConsumerRecord]:
    """The next segment's records from the front of ``buffer``: at most ``max_records``,
    and within ``max_bytes`` (but always at least one)."""
    if len(buffer.records) <= max_records and buffer.size <= max_bytes:
        return list(buffer.records)
    head = buffer.records[:max_records]
    sizes = itertools.accumulate(len(r.value) + len(r.key or b"") + 32 for r in head)
    fits = sum(1 for total in itertools.takewhile(lambda t: t <= max_bytes, sizes))
    return head[: max(1, fits)]


def segment_key(prefix: str, tp: TopicPartition, first: int, last: int) -> str:
    """The deterministic key of the segment holding offsets ``first``..``last``."""
    head = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    return f"{head}{tp.topic}/{tp.partition:04d}/{first:020d}-{last:020d}.avro"


@dataclass(frozen=True)
class ArchiverSettings:
    prefix: str = ""
    max_records: int = 10_000
    max_bytes: int = 16 << 20
    max_age: float = 60.0
    batch_size: int = 2000
    fetch_linger: float = 0.2
    """After a read that did not fill a batch, how long records may gather before the
    next (at most until a segment is due by age): a segment waits ``max_age`` anyway, and
    one read per append commit cost the archiver more than its segments."""
    compression_level: int = DEFAULT_LEVEL
    retry_initial: float = 0.1
    retry_max: float = 30.0


@dataclass
class _Buffer:
    records: list[ConsumerRecord] = field(default_factory=list)
    size: int = 0
    since: float = 0.0


@dataclass
class ArchiverStats:
    segments: int = 0
    records: int = 0
    bytes: int = 0
    adopted: int = 0
    removed: int = 0


class Archiver(Worker):
    """Archives every topic of ``log`` into ``store``, recording segments in Postgres."""

    def __init__(
        self,
        *,
        log: EventLog,
        pool: asyncpg.Pool,
        store: BlobStore,
        topics: Sequence[str],
        settings: ArchiverSettings | None = None,
    ) -> None:
        super().__init__()
        self.log = log
        self.pool = pool
        self.store = store
        self.topics = tuple(topics)
        self.settings = settings or ArchiverSettings()
        self.retry_initial, self.retry_max = self.settings.retry_initial, self.settings.retry_max
        self.positions = PostgresPositionStore(pool)
        self.stats = ArchiverStats()
        self._consumer: LogConsumer | None = None
        self._buffers: dict[TopicPartition, _Buffer] = {}
        self._lost: set[TopicPartition] = set()
        # Kafka runs rebalance callbacks in its own task: a sweep must never see a
        # segment that is written but not yet recorded.
        self._segments_lock = anyio.Lock()
        self._log = RateLimitedWarnings(logger.bind(archiver=store.url))

    @property
    def held(self) -> int:
        """Records read and held for a segment not written yet."""
        return sum(len(b.records) for b in self._buffers.values())

    # ── lifecycle ───────────────────────────────────────────────────────────────────────

    async def start(self) -> None:
        if self._consumer is not None:
            return

        async def prepare() -> None:
            async with self.pool.acquire() as conn:
                await ensure_bookkeeping(conn)
            await self.store.start()

        await self.retrying("prepare", prepare)
        consumer = self.log.consumer(group_id=CONSUMER, topics=self.topics, listener=self)
        await self.retrying("join", consumer.start)
        self._consumer = consumer
        self._log.info("archiver.started", topics=list(self.topics))

    async def stop(self) -> None:
        self.stop_soon()
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with anyio.CancelScope(shield=True):
                await consumer.stop()
                await self.store.stop()
            self._log.info(
                "archiver.stopped", segments=self.stats.segments, records=self.stats.records
            )

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        try:
            await self.start()
            task_status.started()
            while not self.stopping:
                records = await self._fetch_while_writing()
                lost = await self._resume_lost()
                async with self._segments_lock:
                    assigned = self._consumer.assignment() if self._consumer else frozenset()
                    self._buffer(records, assigned - lost)  # the others are read again
                if 0 < len(records) < self.settings.batch_size:  # caught up with the log
                    await self._rotate(force=False)  # what is due goes now, not after the linger
                    await self._gather()
            await self._rotate(force=True)  # a graceful stop writes what it holds
        finally:
            await self.stop()

    async def _fetch_while_writing(self) -> list[ConsumerRecord]:
        """The next records, read while the segments already due are written: the read
        (Postgres, the event loop) and the segment (deflate in a thread, the put) overlap."""
        records: list[ConsumerRecord] = []
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(partial(self._rotate, force=False))
                records = await self._fetch()
        except BaseExceptionGroup as group:
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None  # the step's own error, as before
            raise
        return records

    async def _resume_lost(self) -> frozenset[TopicPartition]:
        """Re-read from the stored position each partition whose segment another archiver
        recorded first (after the fetch: a seek during a read would be overwritten).
        Returns those partitions: what the fetch brought of them is stale."""
        lost, self._lost = frozenset(self._lost), set()
        if not lost or self._consumer is None:
            return lost
        async with self._segments_lock:
            assigned = self._consumer.assignment()
            stored = await self.positions.load(CONSUMER, sorted(lost & assigned))
            for tp in lost:
                self._buffers.pop(tp, None)
                if tp in stored:
                    await self._consumer.seek(tp, stored[tp])
        return lost

    # ── the rebalance listener ──────────────────────────────────────────────────────────

    async def on_assigned(
        self, partitions: frozenset[TopicPartition]
    ) -> Mapping[TopicPartition, int | None]:
        starts: dict[TopicPartition, int | None] = {}
        async with self._segments_lock:
            stored = await self.retrying(
                "load positions", lambda: self.positions.load(CONSUMER, sorted(partitions))
            )
            for tp in partitions:
                self._buffers.pop(tp, None)  # reading restarts at the stored position
                starts[tp] = await self.retrying("sweep", partial(self._sweep, tp, stored.get(tp)))
        return starts

    async def on_revoked(self, partitions: frozenset[TopicPartition]) -> None:
        async with self._segments_lock:
            for tp in partitions:  # the new owner re-reads from the stored position
                self._buffers.pop(tp, None)

    async def _sweep(self, tp: TopicPartition, position: int | None) -> int | None:
        """Adopt a segment written but not recorded before a crash; remove strays."""
        prefix = segment_key(self.settings.prefix, tp, 0, 0).rsplit("/", 1)[0] + "/"
        keys = await self.store.list(prefix)
        if not keys:
            return position
        async with self.pool.acquire() as conn:
            recorded = {r[0] for r in await conn.fetch(SEGMENT_KEYS, tp.topic, tp.partition)}
        for key in keys:
            m = _SEGMENT_NAME.search(key)
            if key in recorded or m is None:
                continue
            first, last = int(m[1]), int(m[2])
            if first == (position if position is not None else first) and await self._adopt(
                tp, key, first, last, position
            ):
                position = last + 1
                continue
            await self.store.delete(key)  # an overlap another run archived already
            self.stats.removed += 1
            self._log.info("archiver.stray_removed", key=key)
        return position

    async def _adopt(
        self, tp: TopicPartition, key: str, first: int, last: int, position: int | None
    ) -> bool:
        data = await self.store.get(key)
        entries = read_segment(data)
        if not entries or entries[0]["offset"] != first or entries[-1]["offset"] != last:
            return False
        recorded = await self._record(
            tp,
            key,
            first,
            last,
            len(entries),
            len(data),
            entries[0]["timestamp_ms"],
            entries[-1]["timestamp_ms"],
        )
        if recorded:
            self.stats.adopted += 1
            self._log.info("archiver.segment_adopted", key=key, first=first, last=last)
        return recorded

    # ── buffering and rotation ──────────────────────────────────────────────────────────

    async def _fetch(self) -> list[ConsumerRecord]:
        assert self._consumer is not None
        wait = 1.0
        pending = [b.since for b in self._buffers.values() if b.records]
        if pending:  # wake up in time to cut the oldest segment by age
            wait = max(0.0, min(wait, min(pending) + self.settings.max_age - time.monotonic()))
        with self.waiting():
            try:
                return await self._consumer.fetch(self.settings.batch_size, wait)
            except HubError as exc:
                if not exc.retriable:
                    raise
                self._log.warning("archiver.fetch_failed", error=str(exc))
                await self.pause(self.backoff())
        return []

    async def _gather(self) -> None:
        """Let records gather for the next read (``fetch_linger``), or until asked to stop."""
        linger = self.settings.fetch_linger
        pending = [b.since for b in self._buffers.values() if b.records]
        if pending:
            linger = min(linger, min(pending) + self.settings.max_age - time.monotonic())
        if linger > 0:
            with anyio.move_on_after(linger):
                await self._stopping.wait()

    def _buffer(
        self, records: Sequence[ConsumerRecord], assigned: frozenset[TopicPartition]
    ) -> None:
        """Add ``records`` to their partitions' buffers, a run of one partition at a time."""
        for tp, group in itertools.groupby(records, key=_TP):
            if tp in assigned:
                self._buffer_run(tp, list(group))

    def _buffer_run(self, tp: TopicPartition, run: list[ConsumerRecord]) -> None:
        buffer = self._buffers.get(tp)
        if buffer is None:
            buffer = self._buffers[tp] = _Buffer()
        first = run[0].offset
        if buffer.records and first <= buffer.records[-1].offset:
            # The partition is being re-read from its stored position (a rebalance, a
            # seek): what we buffered is stale, start again from here.
            buffer.records.clear()
            buffer.size = 0
        if not buffer.records:
            buffer.since = time.monotonic()
        elif first != buffer.records[-1].offset + 1:
            self._log.info("archiver.gap_in_log", tp=str(tp), after=buffer.records[-1].offset)
        if run[-1].offset - first != len(run) - 1:
            self._log.info("archiver.gap_in_log", tp=str(tp), within=(first, run[-1].offset))
        buffer.records.extend(run)
        buffer.size += _size(run)

    async def _rotate(self, *, force: bool) -> None:
        async with self._segments_lock:
            await self._rotate_locked(force=force)

    async def _rotate_locked(self, *, force: bool) -> None:
        s = self.settings
        now = time.monotonic()
        for tp, buffer in list(self._buffers.items()):
            while buffer.records and (
                force
                or len(buffer.records) >= s.max_records
                or buffer.size >= s.max_bytes
                or now - buffer.since >= s.max_age
            ):
                chunk = _chunk(buffer, s.max_records, s.max_bytes)
                await self.retrying("write segment", partial(self._write, tp, chunk))
                if self._buffers.get(tp) is not buffer:
                    break  # lost to another archiver: the partition is read again
                del buffer.records[: len(chunk)]
                buffer.size -= _size(chunk)
                buffer.since = now

    async def _write(self, tp: TopicPartition, records: list[ConsumerRecord]) -> None:
        first, last = records[0].offset, records[-1].offset
        key = segment_key(self.settings.prefix, tp, first, last)
        # in a worker thread: zlib lets go of the GIL, and a segment of 10,000 messages
        # held the event loop (the projectors beside this archiver) for up to 0.2 s
        encode = partial(encode_segment, tp, records, level=self.settings.compression_level)
        data = await anyio.to_thread.run_sync(encode)
        await self.store.put(key, data, content_type="avro/binary")  # durable before recorded
        if await self._record(
            tp,
            key,
            first,
            last,
            len(records),
            len(data),
            records[0].timestamp_ms,
            records[-1].timestamp_ms,
        ):
            self.stats.segments += 1
            self.stats.records += len(records)
            self.stats.bytes += len(data)
            self._log.info("archiver.segment", key=key, records=len(records), bytes=len(data))
        elif not await self._is_recorded(tp, key):
            await self.store.delete(key)  # another archiver got here first
            self._buffers.pop(tp, None)
            self._lost.add(tp)  # re-read from the stored position once the fetch is done

    async def _record(
        self,
        tp: TopicPartition,
        key: str,
        first: int,
        last: int,
        records: int,
        size: int,
        first_ts: int,
        last_ts: int,
    ) -> bool:
        """Record a durable segment and advance the position past it, if it is next."""
        async with self.pool.acquire() as conn, conn.transaction():
            claimed, _ = await self.positions.claim(conn, CONSUMER, {tp: first})
            if tp not in claimed:
                return False
            await conn.execute(
                RECORD_SEGMENT,
                tp.topic,
                tp.partition,
                first,
                last,
                key,
                records,
                size,
                first_ts,
                last_ts,
            )
            await self.positions.advance(conn, CONSUMER, {tp: last + 1}, applied=records)
        return True

    async def _is_recorded(self, tp: TopicPartition, key: str) -> bool:
        async with self.pool.acquire() as conn:
            keys = {r[0] for r in await conn.fetch(SEGMENT_KEYS, tp.topic, tp.partition)}
        return key in keys

    def on_retry(self, what: str, exc: BaseException) -> None:
        self._log.warning("archiver.retry", step=what, error=f"{type(exc).__name__}: {exc}")
