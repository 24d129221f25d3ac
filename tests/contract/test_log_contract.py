"""One contract, every ``EventLog`` adapter: Kafka (mock cluster) and the Postgres log."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Mapping

import anyio
import pytest

from hub.infra.log.partitioner import partition_for
from hub.infra.ports import ConsumerRecord, EventLog, LogConsumer, ProducerRecord, TopicPartition
from schemas.errors import LogError
from tests.conftest import TEST_PARTITIONS

pytestmark = pytest.mark.anyio

TOPIC = "agenthub.registry"
ALL = [TopicPartition(TOPIC, p) for p in range(TEST_PARTITIONS)]


def records(n: int, prefix: str = "k") -> list[ProducerRecord]:
    return [
        ProducerRecord(
            TOPIC,
            f"{prefix}{i % 7}".encode(),
            f"value-{prefix}-{i}".encode(),
            (("hub-type", b"Test"), ("i", str(i).encode())),
        )
        for i in range(n)
    ]


async def start_with_retry(consumer: LogConsumer) -> None:
    """Joining a group may fail transiently (the contract says: retriable LogError)."""
    with anyio.fail_after(60):
        while True:
            try:
                await consumer.start()
                return
            except LogError as exc:
                if not exc.retriable:
                    raise
                await anyio.sleep(0.5)


async def drain(consumer: LogConsumer, n: int, timeout: float = 20) -> list[ConsumerRecord]:
    out: list[ConsumerRecord] = []
    with anyio.fail_after(timeout):
        while len(out) < n:
            out += await consumer.fetch(500, 0.5)
    return out


class Listener:
    def __init__(self, starts: Mapping[TopicPartition, int | None] | None = None) -> None:
        self.starts = dict(starts or {})
        self.assigned: set[TopicPartition] = set()
        self.revoked: list[frozenset[TopicPartition]] = []

    async def on_assigned(
        self, partitions: frozenset[TopicPartition]
    ) -> Mapping[TopicPartition, int | None]:
        self.assigned |= partitions
        return {tp: self.starts.get(tp) for tp in partitions}

    async def on_revoked(self, partitions: frozenset[TopicPartition]) -> None:
        self.assigned -= partitions
        self.revoked.append(partitions)


async def test_append_returns_positions_in_order_and_partitions_by_murmur2(
    event_log: EventLog,
) -> None:
    batch = records(50)
    positions = await event_log.append(batch)
    assert len(positions) == 50
    per_partition: dict[int, list[int]] = {}
    for rec, pos in zip(batch, positions, strict=True):
        assert pos.topic == TOPIC
        assert pos.partition == partition_for(rec.key, TEST_PARTITIONS)
        per_partition.setdefault(pos.partition, []).append(pos.offset)
    for offsets in per_partition.values():
        assert offsets == list(range(offsets[0], offsets[0] + len(offsets)))
    single = await event_log.append(records(1, prefix="solo"))
    assert single[0].partition == partition_for(b"solo0", TEST_PARTITIONS)


async def test_read_back_everything_in_offset_order_with_headers(event_log: EventLog) -> None:
    batch = records(120)
    positions = await event_log.append(batch)
    async with event_log.consumer(group_id=None, partitions=ALL) as consumer:
        got = await drain(consumer, 120)
    assert len(got) == 120
    by_pos = {(r.partition, r.offset): r for r in got}
    for rec, pos in zip(batch, positions, strict=True):
        r = by_pos[(pos.partition, pos.offset)]
        assert (r.key, r.value, r.header("hub-type"), r.header("i")) == (
            rec.key,
            rec.value,
            b"Test",
            rec.headers[1][1],
        )
        assert abs(r.timestamp_ms - time.time() * 1000) < 120_000  # epoch milliseconds
    for p in range(TEST_PARTITIONS):
        offsets = [r.offset for r in got if r.partition == p]
        assert offsets == sorted(offsets)


async def test_offsets_and_seek(event_log: EventLog) -> None:
    before = await event_log.end_offsets(ALL)
    positions = await event_log.append(records(40))
    after = await event_log.end_offsets(ALL)
    begin = await event_log.beginning_offsets(ALL)
    assert sum(after.values()) - sum(before.values()) == 40
    assert all(begin[tp] == 0 for tp in ALL)
    target = positions[-1]
    tp = TopicPartition(target.topic, target.partition)
    async with event_log.consumer(group_id=None, partitions=[tp]) as consumer:
        await drain(consumer, after[tp])
        await consumer.seek(tp, target.offset)
        again = await drain(consumer, 1)
    assert again[0].offset == target.offset
    with pytest.raises(LogError, match="not started"):
        await consumer.fetch(10, 0.01)


async def test_empty_fetch_waits_for_the_timeout(event_log: EventLog) -> None:
    async with event_log.consumer(group_id=None, partitions=ALL) as consumer:
        started = time.monotonic()
        assert await consumer.fetch(10, 0.5) == []
        assert time.monotonic() - started >= 0.4


async def test_a_waiting_consumer_wakes_on_append(event_log: EventLog) -> None:
    async with event_log.consumer(group_id=None, partitions=ALL) as consumer:
        await consumer.fetch(10, 0.2)  # connected and idle

        async def append_soon() -> None:
            await anyio.sleep(0.3)
            await event_log.append(records(1))

        async with anyio.create_task_group() as tg:
            tg.start_soon(append_soon)
            started = time.monotonic()
            got = await consumer.fetch(10, 10.0)
            waited = time.monotonic() - started
    assert len(got) == 1
    assert waited < 3.0, f"woke after {waited:.2f}s"


async def test_wakeup_ends_a_waiting_fetch_and_a_seek_then_reads_from_there(
    event_log: EventLog,
) -> None:
    """A task that must seek while another waits in ``fetch`` (a projector's lane, while
    its prefetch waits for records) wakes it: the fetch returns at once, with nothing, and
    the next one reads from the sought offset. Woken between fetches, a consumer reads
    once without waiting."""
    positions = await event_log.append(records(30))
    target = positions[-1]
    tp = TopicPartition(target.topic, target.partition)
    end = (await event_log.end_offsets([tp]))[tp]
    async with event_log.consumer(group_id=None, partitions=[tp]) as consumer:
        await drain(consumer, end)
        waited: list[float] = []

        async def wait_for_records() -> None:
            started = time.monotonic()
            assert await consumer.fetch(10, 20.0) == []
            waited.append(time.monotonic() - started)

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait_for_records)
            await anyio.sleep(0.5)  # it is waiting now
            consumer.wakeup()
        assert waited and waited[0] < 5.0, f"woken after {waited}"
        await consumer.seek(tp, target.offset)
        again = await drain(consumer, 1)
        assert again[0].offset == target.offset

        consumer.wakeup()  # nobody waits: the next fetch reads, and does not wait
        started = time.monotonic()
        assert await consumer.fetch(10, 20.0) == []
        assert time.monotonic() - started < 5.0
        started = time.monotonic()
        assert await consumer.fetch(10, 0.5) == []  # then fetches wait as before
        assert time.monotonic() - started >= 0.4


async def test_group_member_starts_where_the_listener_says(event_log: EventLog) -> None:
    positions = await event_log.append(records(60))
    ends = await event_log.end_offsets(ALL)
    starts: dict[TopicPartition, int | None] = {tp: ends[tp] // 2 for tp in ALL}
    starts[ALL[0]] = None  # no stored position: from the beginning
    listener = Listener(starts)
    expected = sum(ends[tp] - (starts[tp] or 0) for tp in ALL)
    consumer = event_log.consumer(group_id="contract-g1", topics=[TOPIC], listener=listener)
    await start_with_retry(consumer)
    async with consumer:
        got = await drain(consumer, expected, timeout=30)
        assert consumer.assignment() == frozenset(ALL)
    assert listener.assigned == set(ALL)
    for tp in ALL:
        offsets = [r.offset for r in got if r.partition == tp.partition]
        assert offsets == list(range(starts[tp] or 0, ends[tp]))
    assert len(positions) == 60


class FailingOnce(Listener):
    """A listener whose first ``on_assigned`` raises (its positions' store was down)."""

    failed = False

    async def on_assigned(
        self, partitions: frozenset[TopicPartition]
    ) -> Mapping[TopicPartition, int | None]:
        if not self.failed:
            self.failed = True
            raise LogError("positions unavailable", retriable=True)
        return await super().on_assigned(partitions)


async def test_a_listener_error_on_assignment_comes_out_of_fetch_and_is_retried(
    event_log: EventLog,
) -> None:
    """Kafka runs rebalance callbacks in its own task and only logs what they raise: the
    consumer must raise it from a fetch, read nothing from a partition it could not
    position, position it at the next fetch, and still hand it over later."""
    await event_log.append(records(40))
    ends = await event_log.end_offsets(ALL)
    starts: dict[TopicPartition, int | None] = {tp: ends[tp] // 2 for tp in ALL}
    listener = FailingOnce(starts)
    consumer = event_log.consumer(group_id="contract-g5", topics=[TOPIC], listener=listener)
    await start_with_retry(consumer)
    async with consumer:
        before: list[ConsumerRecord] = []
        with pytest.raises(LogError, match="positions unavailable"), anyio.fail_after(30):
            while True:
                before += await consumer.fetch(500, 0.5)
        assert before == []  # nothing read from where the listener did not say
        expected = sum(ends[tp] - (starts[tp] or 0) for tp in ALL)
        got = await drain(consumer, expected, timeout=30)
        assert listener.assigned == set(ALL)
        for tp in ALL:
            offsets = [r.offset for r in got if r.partition == tp.partition]
            assert offsets == list(range(starts[tp] or 0, ends[tp]))
        await half_goes_to_a_second_member(event_log, consumer, listener, "contract-g5")


class Slow(Listener):
    """A listener whose ``on_assigned`` takes a while (its positions' store is slow)."""

    calls = 0

    async def on_assigned(
        self, partitions: frozenset[TopicPartition]
    ) -> Mapping[TopicPartition, int | None]:
        self.calls += 1
        await anyio.sleep(0.5)
        return await super().on_assigned(partitions)


async def test_fetches_while_a_listener_positions_neither_read_nor_position_again(
    event_log: EventLog,
) -> None:
    """A fetch while the listener is still answering (Kafka runs it in its own task)
    reads nothing of those partitions and does not ask the listener a second time."""
    await event_log.append(records(40))
    ends = await event_log.end_offsets(ALL)
    listener = Slow()
    consumer = event_log.consumer(group_id="contract-g6", topics=[TOPIC], listener=listener)
    await start_with_retry(consumer)
    async with consumer:
        got = await drain(consumer, sum(ends.values()), timeout=30)
        got += await consumer.fetch(500, 0.5)  # nothing more: no offset read twice
    assert listener.calls == 1
    for tp in ALL:
        assert [r.offset for r in got if r.partition == tp.partition] == list(range(ends[tp]))


async def half_goes_to_a_second_member(
    event_log: EventLog, first: LogConsumer, listener: Listener, group: str
) -> None:
    """A second member joins ``group``: the two split the partitions (the first gives up
    what it hands over, the ones whose positioning once failed too)."""
    second = Listener()
    other = event_log.consumer(group_id=group, topics=[TOPIC], listener=second)
    await start_with_retry(other)

    async def keep_fetching() -> None:
        while True:
            await other.fetch(100, 0.2)

    def split() -> bool:
        mine, theirs = listener.assigned, second.assigned
        return bool(mine and theirs and not mine & theirs and mine | theirs == set(ALL))

    async with other, anyio.create_task_group() as tg:
        tg.start_soon(keep_fetching)
        with anyio.fail_after(60):
            while not split():
                await first.fetch(100, 0.2)
        tg.cancel_scope.cancel()


async def test_two_members_split_partitions_and_one_takes_over(
    event_log: EventLog, log_url: str
) -> None:
    """A second member in its own process; when it is SIGKILLed the first takes all."""
    listener = Listener()
    consumer = event_log.consumer(group_id="contract-g2", topics=[TOPIC], listener=listener)
    await start_with_retry(consumer)
    member = await anyio.open_process(
        [sys.executable, "-m", "tests.support.log_member", log_url, "contract-g2", TOPIC],
        stderr=subprocess.DEVNULL,
    )
    other: list[int] = []
    try:
        assert member.stdout is not None
        lines = member.stdout

        async def follow() -> None:
            nonlocal other
            buffer = b""
            async for chunk in lines:
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    other = json.loads(line)

        async with anyio.create_task_group() as tg:
            tg.start_soon(follow)
            with anyio.fail_after(60):
                while True:
                    await consumer.fetch(100, 0.2)
                    mine = {tp.partition for tp in listener.assigned}
                    if (
                        mine
                        and other
                        and not mine & set(other)
                        and mine | set(other) == set(range(TEST_PARTITIONS))
                    ):
                        break
            assert len(mine) == len(other) == TEST_PARTITIONS // 2
            member.kill()  # SIGKILL: no goodbye, the group must notice on its own
            with anyio.fail_after(60):
                while listener.assigned != set(ALL):
                    await consumer.fetch(100, 0.2)
            tg.cancel_scope.cancel()
        assert consumer.assignment() == frozenset(ALL)
    finally:
        if member.returncode is None:
            member.kill()
        await member.aclose()
        await consumer.stop()


async def test_commit_for_monitoring(event_log: EventLog) -> None:
    await event_log.append(records(5))
    listener = Listener()
    async with event_log.consumer(group_id="contract-g3", topics=[TOPIC], listener=listener) as c:
        got = await drain(c, 5)
        await c.commit({TopicPartition(r.topic, r.partition): r.offset + 1 for r in got})


async def test_unknown_topic_is_a_clear_error(event_log: EventLog) -> None:
    with pytest.raises(LogError, match=r"no-such-topic|unknown topic|UnknownTopic|metadata"):
        with anyio.fail_after(30):
            await event_log.append([ProducerRecord("no-such-topic", b"k", b"v")])
