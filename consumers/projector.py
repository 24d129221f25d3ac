"""The projector: runs one projection from the log into Postgres, exactly once.

Each batch: 1. fetch up to ``batch_size`` records per lane, lingering briefly to fill it;
2. decode them, trusted (not validated again; bytes that do not fit their schema are poison);
3. in one transaction: claim the positions (the batch must start at the stored position,
   else it is dropped and re-read), skip events already applied (``event_id``), run each
   event's handler, flush the projection, dead-letter any poison, store the new positions
   (committed without waiting for the WAL flush: see ``derived_transaction``); 4. re-seek
   the partitions whose batch was dropped (what was read ahead is left out: ``Seeks``).
A revocation lets the revoked partitions' transactions commit before it hands them over.

Step 3 runs in ``lanes`` transactions at once, each for the batch's records of its own
partitions, as projector processes sharing the partitions would. A handler raising a
non-retriable error makes its event poison: the batch is redone without it, and the
event goes to ``agenthub.dlq`` (a flush failing without naming an event: the batch is
redone one event per transaction to find it). Retriable failures (Postgres or the broker
down) are retried with backoff. ``stop_soon()`` lets the current batch finish, then stops.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from typing import Any

import anyio
import asyncpg
import structlog
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from consumers.applied_events import AppliedEvents
from consumers.archive.reader import ArchiveReader, ArchiveThenLog
from consumers.bookkeeping import ensure_bookkeeping
from consumers.dead_letters import dead_letter_poison
from consumers.migrations import migrate
from consumers.positions import PostgresPositionStore
from consumers.projector_types import (
    Applying,
    BatchInHand,
    FlushFailed,
    Item,
    Key,
    Lanes,
    Part,
    Poison,
    ProjectorSettings,
    ProjectorStats,
    Seeks,
    decode_batch,
    handled_ids,
    measure_lag,
    not_in,
    rewound,
)
from consumers.promotion import VersionKeeper
from consumers.readers import WaitingReaders
from consumers.retry import Backoff, RateLimitedWarnings
from consumers.worker import Worker
from hub.infra.db import derived_transaction, is_retriable
from hub.infra.ports import ConsumerRecord, EventLog, LogConsumer, PositionStore, TopicPartition
from projections.base import Projection, call_handler
from schemas.codec import Codec
from schemas.errors import HubError

REWIND_CHECK_S = 1.0  # how often an idle projector looks for a rewind done elsewhere

__all__ = ["Projector", "ProjectorSettings", "ProjectorStats"]

logger = structlog.get_logger(__name__)


class Projector(Worker):
    """Runs ``projection`` over ``log``, storing rows and positions in ``pool``'s database."""

    def __init__(
        self,
        projection: Projection[Any],
        *,
        log: EventLog,
        pool: asyncpg.Pool,
        codec: Codec,
        positions: PositionStore | None = None,
        settings: ProjectorSettings | None = None,
        archive: ArchiveReader | None = None,
        readers: WaitingReaders | None = None,
    ) -> None:
        super().__init__()
        self.readers = readers or WaitingReaders()
        self.projection = projection
        self.archive = archive
        self.log = log
        self.pool = pool
        self.codec = codec
        self.settings = settings or ProjectorSettings()
        self.retry_initial, self.retry_max = self.settings.retry_initial, self.settings.retry_max
        self.positions: PositionStore = positions or PostgresPositionStore(pool)
        self.name = projection.consumer
        self.stats = ProjectorStats()
        self._consumer: LogConsumer | None = None
        self._next: dict[TopicPartition, int] = {}
        self._seeks = Seeks()  # a batch read before its partition's latest seek is stale
        self._applying = Applying()  # partitions in a transaction, for revocations
        self._next_rewind_check = 0.0
        self._applied: anyio.Event | None = None  # set when the batch in hand is applied
        self._lanes = Lanes(self.settings.lanes)
        self._split = False  # whether the batch in hand was shared among the lanes
        self._next_lag_report = 0.0
        self.versions = VersionKeeper(pool, log, projection, self.settings.retired_grace)
        self.applied = AppliedEvents(
            pool,
            projection.schema,
            window_s=self.settings.dedupe_window,
            check_every_s=self.settings.dedupe_check_every,
        )
        self._log = RateLimitedWarnings(logger.bind(projector=self.name))

    # ── lifecycle ───────────────────────────────────────────────────────────────────────

    async def start(self) -> None:
        """Migrate the projection and join the consumer group (retrying while retriable)."""
        if self._consumer is not None:
            return
        await self.retrying("migrate", self._migrate)
        await self.versions.start()
        topics = [str(t) for t in self.projection.topics]
        consumer: LogConsumer = (  # history the log no longer holds comes from the archive
            ArchiveThenLog(self.log, self.archive, group_id=self.name, topics=topics, listener=self)
            if self.archive is not None
            else self.log.consumer(group_id=self.name, topics=topics, listener=self)
        )
        await self.retrying("join", consumer.start)
        self._consumer = consumer
        self._log.info("projector.started", topics=[str(t) for t in self.projection.topics])

    async def _migrate(self) -> None:
        async with self.pool.acquire() as conn:
            await ensure_bookkeeping(conn)
            await migrate(conn, self.projection)

    async def stop(self) -> None:
        """Leave the group and release the consumer (idempotent)."""
        self.stop_soon()
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with anyio.CancelScope(shield=True):
                await consumer.stop()
                if self.archive is not None:
                    await self.archive.close()
            self._log.info("projector.stopped", **self.stats.summary())

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Project until ``stop_soon()``; raises if the projection cannot go on.

        A prefetch task fetches and decodes the next batch while this one is applied, and
        ``lanes`` transactions apply a batch's partitions at once: Python overlaps
        Postgres. A prefetched batch that became stale (a partition sought or reassigned
        meanwhile) is left out or fails its position claim: overlapping costs no correctness.
        """
        try:
            await self.start()
            task_status.started()
            streams = [
                anyio.create_memory_object_stream[Part](max_buffer_size=1)
                for _ in range(self._lanes.count)
            ]
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._prefetch, [send for send, _ in streams])
                async with anyio.create_task_group() as lanes:
                    for _, receive in streams:
                        lanes.start_soon(self._apply_lane, receive)
                tg.cancel_scope.cancel()
        finally:
            await self.stop()

    async def _apply_lane(self, receive: MemoryObjectReceiveStream[Part]) -> None:
        async with receive:
            async for items, poison, batch in receive:
                try:
                    if not self.stopping and (mine := self._seeks.current(items, batch.seeks)):
                        await self._process(mine, poison)
                finally:
                    batch.part_applied()

    async def _prefetch(self, sends: list[MemoryObjectSendStream[Part]]) -> None:
        with ExitStack() as closing:
            for send in sends:
                closing.enter_context(send)
            while not self.stopping:
                seeks = self._seeks.count
                records = await self._fetch_batch(seeks)
                if records:
                    split = len(records) > self.settings.batch_size  # a backlog: share it
                    parts = self._lanes.route(*decode_batch(self.codec, records), split=split)
                    previous = self._applied
                    if previous is not None and not (split and self._split):
                        with self.waiting():  # the lanes may hold its partitions' records
                            await previous.wait()
                    batch = BatchInHand(len(parts), seeks)
                    self._applied, self._split = batch.applied, split
                    try:
                        for lane, (items, poison) in parts.items():
                            await sends[lane].send((items, poison, batch))
                    except anyio.BrokenResourceError:
                        return  # a lane stopped (stop_soon): so do we
                else:
                    await self._follow_rewinds()
                await self._report_lag()
                await self.versions.tick(self._log)
                if self.projection.dedupe:
                    await self.applied.tick(self._log)

    # ── the rebalance listener ──────────────────────────────────────────────────────────

    async def on_assigned(
        self, partitions: frozenset[TopicPartition]
    ) -> Mapping[TopicPartition, int | None]:
        stored = await self.retrying(
            "load positions", lambda: self.positions.load(self.name, sorted(partitions))
        )
        self._next.update(stored)
        self._seeks.assigned(partitions)
        self._log.info("projector.assigned", partitions=sorted(map(str, partitions)))
        return {tp: stored.get(tp) for tp in partitions}

    async def on_revoked(self, partitions: frozenset[TopicPartition]) -> None:
        """Leave their records read ahead to the next owner, and let their batches in a
        transaction commit first (at most ``revoke_wait``)."""
        for tp in partitions:
            self._next.pop(tp, None)
        self._seeks.revoked(partitions)
        settled = await self._applying.settled(partitions, self.settings.revoke_wait)
        self._log.info(
            "projector.revoked", partitions=sorted(map(str, partitions)), settled=settled
        )

    # ── fetching ────────────────────────────────────────────────────────────────────────

    async def _fetch_batch(self, seeks: int) -> list[ConsumerRecord]:
        """A read, and another after a linger unless a seek came since ``seeks``: its
        records, from the new position, would be left out with the stale (a stall)."""
        assert self._consumer is not None
        s = self.settings
        limit = s.batch_size * self._lanes.count  # a batch's worth for each lane
        records: list[ConsumerRecord] = []
        with self.waiting() as scope:
            try:
                records = await self._consumer.fetch(limit, s.fetch_timeout)
                if records and len(records) < limit and await self._lingered(seeks):
                    more = await self._consumer.fetch(limit - len(records), 0.0)
                    records += not_in(records, more)
            except HubError as exc:
                if not exc.retriable:
                    raise
                self.stats.retries += 1
                self._log.warning("projector.fetch_failed", error=str(exc))
                await self.pause(Backoff(s.retry_initial, s.retry_max, min(self.stats.retries, 8)))
                return []
        return [] if scope.cancelled_caught else records

    async def _lingered(self, seeks: int) -> bool:
        """Wait a moment for more records to join a batch that is not full; whether to
        read again. A batch that cannot be applied before the one in hand waits for that
        (at most ``batch_linger``): a busy projector gets bigger batches. With
        ``idle_linger``, a batch gathers for that long unless a reader waits for it."""
        s = self.settings
        until = time.monotonic() + s.idle_linger
        applied, waited = self._applied, False
        if applied is not None and not applied.is_set():
            with anyio.move_on_after(s.batch_linger):
                await applied.wait()
            waited = True
        waited = await self.readers.linger(self.name, until - time.monotonic()) or waited
        return waited and self._seeks.count == seeks  # a seek meanwhile: no second read

    # ── applying ────────────────────────────────────────────────────────────────────────

    async def _process(self, items: list[Item], poison: dict[Key, Poison]) -> None:
        backoff = self.backoff()
        one_by_one = False
        while True:
            try:
                if one_by_one:
                    for item in items:
                        await self._apply_single(item, poison)
                else:
                    await self._apply(items, poison)
                return
            except Poison as p:
                poison[p.key] = p
            except FlushFailed as f:
                self._log.warning("projector.flush_failed_isolating", error=str(f.error))
                one_by_one = True
            except Exception as exc:
                if not is_retriable(exc):
                    raise
                if self.stopping:
                    self._log.warning("projector.stopping_with_batch_unapplied", error=str(exc))
                    return
                self.on_retry("apply", exc)
                await self.pause(backoff)

    async def _apply_single(self, item: Item, poison: dict[Key, Poison]) -> None:
        """Apply one record in its own transaction, marking it poison if it fails."""
        key = (item[0].tp, item[0].offset)
        while True:
            try:
                await self._apply([item], poison)
                return
            except Poison as p:
                poison[p.key] = p
            except FlushFailed as f:
                event_type = type(item[1]).__name__ if item[1] is not None else None
                poison[key] = Poison(key, f.error, event_type)

    async def _apply(self, items: Sequence[Item], poison: Mapping[Key, Poison]) -> None:
        if not items:
            return
        starts: dict[TopicPartition, int] = {}
        ends: dict[TopicPartition, int] = {}
        for rec, _ in items:
            starts.setdefault(rec.tp, rec.offset)
            ends[rec.tp] = rec.offset + 1
        projection = self.projection
        handlers = projection.handlers
        applied = duplicates = 0
        dead = []
        async with (
            self._applying.of(starts),
            self.pool.acquire() as conn,
            derived_transaction(conn),
        ):
            fresh: set[Any] | None = None
            if projection.dedupe:  # claimed, and their event ids recorded, in one statement
                ids = handled_ids(items, handlers, poison)
                claimed, stored, fresh = await self.applied.claim_new(
                    conn, self.positions, self.name, starts, ids
                )
            else:
                claimed, stored = await self.positions.claim(conn, self.name, starts)
            mine = [(r, e) for r, e in items if r.tp in claimed]
            batch = projection.begin(conn, projection.schema)
            await projection.prepare(
                batch,
                [
                    e
                    for r, e in mine
                    if e is not None
                    and (r.tp, r.offset) not in poison
                    and (fresh is None or e.event_id in fresh)
                ],
            )
            for rec, event in mine:
                key = (rec.tp, rec.offset)
                if key in poison:
                    dead.append(poison[key])
                    continue
                handler = handlers.get(type(event)) if event is not None else None
                if handler is None or event is None:
                    continue
                if fresh is not None:
                    if event.event_id not in fresh:
                        duplicates += 1
                        continue
                    fresh.discard(event.event_id)  # a second copy in this batch is a duplicate
                try:
                    await call_handler(handler, batch, event, rec)
                except Exception as exc:
                    if is_retriable(exc):
                        raise
                    raise Poison(key, exc, type(event).__name__) from exc
                applied += 1
            try:
                await projection.flush(batch)
            except Exception as exc:
                if is_retriable(exc):
                    raise
                raise FlushFailed(exc) from exc
            if dead:
                await dead_letter_poison(
                    conn,
                    self.log,
                    self.codec,
                    self.projection.dead_letter_consumer,
                    dead,
                    {(r.tp, r.offset): r for r, _ in items},
                    self._log,
                )
            await self.positions.advance(
                conn,
                self.name,
                {tp: ends[tp] for tp in claimed},
                applied=applied,
                duplicates=duplicates,
                dead_lettered=len(dead),
            )
        for tp in claimed:
            self._next[tp] = ends[tp]
        for tp, position in stored.items():
            await self._resync(tp, position)
        self.stats.count(applied, duplicates, len(dead), dropped=bool(stored))

    async def _follow_rewinds(self) -> None:
        """A replay in another process may move this projection's stored positions back
        while it runs (``agent-hub replay`` beside ``agent-hub up``): when idle, read them
        and go back too, so the rewound history is applied whoever applies it."""
        now = time.monotonic()
        if self._consumer is None or now < self._next_rewind_check:
            return
        self._next_rewind_check = now + REWIND_CHECK_S
        back = await rewound(self.positions, self.name, self._consumer, self._next)
        for tp, position in back.items():
            self._log.info("projector.rewound", tp=str(tp), to=position)
            self._next[tp] = position
            self._seeks.sought(tp)
            await self._consumer.seek(tp, position)

    async def _resync(self, tp: TopicPartition, position: int) -> None:
        """Our batch for ``tp`` did not start at the stored position: read from there."""
        self._log.info("projector.batch_dropped", tp=str(tp), stored=position)
        self._next[tp] = position
        if self._consumer is not None and tp in self._consumer.assignment():
            self._seeks.sought(tp)
            await self._consumer.seek(tp, position)

    # ── lag, retries ────────────────────────────────────────────────────────────────────

    async def _report_lag(self) -> None:
        now = time.monotonic()
        if now < self._next_lag_report or self._consumer is None:
            return
        self._next_lag_report = now + self.settings.lag_interval
        try:
            lag = await measure_lag(self.log, self._consumer, self._next)
        except HubError as exc:
            self._log.warning("projector.lag_unavailable", error=str(exc))
            return
        if lag:
            self.stats.lag = lag
            partitions = {str(tp): n for tp, n in lag.items()}
            self._log.info("projector.lag", total=sum(lag.values()), partitions=partitions)

    def lag(self) -> dict[TopicPartition, int]:
        """The last measured lag per assigned partition."""
        return dict(self.stats.lag)

    def on_retry(self, what: str, exc: BaseException) -> None:
        self.stats.retries += 1
        self._log.warning("projector.retry", step=what, error=f"{type(exc).__name__}: {exc}")
