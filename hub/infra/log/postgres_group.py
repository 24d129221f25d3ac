"""Consumers of the Postgres log, and consumer groups shared out with advisory locks.

A group member holds one dedicated connection. On it, it holds a session advisory lock
that says it is alive, and one advisory lock per partition it owns. It LISTENs for appends
and for membership changes. At every rebalance tick the members compute the same
assignment, round-robin over the sorted live members. A member gives up the partitions it
no longer owns (after ``on_revoked``, between batches) and try-locks the ones it gains,
which it gets once their old owner lets go. When a member dies its connection closes and
Postgres drops its locks: the next tick hands its partitions to the others. This is what
Kafka's group coordinator does for Kafka. Exactly-once does not depend on it; the position
store rejects a batch that does not start at the stored position.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import anyio
import asyncpg
import structlog

from hub.infra.db import is_retriable, translate_log_errors
from hub.infra.lifecycle import Lifecycle
from hub.infra.log.postgres_rows import HeaderSets, records_of
from hub.infra.log.postgres_tail import TailKnowledge
from hub.infra.ports import ConsumerRecord, RebalanceListener, TopicPartition
from schemas.errors import LogError
from schemas.ids import uuid7

__all__ = ["GroupLog", "PostgresConsumer", "append_channel"]


@functools.cache
def append_channel(topic: str) -> str:
    """The channel the log NOTIFYs ``"topic|partition:end,..."`` on when ``topic`` is
    appended to (:mod:`hub.infra.log.postgres_tail`). One per topic, so an append wakes
    the consumers of its topic only (one channel for all woke every projector of a
    process on every append, and each wake-up costs a Postgres backend and the
    consumer's process a round of work)."""
    name = f"hub_log:{topic}"
    if len(name.encode()) > 63:  # Postgres refuses a longer channel name
        name = "hub_log:" + hashlib.blake2b(topic.encode(), digest_size=16).hexdigest()
    return name


class GroupLog(Protocol):
    """What a consumer needs of the Postgres log (:class:`~hub.infra.log.postgres.PostgresLog`)."""

    dsn: str
    schema: str

    @property
    def pool(self) -> asyncpg.Pool: ...

    async def read(
        self,
        positions: Sequence[tuple[TopicPartition, int, int]],
        usual_headers: tuple[Sequence[str], Sequence[bytes]] = ((), ()),
    ) -> list[asyncpg.Record]: ...

    async def commit_group(self, group_id: str, offsets: Mapping[TopicPartition, int]) -> None: ...

    async def beginning_offsets(
        self, tps: Sequence[TopicPartition]
    ) -> dict[TopicPartition, int]: ...


log = structlog.get_logger(__name__)

GROUP_CHANNEL = "hub_log_group"

JOIN = """
INSERT INTO {s}.members (group_id, member_id, lock_key, topics) VALUES ($1, $2, $3, $4)
ON CONFLICT (group_id, member_id) DO NOTHING
"""
LEAVE = "DELETE FROM {s}.members WHERE group_id = $1 AND member_id = $2"
MEMBERS = """
SELECT m.member_id,
       EXISTS (
           SELECT 1 FROM pg_locks l
           WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
             AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
             AND l.classid::bigint = ((m.lock_key >> 32) & 4294967295)
             AND l.objid::bigint = (m.lock_key & 4294967295)
       ) AS alive
FROM {s}.members m
WHERE m.group_id = $1
"""
FORGET = "DELETE FROM {s}.members WHERE group_id = $1 AND member_id = ANY($2::text[])"
PARTITIONS = """
SELECT topic, partition FROM {s}.partitions WHERE topic = ANY($1::text[])
ORDER BY topic, partition
"""
COMMITTED = """
SELECT topic, partition, "offset" FROM {s}.group_offsets
WHERE group_id = $1 AND (topic, partition) IN (SELECT * FROM unnest($2::text[], $3::int[]))
"""


_CONNECTION_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
)


def _lock_key(*parts: str) -> int:
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class PostgresConsumer(Lifecycle):
    """A ``LogConsumer`` of the Postgres log."""

    def __init__(
        self,
        log_: GroupLog,
        *,
        group_id: str | None,
        topics: Sequence[str] = (),
        listener: RebalanceListener | None = None,
        partitions: Sequence[TopicPartition] = (),
        rebalance_interval: float = 1.0,
    ) -> None:
        if group_id is None and not partitions:
            raise LogError("a consumer without a group needs explicit partitions", retriable=False)
        if group_id is not None and not topics:
            raise LogError("a group member needs topics to subscribe to", retriable=False)
        self._log = log_
        self.group_id = group_id
        self.topics = tuple(topics)
        self._listener = listener
        self._fixed = tuple(partitions)
        self.member_id = uuid7().hex
        self._rebalance_interval = rebalance_interval
        self._conn: asyncpg.Connection | None = None
        self._positions: dict[TopicPartition, int] = {}
        self._busy: set[TopicPartition] = set()  # the partitions that had records last read
        self._headers = HeaderSets()  # each header set read, and the one a read expects
        self._wakeup = anyio.Event()
        self._woken = False  # wakeup() was called: the fetch returns instead of waiting
        self._tail = TailKnowledge()
        self._group_changed = True
        self._next_rebalance = 0.0
        self._started = False
        s = log_.schema
        self._sql = {
            k: v.format(s=s)
            for k, v in {
                "join": JOIN,
                "leave": LEAVE,
                "members": MEMBERS,
                "forget": FORGET,
                "partitions": PARTITIONS,
                "committed": COMMITTED,
            }.items()
        }

    # ── lifecycle ───────────────────────────────────────────────────────────────────────

    async def start(self) -> None:
        if self._started:
            return
        await self._connect()
        self._started = True

    async def _connect(self) -> None:
        with translate_log_errors("cannot connect a Postgres log consumer"):
            conn = await asyncpg.connect(self._log.dsn, timeout=10)
        try:
            topics = set(self.topics) | {tp.topic for tp in self._fixed}
            for topic in sorted(topics):
                await conn.add_listener(append_channel(topic), self._on_append)
            if self.group_id is not None:
                await conn.add_listener(GROUP_CHANNEL, self._on_group_change)
                await conn.execute("SELECT pg_advisory_lock($1)", self._member_key)
                await conn.execute(
                    self._sql["join"],
                    self.group_id,
                    self.member_id,
                    self._member_key,
                    list(self.topics),
                )
                await conn.execute("SELECT pg_notify($1, $2)", GROUP_CHANNEL, self.group_id)
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        self._tail.forget()  # notifications may have been missed while disconnected
        self._group_changed = True
        if self.group_id is None and not self._positions:
            await self._assign(frozenset(self._fixed))

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        conn, self._conn = self._conn, None
        self._positions.clear()
        if conn is None or conn.is_closed():
            return
        try:
            if self.group_id is not None:
                await conn.execute(self._sql["leave"], self.group_id, self.member_id)
                await conn.execute("SELECT pg_notify($1, $2)", GROUP_CHANNEL, self.group_id)
        except (*_CONNECTION_ERRORS, TimeoutError):
            pass  # closing the connection releases the locks anyway
        finally:
            await conn.close(timeout=5)

    @property
    def _member_key(self) -> int:
        return _lock_key("member", self.group_id or "", self.member_id)

    def _partition_key(self, tp: TopicPartition) -> int:
        return _lock_key("partition", self.group_id or "", tp.topic, str(tp.partition))

    def _on_append(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if self._tail.notified(payload, self._positions):
            self._wakeup.set()

    def _on_group_change(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload == self.group_id:
            self._group_changed = True
            self._wakeup.set()

    # ── the consumer API ────────────────────────────────────────────────────────────────

    def assignment(self) -> frozenset[TopicPartition]:
        return frozenset(self._positions)

    async def seek(self, tp: TopicPartition, offset: int) -> None:
        if tp not in self._positions:
            raise LogError(f"cannot seek {tp}: not assigned to this consumer", retriable=False)
        self._positions[tp] = offset
        self._tail.forget()

    def wakeup(self) -> None:
        self._woken = True
        self._wakeup.set()

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if self.group_id is not None:
            await self._log.commit_group(self.group_id, offsets)

    async def fetch(self, max_records: int, timeout: float) -> list[ConsumerRecord]:
        if not self._started:
            raise LogError("consumer is not started", retriable=False)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self._conn is None or self._conn.is_closed():
                    await self._reconnect()
                if self.group_id is not None and (
                    self._group_changed or time.monotonic() >= self._next_rebalance
                ):
                    await self._rebalance()
                self._wakeup = anyio.Event()
                records = await self._read(max_records) if self._tail.worth_reading() else []
            except _CONNECTION_ERRORS as exc:
                await self._lose_connection()
                raise LogError(
                    f"Postgres log consumer: {exc}", retriable=is_retriable(exc)
                ) from exc
            except BaseException:
                # Cancelled mid-query: the connection may still be busy with it, so drop it
                # (a group member's locks go with it) rather than reuse it half-way.
                with anyio.CancelScope(shield=True):
                    await self._lose_connection(expected=True)
                raise
            if records:
                return records
            if self._woken:
                self._woken = False
                return []
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            wait = remaining
            if self.group_id is not None:
                wait = min(wait, max(0.0, self._next_rebalance - time.monotonic()))
            with anyio.move_on_after(wait):
                await self._wakeup.wait()
            if self._woken:
                self._woken = False
                return []
            if not self._wakeup.is_set() and time.monotonic() >= deadline:
                return []  # nothing was appended while we waited

    # ── reading ─────────────────────────────────────────────────────────────────────────

    async def _read(self, max_records: int) -> list[ConsumerRecord]:
        """Up to ``max_records`` next records of the assigned partitions.

        A read that some partition filled (it held more than its share) is followed by
        another for the rest, so a fetch brings ``max_records`` when the log holds that
        many: after a pause every partition gets an even share, and most may be empty (a
        backlog on 4 of the archiver's 32 partitions came in reads of 252 records, each
        taken for the end of the log).
        """
        out, more = await self._read_once(max_records)
        while more and 0 < len(out) < max_records:
            extra, more = await self._read_once(max_records - len(out))
            if not extra:
                break
            out += extra
        return out

    async def _read_once(self, max_records: int) -> tuple[list[ConsumerRecord], bool]:
        """Up to ``max_records`` next records of the assigned partitions, in one query,
        and whether a partition may hold more (it filled its share, and no record was
        held back at a gap).

        The partitions that had records at the last read share ``max_records``; each of
        the others may bring its even share of it (a partition that fills up then joins
        the first kind). So one busy partition among many idle ones (the archiver reads
        every topic) is read in full pages, not in slices of ``max_records / partitions``.
        """
        if not self._positions:
            return [], False
        tps = sorted(self._positions)
        busy = [tp for tp in tps if tp in self._busy] or tps
        share = -(-max_records // len(busy))
        probe = -(-max_records // len(tps))
        limits = [share if tp in self._busy else probe for tp in tps]
        generation = self._tail.generation
        starts = [self._positions[tp] for tp in tps]
        rows = await self._log.read(
            [(tp, start, limit) for tp, start, limit in zip(tps, starts, limits, strict=True)],
            self._headers.usual_arrays(),
        )
        moved = {i for i, tp in enumerate(tps, start=1) if self._positions.get(tp) != starts[i - 1]}
        if moved:  # sought (or revoked) during the read: what it read there is stale
            rows = [row for row in rows if row[0] not in moved]
        out, self._busy = records_of(rows, tps, self._positions, max_records, self._headers)
        counts = Counter(row[0] for row in rows)
        filled = any(counts[i] >= limit for i, limit in enumerate(limits, start=1))
        all_taken = len(out) == len(rows)
        self._tail.read(generation, complete=all_taken and not filled)
        return out, all_taken and filled

    # ── assignment ──────────────────────────────────────────────────────────────────────

    async def _assign(self, tps: frozenset[TopicPartition]) -> None:
        if not tps:
            return
        starts: Mapping[TopicPartition, int | None] = {}
        if self._listener is not None:
            starts = await self._listener.on_assigned(tps)
        elif self.group_id is not None:
            starts = await self._committed(tps)
        missing = [tp for tp in tps if starts.get(tp) is None]
        beginnings = await self._log.beginning_offsets(missing) if missing else {}
        for tp in tps:
            start = starts.get(tp)
            self._positions[tp] = beginnings[tp] if start is None else start
        self._tail.forget()
        log.info("postgres_log.assigned", group=self.group_id, partitions=sorted(map(str, tps)))

    async def _committed(self, tps: frozenset[TopicPartition]) -> dict[TopicPartition, int | None]:
        tl = list(tps)
        rows = await self._log.pool.fetch(
            self._sql["committed"], self.group_id, [t.topic for t in tl], [t.partition for t in tl]
        )
        return {TopicPartition(r[0], r[1]): r[2] for r in rows}

    async def _rebalance(self) -> None:
        conn = self._conn
        assert conn is not None and self.group_id is not None
        self._group_changed = False
        self._next_rebalance = time.monotonic() + self._rebalance_interval
        rows = await conn.fetch(self._sql["members"], self.group_id)
        alive = sorted(r["member_id"] for r in rows if r["alive"])
        dead = [r["member_id"] for r in rows if not r["alive"]]
        if dead:
            await conn.execute(self._sql["forget"], self.group_id, dead)
            log.info("postgres_log.members_gone", group=self.group_id, members=dead)
        if self.member_id not in alive:  # our row went missing: join again
            await conn.execute(
                self._sql["join"],
                self.group_id,
                self.member_id,
                self._member_key,
                list(self.topics),
            )
            alive = sorted([*alive, self.member_id])
        all_tps = [
            TopicPartition(r[0], r[1])
            for r in await conn.fetch(self._sql["partitions"], list(self.topics))
        ]
        me = alive.index(self.member_id)
        target = {tp for i, tp in enumerate(all_tps) if i % len(alive) == me}
        owned = set(self._positions)
        revoked = frozenset(owned - target)
        if revoked:
            if self._listener is not None:
                await self._listener.on_revoked(revoked)
            for tp in revoked:
                await conn.execute("SELECT pg_advisory_unlock($1)", self._partition_key(tp))
                del self._positions[tp]
            await conn.execute("SELECT pg_notify($1, $2)", GROUP_CHANNEL, self.group_id)
            log.info(  # the notice: a member waiting for these locks takes them now
                "postgres_log.revoked", group=self.group_id, partitions=sorted(map(str, revoked))
            )
        gained = []
        for tp in sorted(target - owned):
            if await conn.fetchval("SELECT pg_try_advisory_lock($1)", self._partition_key(tp)):
                gained.append(tp)
        if len(gained) < len(target - owned):
            self._next_rebalance = time.monotonic() + min(0.2, self._rebalance_interval)
        await self._assign(frozenset(gained))

    async def _lose_connection(self, *, expected: bool = False) -> None:
        """The connection is gone; a group member lost its locks, so it owns nothing now.

        ``expected``: dropped on purpose (a cancelled fetch, usually while stopping).
        """
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()
        if self.group_id is None:
            return  # fixed partitions: keep reading from where we were
        lost = frozenset(self._positions)
        self._positions.clear()
        if lost:
            report = log.debug if expected else log.warning
            report("postgres_log.partitions_lost", group=self.group_id, count=len(lost))
            if self._listener is not None:
                await self._listener.on_revoked(lost)

    async def _reconnect(self) -> None:
        await self._connect()
