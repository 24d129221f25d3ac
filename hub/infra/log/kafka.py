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
import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka import TopicPartition as KafkaTP
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from hub.infra.lifecycle import Lifecycle
from hub.infra.log.kafka_common import KafkaSettings, kafka_call
from hub.infra.log.kafka_consumer import KafkaConsumer
from hub.infra.log.partitioner import partition_for
from hub.infra.ports import (
    LogConsumer,
    Position,
    ProducerRecord,
    RebalanceListener,
    TopicPartition,
)
from schemas.errors import LogError

__all__ = ["KafkaLog", "KafkaSettings"]

log = structlog.get_logger(__name__)

_METADATA_TRIES = 20  # 2 s for a new topic to appear in the metadata
_SMALL_APPEND = 8  # up to this many records: per-record send() joins the producer's open batch


async def _abandon(producer: AIOKafkaProducer) -> None:
    """Close a producer whose pending batches cannot be delivered. aiokafka has no public
    way to do this: its ``stop()`` waits for the batches for ever."""
    sender = getattr(producer, "_sender", None)
    task = getattr(sender, "sender_task", None)
    if task is not None:
        task.cancel()
        with anyio.CancelScope(shield=True), contextlib.suppress(BaseException):
            await task
    await producer.client.close()


def _observed(future: asyncio.Future[Any]) -> asyncio.Future[Any]:
    """A delivery future whose failure is always retrieved: an append that timed out
    stops waiting, but the producer may still fail the batch later (it was spooled)."""
    future.add_done_callback(lambda f: None if f.cancelled() else f.exception())
    return future


class KafkaLog(Lifecycle):
    """``EventLog`` over Kafka."""

    name = "kafka"

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._meta: AIOKafkaConsumer | None = None
        # Callers race to make it (every group's rebalance asks for offsets at once): one
        # makes it, the others wait, so none is left unclosed.
        self._making_meta = anyio.Lock()
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
            await kafka_call(f"cannot connect to Kafka at {s.bootstrap_servers}", producer.start)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await producer.stop()
            raise
        self._producer = producer

    async def stop(self) -> None:
        """Flush and close; with the brokers unreachable, give up on the pending batches
        after one request timeout (their appends already failed, so they were spooled)."""
        producer, self._producer = self._producer, None
        meta, self._meta = self._meta, None
        if producer is not None:
            with anyio.move_on_after(self.settings.request_timeout_ms / 1000) as flushing:
                await producer.stop()  # waits for every pending batch to be delivered
            if flushing.cancelled_caught:
                log.warning("kafka.stopped_with_batches_undelivered")
                await _abandon(producer)
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
        await kafka_call("cannot reach Kafka's admin API", admin.start)
        try:
            names = s.names
            listed = await kafka_call("cannot list topics", lambda: admin.describe_topics(None))
            existing = {
                hub: len(t["partitions"])
                for t in listed
                if t["error_code"] == 0 and (hub := names.hub_topic(t["topic"])) is not None
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
                cluster = await kafka_call("cannot describe the cluster", admin.describe_cluster)
                replication = max(1, min(s.replication_factor, len(cluster["brokers"])))
                new = [NewTopic(names.topic(t), n, replication) for t, n in missing.items()]
                resp = await kafka_call(
                    "cannot create topics",
                    lambda: admin.create_topics(new, timeout_ms=s.request_timeout_ms),
                )
                for name, code, *message in resp.topic_errors:
                    topic = names.hub_topic(name) or name
                    error = for_code(code)
                    if code == 0 or error is TopicAlreadyExistsError:
                        continue
                    detail = message[0] if message and message[0] else error.__name__
                    raise LogError(
                        f"cannot create topic {topic}: {detail}", retriable=error.retriable
                    )
                log.info("kafka.topics_created", topics=sorted(missing), replication=replication)
                await self._wait_for_leaders(admin, [names.topic(t) for t in missing])
        finally:
            await admin.close()
        self._partitions.update({t: existing.get(t, n) for t, n in topics.items()})

    async def _wait_for_leaders(self, admin: AIOKafkaAdminClient, topics: list[str]) -> None:
        """Return once every partition of new ``topics`` has a leader (the first appends
        would otherwise fail with NOT_LEADER errors while the controller elects them)."""
        deadline = asyncio.get_running_loop().time() + self.settings.request_timeout_ms / 1000
        while True:
            described = await kafka_call(
                "cannot describe new topics", lambda: admin.describe_topics(topics)
            )
            waiting = [
                t["topic"]
                for t in described
                if t["error_code"] != 0
                or not t["partitions"]
                or any(p["leader"] < 0 for p in t["partitions"])
            ]
            if not waiting:
                break
            if asyncio.get_running_loop().time() > deadline:
                raise LogError(f"new topics have no leader yet: {', '.join(waiting)}")
            await anyio.sleep(0.1)
        # The controller has elected them; the leader may not serve them yet. Reading each
        # partition's end offset (answered by its leader) waits until it does.
        meta = await self._metadata_consumer()
        tps = [KafkaTP(t["topic"], p["partition"]) for t in described for p in t["partitions"]]
        await kafka_call("cannot read the new topics' offsets", lambda: meta.end_offsets(tps))

    async def partitions_for(self, topic: str) -> int:
        count = self._partitions.get(topic)
        if count is not None:
            return count
        # List all topics: asking for one by name may auto-create it on the broker. A topic
        # just created elsewhere can take a moment to show, with its partitions.
        meta = await self._metadata_consumer()
        name = self.settings.names.topic(topic)
        for _ in range(_METADATA_TRIES):
            # the consumer's own metadata may predate the topic: read the cluster's now
            cluster = await kafka_call("cannot list topics", meta._client.fetch_all_metadata)
            parts = cluster.partitions_for_topic(name)
            if parts:
                count = self._partitions[topic] = len(parts)
                return count
            await anyio.sleep(0.1)
        raise LogError(f"unknown topic {topic!r} (create it with ensure_topics)", retriable=False)

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
        return await kafka_call(
            "cannot append to Kafka (no acknowledgement within "
            f"{timeout:g}s: are the brokers reachable?)",
            lambda: asyncio.wait_for(send(records, partitions), timeout),
        )

    async def _send_each(
        self, records: Sequence[ProducerRecord], partitions: list[int]
    ) -> list[Position]:
        names = self.settings.names
        futures = [
            _observed(
                await self.producer.send(
                    names.topic(r.topic), r.value, key=r.key, partition=p, headers=list(r.headers)
                )
            )
            for r, p in zip(records, partitions, strict=True)
        ]
        metas = await asyncio.gather(*futures)
        return [
            Position(r.topic, m.partition, m.offset) for r, m in zip(records, metas, strict=True)
        ]

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
                    pending.append((await self._send_batch(batch, tp), members))
                    batch, members = self.producer.create_batch(), []
                members.append(i)
            pending.append((await self._send_batch(batch, tp), members))
        metas = await asyncio.gather(*(future for future, _ in pending))
        positions: list[Position | None] = [None] * len(records)
        for meta, (_, members) in zip(metas, pending, strict=True):
            for n, i in enumerate(members):
                positions[i] = Position(records[i].topic, meta.partition, meta.offset + n)
        return [p for p in positions if p is not None]

    async def _send_batch(self, batch: Any, tp: TopicPartition) -> Any:
        name = self.settings.names.topic(tp.topic)
        return _observed(await self.producer.send_batch(batch, name, partition=tp.partition))

    # ── offsets ─────────────────────────────────────────────────────────────────────────

    async def _metadata_consumer(self) -> AIOKafkaConsumer:
        if self._meta is not None:
            return self._meta
        async with self._making_meta:
            return self._meta or await self._make_metadata_consumer()

    async def _make_metadata_consumer(self) -> AIOKafkaConsumer:
        s = self.settings
        meta = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap_servers,
            client_id=f"{s.client_id}-offsets",
            enable_auto_commit=False,
            request_timeout_ms=s.request_timeout_ms,
        )
        try:
            await kafka_call("cannot connect to Kafka", meta.start)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await meta.stop()
            raise
        self._meta = meta
        return meta

    async def end_offsets(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        meta = await self._metadata_consumer()
        names = self.settings.names
        found = await kafka_call(
            "cannot read end offsets", lambda: meta.end_offsets([names.ktp(tp) for tp in tps])
        )
        return {names.tp(k): v for k, v in found.items()}

    async def beginning_offsets(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        meta = await self._metadata_consumer()
        names = self.settings.names
        found = await kafka_call(
            "cannot read beginning offsets",
            lambda: meta.beginning_offsets([names.ktp(tp) for tp in tps]),
        )
        return {names.tp(k): v for k, v in found.items()}

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
