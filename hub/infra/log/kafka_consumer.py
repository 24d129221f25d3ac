"""The Kafka consumer: a group member that seeks to the positions its listener returns
(stored in Postgres) whenever partitions are assigned, or a reader of given partitions.

aiokafka runs the rebalance callbacks in its coordinator task and only logs what they
raise. So an error in ours (the listener's, or its positions' load) is kept and raised by
the next :meth:`KafkaConsumer.fetch`, never left in a log line, and a partition that could
not be positioned stays paused (nothing is read from it from a wrong offset) until a
fetch positions it again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import anyio
import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as KafkaTP
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError

from hub.infra.db import is_retriable
from hub.infra.lifecycle import Lifecycle
from hub.infra.log.kafka_common import KafkaSettings, kafka_call
from hub.infra.ports import (
    ConsumerRecord,
    RebalanceListener,
    TopicPartition,
)
from schemas.errors import HubError, LogError

__all__ = ["KafkaConsumer"]

log = structlog.get_logger(__name__)


class _Bridge(ConsumerRebalanceListener):  # type: ignore[misc]
    """Turns aiokafka's rebalance callbacks into our listener's, and seeks; what they
    raise goes to the consumer's next fetch (aiokafka would only log it)."""

    def __init__(self, owner: KafkaConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: list[KafkaTP]) -> None:
        tps = frozenset(map(self.owner.names.tp, revoked))
        self.owner.unpositioned -= tps
        try:
            if tps and self.owner.listener is not None:
                await self.owner.listener.on_revoked(tps)
        except Exception as exc:
            self.owner.failed(exc)

    async def on_partitions_assigned(self, assigned: list[KafkaTP]) -> None:
        try:
            await self.owner.position_at_start(frozenset(map(self.owner.names.tp, assigned)))
        except Exception as exc:
            self.owner.failed(exc)


class KafkaConsumer(Lifecycle):
    """A ``LogConsumer`` over aiokafka."""

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        group_id: str | None,
        topics: Sequence[str],
        listener: RebalanceListener | None,
        partitions: Sequence[TopicPartition],
    ) -> None:
        if group_id is None and not partitions:
            raise LogError("a consumer without a group needs explicit partitions", retriable=False)
        if group_id is not None and not topics:
            raise LogError("a group member needs topics to subscribe to", retriable=False)
        self.settings = settings
        self.names = settings.names
        self.group_id = group_id
        self.topics = tuple(topics)
        self.listener = listener
        self._fixed = tuple(partitions)
        self._consumer: AIOKafkaConsumer | None = None
        self._waiting: anyio.CancelScope | None = None  # a fetch waiting in getmany
        self._woken = False
        self._failure: Exception | None = None  # raised in a rebalance callback
        self.unpositioned: frozenset[TopicPartition] = frozenset()
        """Assigned partitions held paused: positioning them failed."""

    async def start(self) -> None:
        if self._consumer is not None:
            return
        s = self.settings
        consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap_servers,
            client_id=f"{s.client_id}-{self.group_id or 'reader'}",
            group_id=self.names.group(self.group_id),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            # A JoinGroup may wait on the broker for the whole rebalance timeout; the
            # request must outlive it, as Java's client ensures.
            request_timeout_ms=max(s.request_timeout_ms, s.session_timeout_ms + 5_000),
            rebalance_timeout_ms=s.session_timeout_ms,
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=s.heartbeat_interval_ms,
            max_partition_fetch_bytes=s.max_partition_fetch_bytes,
            fetch_max_bytes=max(s.max_partition_fetch_bytes * 4, 50 << 20),
        )
        if self.group_id is not None:
            consumer.subscribe(list(map(self.names.topic, self.topics)), listener=_Bridge(self))
        else:
            consumer.assign([self.names.ktp(tp) for tp in self._fixed])
        self._consumer = consumer  # rebalance callbacks may run as soon as start() joins
        try:
            await consumer.start()
        except BaseException as exc:
            self._consumer = None
            with anyio.CancelScope(shield=True):
                await consumer.stop()  # leave no background coordinator behind
            if isinstance(exc, KafkaError | OSError | asyncio.TimeoutError):
                # Joining a group can fail transiently (coordinator moving, a rebalance
                # racing); the caller retries with backoff.
                raise LogError(
                    f"cannot join Kafka group {self.group_id} at {s.bootstrap_servers}: "
                    f"{type(exc).__name__}: {exc}",
                    retriable=True,
                ) from exc
            raise
        if self.group_id is None:
            await self.position_at_start(frozenset(self._fixed))

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    @property
    def _c(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise LogError("consumer is not started", retriable=False)
        return self._consumer

    async def position_at_start(self, tps: frozenset[TopicPartition]) -> None:
        if not tps:
            return
        target = self._c
        ktps = [self.names.ktp(tp) for tp in tps]
        # Hold the new partitions until we have sought: the listener awaits Postgres, and
        # meanwhile the fetcher would otherwise start at the reset position.
        target.pause(*ktps)
        try:
            starts: Mapping[TopicPartition, int | None] = {}
            if self.listener is not None:
                starts = await self.listener.on_assigned(tps)
            for tp, ktp in zip(tps, ktps, strict=True):
                start = starts.get(tp)
                if start is None:
                    if self.listener is not None or self.group_id is None:
                        await target.seek_to_beginning(ktp)
                else:
                    target.seek(ktp, start)
        except BaseException:
            # Failed, not merely under way (a fetch meanwhile must not position them a
            # second time): they stay paused, and the next fetch tries again.
            self.unpositioned |= tps
            raise
        target.resume(*ktps)
        self.unpositioned -= tps
        log.info("kafka.assigned", group=self.group_id, partitions=sorted(map(str, tps)))

    def failed(self, exc: Exception) -> None:
        """A rebalance callback raised ``exc``: the next fetch raises it."""
        log.warning("kafka.rebalance_failed", group=self.group_id, error=str(exc))
        if self._failure is None:
            self._failure = exc
        self.wakeup()

    async def _recover(self) -> None:
        """Raise what a rebalance callback raised (a driver error as a ``LogError``,
        retriable if the same work may succeed again); then position the partitions it left
        paused (raising again if that fails again)."""
        failure, self._failure = self._failure, None
        if failure is not None:
            self._woken = False
            if isinstance(failure, HubError):
                raise failure
            raise LogError(  # the listener's own error (its database): retried if it may
                f"Kafka consumer: a rebalance callback failed: {failure}",
                retriable=is_retriable(failure),
            ) from failure
        pending = self.unpositioned & self.assignment()
        self.unpositioned = pending
        if pending:
            await self.position_at_start(pending)

    def assignment(self) -> frozenset[TopicPartition]:
        if self._consumer is None:
            return frozenset()
        return frozenset(map(self.names.tp, self._consumer.assignment()))

    async def fetch(self, max_records: int, timeout: float) -> list[ConsumerRecord]:
        await self._recover()
        if self._woken:  # woken between fetches: read what is there, do not wait
            self._woken, timeout = False, 0.0
        # getmany drains the records it returns without awaiting: cancelling it while it
        # waits loses none
        with anyio.CancelScope() as waiting:
            self._waiting = waiting
            try:
                batches = await kafka_call(
                    "cannot fetch from Kafka",
                    lambda: self._c.getmany(
                        timeout_ms=int(timeout * 1000), max_records=max_records
                    ),
                )
            finally:
                self._waiting = None
        if waiting.cancelled_caught:
            self._woken = False
            return []
        out: list[ConsumerRecord] = []
        for ktp in sorted(batches, key=lambda t: (t.topic, t.partition)):
            tp = self.names.tp(ktp)
            for m in batches[ktp]:
                out.append(
                    ConsumerRecord(
                        tp.topic,
                        m.partition,
                        m.offset,
                        m.key,
                        m.value,
                        tuple(m.headers),
                        m.timestamp,
                        tp,
                    )
                )
        return out

    async def seek(self, tp: TopicPartition, offset: int) -> None:
        self._c.seek(self.names.ktp(tp), offset)

    def wakeup(self) -> None:
        if self._waiting is not None:
            self._waiting.cancel()
        else:
            self._woken = True

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if self.group_id is None or not offsets:
            return
        await kafka_call(
            "cannot commit offsets",
            lambda: self._c.commit({self.names.ktp(tp): off for tp, off in offsets.items()}),
        )
