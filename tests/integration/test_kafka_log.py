"""The Kafka adapter against a real broker: what the log contract cannot see."""

from __future__ import annotations

import asyncio
import gc
import logging

import anyio
import anyio.lowlevel
import asyncpg
import pytest

from hub.infra.log.kafka import KafkaLog
from hub.infra.ports import LogConsumer, ProducerRecord, TopicPartition
from schemas.errors import LogError
from tests.conftest import kafka_settings
from tests.support.kafka_broker import KafkaUnderTest

pytestmark = [pytest.mark.anyio, pytest.mark.kafka]


def records(topic: str, n: int) -> list[ProducerRecord]:
    return [ProducerRecord(topic, f"k{i}".encode(), b"v", ()) for i in range(n)]


async def test_new_topics_have_leaders_when_ensure_topics_returns(
    kafka_cluster: KafkaUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression (issue 11, finding 11): ensure_topics returned before the partitions of
    new topics had leaders, so the first appends logged NOT_LEADER errors."""
    async with KafkaLog(kafka_settings(kafka_cluster)) as log:
        with caplog.at_level(logging.WARNING):
            await log.ensure_topics({"fresh.a": 8, "fresh.b": 8})
            positions = await log.append(records("fresh.a", 50) + records("fresh.b", 50))
        assert len(positions) == 100
        assert [r for r in caplog.records if r.name.startswith("aiokafka")] == []


async def test_offsets_read_at_once_on_a_fresh_log_leave_no_client_unclosed(
    kafka_cluster: KafkaUnderTest,
) -> None:
    """Every group's rebalance reads offsets at once when the hub starts: the log's
    metadata client must be made once, not once per caller with all but the last left
    open (aiokafka reported them as 'Unclosed AIOKafkaConsumer' when collected)."""
    reports: list[str] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: reports.append(context["message"]))
    try:
        async with KafkaLog(kafka_settings(kafka_cluster)) as log:
            await log.ensure_topics({"fresh.c": 4})
        tps = [TopicPartition("fresh.c", p) for p in range(4)]
        async with KafkaLog(kafka_settings(kafka_cluster)) as log, anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(log.beginning_offsets, tps)
        gc.collect()
        await anyio.lowlevel.checkpoint()
    finally:
        loop.set_exception_handler(None)
    assert [r for r in reports if "Unclosed" in r] == []


@pytest.mark.kafka_outage
async def test_an_append_with_the_broker_down_fails_retriably_within_its_timeout(
    kafka_cluster: KafkaUnderTest,
) -> None:
    """What the producer spools on: no acknowledgement within the request timeout is a
    retriable LogError, for single records and for record batches alike."""
    settings = kafka_settings(kafka_cluster, request_timeout_ms=2000)
    async with KafkaLog(settings) as log:
        await log.append(records("agenthub.registry", 3))
        kafka_cluster.set_down()
        try:
            for n in (2, 20):  # one record at a time, and as record batches
                started = anyio.current_time()
                with pytest.raises(LogError, match="no acknowledgement") as caught:
                    await log.append(records("agenthub.registry", n))
                assert caught.value.retriable
                assert anyio.current_time() - started < 2 + 1
        finally:
            kafka_cluster.set_up()
        assert len(await log.append(records("agenthub.registry", 3))) == 3  # back


@pytest.mark.kafka_outage
async def test_the_log_stops_while_the_broker_is_down(kafka_cluster: KafkaUnderTest) -> None:
    """aiokafka's producer waits for ever to deliver pending batches when it stops; the
    log gives up after one request timeout (those appends failed and were spooled), so
    ``agent-hub up`` can stop while Kafka is down."""
    settings = kafka_settings(kafka_cluster, request_timeout_ms=2000)
    log = KafkaLog(settings)
    await log.start()
    try:
        await log.append(records("agenthub.registry", 3))
        kafka_cluster.set_down()
        with pytest.raises(LogError):
            await log.append(records("agenthub.registry", 20))
        with anyio.fail_after(2 + 10):
            await log.stop()
    finally:
        kafka_cluster.set_up()


async def test_a_delivery_failing_after_its_append_gave_up_is_retrieved(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An append that timed out stops waiting for its delivery futures; one that fails
    later must not end as "Future exception was never retrieved" (issue 11, finding 11)."""
    import asyncio

    from hub.infra.log.kafka import _observed

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        future = _observed(asyncio.get_running_loop().create_future())
        future.set_exception(RuntimeError("delivery failed after the append gave up"))
        await anyio.lowlevel.checkpoint()  # the done callbacks run
        del future
        gc.collect()
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


class FlakyListener:
    """Loses its database connection the first time partitions are assigned."""

    def __init__(self, error: Exception) -> None:
        self.error: Exception | None = error
        self.assigned: list[frozenset[TopicPartition]] = []

    async def on_assigned(self, partitions: frozenset[TopicPartition]) -> dict[TopicPartition, int]:
        self.assigned.append(partitions)
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        return {tp: 1 for tp in partitions}  # from offset 1 on

    async def on_revoked(self, partitions: frozenset[TopicPartition]) -> None:
        return None


async def _fetched(consumer: LogConsumer, want: int) -> list[bytes]:
    got: list[bytes] = []
    with anyio.fail_after(30):
        while len(got) < want:
            got += [r.key or b"" for r in await consumer.fetch(100, 0.5)]
    return got


@pytest.mark.parametrize(
    ("error", "retriable"),
    [(asyncpg.ConnectionDoesNotExistError("connection lost"), True), (ValueError("bug"), False)],
)
async def test_a_rebalance_callback_failure_is_a_log_error(
    kafka_cluster: KafkaUnderTest, error: Exception, retriable: bool
) -> None:
    """Regression: a listener losing its database connection while partitions were
    assigned raised asyncpg's own error out of ``fetch``, which a projector does not
    retry (it stopped, in CI). It is a ``LogError``, retriable as the database error is;
    the next fetch positions the partitions the listener left and reads on."""
    async with KafkaLog(kafka_settings(kafka_cluster)) as log:
        await log.ensure_topics({"flaky": 1})
        await log.append(records("flaky", 3))
        listener = FlakyListener(error)
        consumer = log.consumer(group_id="flaky-group", topics=["flaky"], listener=listener)
        async with consumer:
            with pytest.raises(LogError) as failed, anyio.fail_after(30):
                while True:
                    await consumer.fetch(100, 0.5)
            assert failed.value.retriable is retriable
            assert failed.value.__cause__ is error
            if retriable:
                assert await _fetched(consumer, 2) == [b"k1", b"k2"]
                assert len(listener.assigned) == 2
