"""Reading history: the archive first, then the log tail.

:class:`ArchiveReader` reads the segments the archiver recorded in ``hub.archive_segments``
(one segment in memory at a time). :class:`ArchiveThenLog` is a group member that serves
each assigned partition from the archive while the position it must start at is archived,
and then hands over to the log at the first offset not archived. A projector over it
replays complete history even after the log's retention has dropped the early records.
If neither the archive nor the log holds an offset that is needed, reading stops with a
:class:`LogError` naming the gap: history is never skipped silently.

While partitions are served from the archive, the member still polls the log every
``keepalive_s`` seconds: Kafka counts a member that stops polling as dead (after
``max.poll.interval.ms``), and a Postgres-log member hands partitions to a new member
only when it polls. What that poll returns for a partition still on the archive is
dropped and the partition is put back at its first offset not archived; records of
partitions already on the log are handed out.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Self

import anyio
import asyncpg

from consumers.archive.segments import iter_records
from hub.infra.ports import BlobStore, ConsumerRecord, EventLog, LogConsumer, RebalanceListener
from hub.infra.ports import TopicPartition as TP
from schemas.errors import LogError

__all__ = ["ArchiveReader", "ArchiveThenLog", "Segment"]

SEGMENTS = """
SELECT first_offset, last_offset, key FROM hub.archive_segments
WHERE topic = $1 AND partition = $2 AND last_offset >= $3
ORDER BY first_offset
"""
ARCHIVED_END = """
SELECT topic, partition, max(last_offset) + 1 FROM hub.archive_segments
WHERE (topic, partition) IN (SELECT * FROM unnest($1::text[], $2::int[]))
GROUP BY topic, partition
"""


@dataclass(frozen=True)
class Segment:
    first: int
    last: int
    key: str


class ArchiveReader:
    """The archived records of each partition, segment by segment."""

    def __init__(self, pool: asyncpg.Pool, store: BlobStore) -> None:
        self.pool = pool
        self.store = store
        self._started = False

    async def close(self) -> None:
        """Release the store's client (idempotent)."""
        if self._started:
            self._started = False
            await self.store.stop()

    async def segments(self, tp: TP, start: int) -> list[Segment]:
        """Segments holding offsets at or after ``start``, in order."""
        rows = await self.pool.fetch(SEGMENTS, tp.topic, tp.partition, start)
        return [Segment(r[0], r[1], r[2]) for r in rows]

    async def ends(self, tps: Sequence[TP]) -> dict[TP, int]:
        """The first offset not archived, per partition (0 when nothing is)."""
        if not tps:
            return {}
        rows = await self.pool.fetch(
            ARCHIVED_END, [tp.topic for tp in tps], [tp.partition for tp in tps]
        )
        found = {TP(r[0], r[1]): r[2] for r in rows}
        return {tp: found.get(tp, 0) for tp in tps}

    async def open(self, tp: TP, segment: Segment, start: int) -> Iterator[ConsumerRecord]:
        """The records of one segment from ``start`` on, decoded as they are taken (only
        the compressed segment and one block are held in memory)."""
        if not self._started:  # the store is only needed when history is replayed
            await self.store.start()
            self._started = True
        return iter_records(await self.store.get(segment.key), tp, start)

    async def read(self, tp: TP, segment: Segment, start: int) -> list[ConsumerRecord]:
        """All the records of one segment from ``start`` on."""
        return list(await self.open(tp, segment, start))


class _Cursor:
    """Where a partition is in the archive: the next offset, and the open segment."""

    def __init__(self, position: int, end: int) -> None:
        self.position = position
        self.end = end  # first offset not archived: the log takes over here
        self.segment: Segment | None = None
        self.records: Iterator[ConsumerRecord] | None = None


class ArchiveThenLog:
    """A group member reading each partition from the archive, then from the log."""

    def __init__(
        self,
        log: EventLog,
        archive: ArchiveReader,
        *,
        group_id: str,
        topics: Sequence[str],
        listener: RebalanceListener,
        keepalive_s: float = 5.0,
    ) -> None:
        self.log = log
        self.archive = archive
        self.listener = listener
        self.keepalive_s = keepalive_s
        self._next_poll = time.monotonic() + keepalive_s
        self.inner: LogConsumer = log.consumer(group_id=group_id, topics=topics, listener=self)
        self._cursors: dict[TP, _Cursor] = {}
        self._lock = anyio.Lock()

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()
        self._cursors.clear()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def assignment(self) -> frozenset[TP]:
        return self.inner.assignment()

    @property
    def reading_archive(self) -> bool:
        """Whether some partition is still being served from the archive."""
        return bool(self._cursors)

    # ── the rebalance listener in front of the projector's ──────────────────────────────

    async def on_assigned(self, partitions: frozenset[TP]) -> Mapping[TP, int | None]:
        starts = dict(await self.listener.on_assigned(partitions))
        ends = await self.archive.ends(sorted(partitions))
        begins = await self.log.beginning_offsets(sorted(partitions))
        out: dict[TP, int | None] = {}
        for tp in partitions:
            start = starts.get(tp)
            out[tp] = await self._route(tp, 0 if start is None else start, ends[tp], begins[tp])
        return out

    async def on_revoked(self, partitions: frozenset[TP]) -> None:
        for tp in partitions:
            self._cursors.pop(tp, None)
        await self.listener.on_revoked(partitions)

    async def _route(self, tp: TP, start: int, archived_end: int, log_begin: int) -> int:
        """Serve ``tp`` from the archive if ``start`` is archived; return where the log
        must start. (State changes only after the last await: a concurrent fetch never
        sees a half-routed partition.)"""
        if start < archived_end:
            segments = await self.archive.segments(tp, start)
            if not segments or segments[0].first > start:
                first = segments[0].first if segments else archived_end
                if start < log_begin:
                    raise LogError(
                        f"history lost on {tp}: offsets {start} to {min(first, log_begin) - 1} "
                        "are neither archived nor in the log",
                        retriable=False,
                    )
                self._cursors.pop(tp, None)
                return start  # the log still has it
            self._cursors[tp] = _Cursor(start, archived_end)
            return max(archived_end, start)
        self._cursors.pop(tp, None)
        if start < log_begin:
            raise LogError(
                f"history lost on {tp}: offsets {start} to {log_begin - 1} are gone from "
                f"the log and not archived (archived up to {archived_end - 1})",
                retriable=False,
            )
        return start

    # ── reading ─────────────────────────────────────────────────────────────────────────

    async def fetch(self, max_records: int, timeout: float) -> list[ConsumerRecord]:
        async with self._lock:  # a seek waits for this fetch, and the other way round
            if not self._cursors:
                return await self._poll(max_records, timeout)
            polled: list[ConsumerRecord] = []
            now = time.monotonic()
            if now >= self._next_poll:  # keep the membership alive (see the module)
                self._next_poll = now + self.keepalive_s
                polled = await self._poll(max(1, max_records), 0)
            return polled + await self._from_archive(max_records - len(polled))

    async def _poll(self, max_records: int, timeout: float) -> list[ConsumerRecord]:
        """Fetch from the log; what it returns for a partition (newly) served from the
        archive is dropped, and the partition put back where the log takes over."""
        records = await self.inner.fetch(max_records, timeout)  # may rebalance
        for tp in {r.tp for r in records if r.tp in self._cursors}:
            await self.inner.seek(tp, self._cursors[tp].end)
        assigned = self.inner.assignment()
        return [r for r in records if r.tp not in self._cursors and r.tp in assigned]

    async def _from_archive(self, max_records: int) -> list[ConsumerRecord]:
        """Up to ``max_records`` archived records, each partition read from the archive
        bringing its share (so a projector's lanes can share the batch)."""
        out: list[ConsumerRecord] = []
        share = -(-max_records // max(1, len(self._cursors)))
        for tp, cursor in list(self._cursors.items()):
            limit = min(max_records, len(out) + share)
            while len(out) < limit and cursor.position < cursor.end:
                if cursor.records is None or cursor.segment is None:
                    segments = await self.archive.segments(tp, cursor.position)
                    if not segments or segments[0].first > cursor.position:
                        raise LogError(
                            f"history lost on {tp}: offset {cursor.position} is no longer archived",
                            retriable=False,
                        )
                    cursor.segment = segments[0]
                    cursor.records = await self.archive.open(tp, cursor.segment, cursor.position)
                take = list(islice(cursor.records, limit - len(out)))
                if take:
                    out += take
                    cursor.position = take[-1].offset + 1
                    continue
                if cursor.position <= cursor.segment.last:  # never skip history silently
                    raise LogError(
                        f"archive segment {cursor.segment.key} ends before offset "
                        f"{cursor.segment.last}, at {cursor.position - 1}: it is damaged",
                        retriable=False,
                    )
                cursor.segment = cursor.records = None  # done with it: on to the next
            if cursor.position >= cursor.end:
                del self._cursors[tp]  # the log is already positioned at cursor.end
            if len(out) >= max_records:
                break
        return out

    async def seek(self, tp: TP, offset: int) -> None:
        self.inner.wakeup()  # a fetch waiting for records holds the lock: end its wait
        async with self._lock:
            ends = await self.archive.ends([tp])
            begins = await self.log.beginning_offsets([tp])
            await self.inner.seek(tp, await self._route(tp, offset, ends[tp], begins[tp]))

    def wakeup(self) -> None:
        self.inner.wakeup()

    async def commit(self, offsets: Mapping[TP, int]) -> None:
        await self.inner.commit(offsets)
