"""The Kafka log adapter (aiokafka).

The producer is idempotent with ``acks=all``. Partitions are picked by our own murmur2
partitioner (the same one the Postgres log uses, and the same as Kafka's Java client).
Bulk appends go out as one record batch per partition. Topics are created through the
admin client, with the configured partition counts. A group consumer seeks to the
positions its listener returns (stored in Postgres) whenever partitions are assigned.
Kafka's own group commits are kept only for lag monitoring.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import anyio
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka import TopicPartition as KafkaTP
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from hub.infra.lifecycle import Lifecycle
from hub.infra.log.partitioner import partition_for
from hub.infra.ports import (
    ConsumerRecord,
    LogConsumer,
    Position,
    ProducerRecord,
    RebalanceListener,
    TopicPartition,
)
from schemas.errors import HubError, LogError

__all__ = ["KafkaLog", "KafkaSettings"]

log = structlog.get_logger(__name__)

T = TypeVar("T")

_SMALL_APPEND = 8  # up to this many records: per-record send() joins the producer's open batch


def _log_error(what: str, exc: BaseException) -> LogError:
    retriable = bool(getattr(exc, "retriable", True)) or isinstance(exc, asyncio.TimeoutError)
    return LogError(f"{what}: {type(exc).__name__}: {exc}", retriable=retriable)


async def _kafka(what: str, call: Callable[[], Awaitable[T]]) -> T:
    """Run a Kafka call, converting driver errors into :class:`LogError` (the boundary)."""
    try:
        return await call()
    except HubError:
        raise
    except (TimeoutError, KafkaError, OSError) as exc:
        raise _log_error(what, exc) from exc


class KafkaSettings:
    """Client settings for the Kafka adapter."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_id: str = "agent-hub",
        replication_factor: int = 3,
        linger_ms: int = 5,
        max_batch_bytes: int = 1 << 20,
        request_timeout_ms: int = 30_000,
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 3_000,
        max_partition_fetch_bytes: int = 4 << 20,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self.replication_factor = replication_factor
        self.linger_ms = linger_ms
        self.max_batch_bytes = max_batch_bytes
        self.request_timeout_ms = request_timeout_ms
        self.session_timeout_ms = session_timeout_ms
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.max_partition_fetch_bytes = max_partition_fetch_bytes


class KafkaLog(Lifecycle):
    """``EventLog`` over Kafka."""

    name = "kafka"

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._meta: AIOKafkaConsumer | None = None
        self._partitions: dict[str, int] = {}

    # ── lifecycle ───────────────────────────────────────────────────────────────────────

    async def start(self) -> None:
        if self._producer is not None:
            return
        s = self.settings
        producer = AIOKafkaProducer(
            bootstrap_servers=s.bootstrap_servers,
            client_id=s.client_id,
            enable_idempotence=True,
            acks="all",
            linger_ms=s.linger_ms,
            max_batch_size=s.max_batch_bytes,
            max_request_size=max(s.max_batch_bytes, 1 << 20),
            request_timeout_ms=s.request_timeout_ms,
        )
        try:
            await _kafka(f"cannot connect to Kafka at {s.bootstrap_servers}", producer.start)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await producer.stop()
            raise
        self._producer = producer

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        meta, self._meta = self._meta, None
        if producer is not None:
            await producer.stop()
        if meta is not None:
            await meta.stop()

    @property
    def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise LogError("the Kafka log is not started", retriable=False)
        return self._producer

    # ── topics ──────────────────────────────────────────────────────────────────────────

    async def ensure_topics(self, topics: Mapping[str, int]) -> None:
        s = self.settings
        admin = AIOKafkaAdminClient(
            bootstrap_servers=s.bootstrap_servers,
            client_id=f"{s.client_id}-admin",
            request_timeout_ms=s.request_timeout_ms,
        )
        await _kafka("cannot reach Kafka's admin API", admin.start)
        try:
            existing = {
                t["topic"]: len(t["partitions"])
                for t in await _kafka("cannot list topics", lambda: admin.describe_topics(None))
                if t["error_code"] == 0
            }
            missing = {t: n for t, n in topics.items() if t not in existing}
            for topic, n in topics.items():
                if topic in existing and existing[topic] != n:
                    log.warning(
                        "kafka.partition_count_differs",
                        topic=topic,
                        wanted=n,
                        actual=existing[topic],
                    )
            if missing:
                cluster = await _kafka("cannot describe the cluster", admin.describe_cluster)
                replication = max(1, min(s.replication_factor, len(cluster["brokers"])))
                new = [NewTopic(t, n, replication) for t, n in missing.items()]
                resp = await _kafka(
                    "cannot create topics",
                    lambda: admin.create_topics(new, timeout_ms=s.request_timeout_ms),
                )
                for topic, code, *message in resp.topic_errors:
                    error = for_code(code)
                    if code == 0 or error is TopicAlreadyExistsError:
                        continue
                    detail = message[0] if message and message[0] else error.__name__
                    raise LogError(
                        f"cannot create topic {topic}: {detail}", retriable=error.retriable
                    )
                log.info("kafka.topics_created", topics=sorted(missing), replication=replication)
        finally:
            await admin.close()
        self._partitions.update({t: existing.get(t, n) for t, n in topics.items()})

    async def partitions_for(self, topic: str) -> int:
        count = self._partitions.get(topic)
        if count is None:
            # List all topics: asking for one by name may auto-create it on the broker.
            meta = await self._metadata_consumer()
            topics = await _kafka("cannot list topics", meta.topics)
            if topic not in topics:
                raise LogError(
                    f"unknown topic {topic!r} (create it with ensure_topics)", retriable=False
                )
            parts = meta.partitions_for_topic(topic) or ()
            count = self._partitions[topic] = len(parts)
        return count

    # ── append ──────────────────────────────────────────────────────────────────────────

    async def append(self, records: Sequence[ProducerRecord]) -> list[Position]:
        if not records:
            return []
        partitions = [partition_for(r.key, await self.partitions_for(r.topic)) for r in records]
        send = self._send_each if len(records) <= _SMALL_APPEND else self._send_batches
        # aiokafka retries a batch whose brokers are down for as long as it takes; an
        # append waits one request timeout for the acknowledgement, then fails (retriable:
        # the producer spools it). Should the batch still be delivered later, projections
        # drop the copy by event id.
        timeout = self.settings.request_timeout_ms / 1000
        return await _kafka(
            "cannot append to Kafka (no acknowledgement within "
            f"{timeout:g}s: are the brokers reachable?)",
            lambda: asyncio.wait_for(send(records, partitions), timeout),
        )

    async def _send_each(
        self, records: Sequence[ProducerRecord], partitions: list[int]
    ) -> list[Position]:
        futures = [
            await self.producer.send(
                r.topic, r.value, key=r.key, partition=p, headers=list(r.headers)
            )
            for r, p in zip(records, partitions, strict=True)
        ]
        metas = await asyncio.gather(*futures)
        return [Position(m.topic, m.partition, m.offset) for m in metas]

    async def _send_batches(
        self, records: Sequence[ProducerRecord], partitions: list[int]
    ) -> list[Position]:
        groups: dict[TopicPartition, list[int]] = {}
        for i, (r, p) in enumerate(zip(records, partitions, strict=True)):
            groups.setdefault(TopicPartition(r.topic, p), []).append(i)
        pending: list[tuple[Any, list[int]]] = []
        for tp, indexes in groups.items():
            batch, members = self.producer.create_batch(), list[int]()
            for i in indexes:
                r = records[i]
                while (
                    batch.append(key=r.key, value=r.value, timestamp=None, headers=list(r.headers))
                    is None
                ):
                    if not members:
                        raise LogError(
                            f"record of {len(r.value)} bytes exceeds the batch size",
                            retriable=False,
                        )
                    pending.append(
                        (
                            await self.producer.send_batch(batch, tp.topic, partition=tp.partition),
                            members,
                        )
                    )
                    batch, members = self.producer.create_batch(), []
                members.append(i)
            pending.append(
                (await self.producer.send_batch(batch, tp.topic, partition=tp.partition), members)
            )
        metas = await asyncio.gather(*(future for future, _ in pending))
        positions: list[Position | None] = [None] * len(records)
        for meta, (_, members) in zip(metas, pending, strict=True):
            for n, i in enumerate(members):
                positions[i] = Position(meta.topic, meta.partition, meta.offset + n)
        return [p for p in positions if p is not None]

    # ── offsets ─────────────────────────────────────────────────────────────────────────

    async def _metadata_consumer(self) -> AIOKafkaConsumer:
        if self._meta is None:
            s = self.settings
            meta = AIOKafkaConsumer(
                bootstrap_servers=s.bootstrap_servers,
                client_id=f"{s.client_id}-offsets",
                enable_auto_commit=False,
                request_timeout_ms=s.request_timeout_ms,
            )
            try:
                await _kafka("cannot connect to Kafka", meta.start)
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await meta.stop()
                raise
            self._meta = meta
        return self._meta

    async def end_offsets(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        meta = await self._metadata_consumer()
        found = await _kafka(
            "cannot read end offsets", lambda: meta.end_offsets([KafkaTP(*tp) for tp in tps])
        )
        return {TopicPartition(k.topic, k.partition): v for k, v in found.items()}

    async def beginning_offsets(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        meta = await self._metadata_consumer()
        found = await _kafka(
            "cannot read beginning offsets",
            lambda: meta.beginning_offsets([KafkaTP(*tp) for tp in tps]),
        )
        return {TopicPartition(k.topic, k.partition): v for k, v in found.items()}

    # ── consumers ───────────────────────────────────────────────────────────────────────

    def consumer(
        self,
        *,
        group_id: str | None,
        topics: Sequence[str] = (),
        listener: RebalanceListener | None = None,
        partitions: Sequence[TopicPartition] = (),
    ) -> LogConsumer:
        return KafkaConsumer(
            self.settings,
            group_id=group_id,
            topics=topics,
            listener=listener,
            partitions=partitions,
        )


class _Bridge(ConsumerRebalanceListener):  # type: ignore[misc]
    """Turns aiokafka's rebalance callbacks into our listener's, and seeks."""

    def __init__(self, owner: KafkaConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: list[KafkaTP]) -> None:
        tps = frozenset(TopicPartition(t.topic, t.partition) for t in revoked)
        if tps and self.owner.listener is not None:
            await self.owner.listener.on_revoked(tps)

    async def on_partitions_assigned(self, assigned: list[KafkaTP]) -> None:
        await self.owner.position_at_start(
            frozenset(TopicPartition(t.topic, t.partition) for t in assigned)
        )


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
        self.group_id = group_id
        self.topics = tuple(topics)
        self.listener = listener
        self._fixed = tuple(partitions)
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        if self._consumer is not None:
            return
        s = self.settings
        consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap_servers,
            client_id=f"{s.client_id}-{self.group_id or 'reader'}",
            group_id=self.group_id,
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
            consumer.subscribe(list(self.topics), listener=_Bridge(self))
        else:
            consumer.assign([KafkaTP(*tp) for tp in self._fixed])
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
        ktps = [KafkaTP(*tp) for tp in tps]
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
        finally:
            target.resume(*ktps)
        log.info("kafka.assigned", group=self.group_id, partitions=sorted(map(str, tps)))

    def assignment(self) -> frozenset[TopicPartition]:
        if self._consumer is None:
            return frozenset()
        return frozenset(TopicPartition(t.topic, t.partition) for t in self._consumer.assignment())

    async def fetch(self, max_records: int, timeout: float) -> list[ConsumerRecord]:
        batches = await _kafka(
            "cannot fetch from Kafka",
            lambda: self._c.getmany(timeout_ms=int(timeout * 1000), max_records=max_records),
        )
        out: list[ConsumerRecord] = []
        for ktp in sorted(batches, key=lambda t: (t.topic, t.partition)):
            tp = TopicPartition(ktp.topic, ktp.partition)
            for m in batches[ktp]:
                out.append(
                    ConsumerRecord(
                        m.topic,
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
        self._c.seek(KafkaTP(*tp), offset)

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if self.group_id is None or not offsets:
            return
        await _kafka(
            "cannot commit offsets",
            lambda: self._c.commit({KafkaTP(*tp): off for tp, off in offsets.items()}),
        )
