"""A seek through the archive-then-log consumer while its fetch waits for records (a
projector's lane re-seeking while its prefetch waits) does not wait for the fetch's
timeout: with two projector processes sharing partitions, such waits held a partition for
the fetch's second after every hand-over."""

from __future__ import annotations

import time

import anyio
import pytest

from consumers.archive.reader import ArchiveThenLog
from hub.infra.ports import ConsumerRecord, TopicPartition
from hub.runtime import Runtime
from schemas.events import AgentRegistered, Topic
from tests.conftest import TEST_PARTITIONS

pytestmark = pytest.mark.anyio

REGISTRY = [TopicPartition(str(Topic.REGISTRY), p) for p in range(TEST_PARTITIONS)]


class FromStart:
    async def on_assigned(
        self, partitions: frozenset[TopicPartition]
    ) -> dict[TopicPartition, int | None]:
        return dict.fromkeys(partitions, 0)

    async def on_revoked(self, partitions: frozenset[TopicPartition]) -> None:
        pass


async def test_a_seek_ends_the_wait_of_a_fetch_in_another_task(runtime: Runtime) -> None:
    positions = await runtime.producer.emit(
        [AgentRegistered(tenant_id="t1", actor="a", agent_id=f"agent-{i}") for i in range(20)]
    )
    ends = await runtime.log.end_offsets(REGISTRY)
    tp = TopicPartition(positions[0].topic, positions[0].partition)
    consumer = ArchiveThenLog(
        runtime.log,
        runtime.archive_reader(),
        group_id="seek-while-waiting",
        topics=[str(Topic.REGISTRY)],
        listener=FromStart(),
    )
    async with consumer:
        read = 0
        with anyio.fail_after(60):
            while read < sum(ends.values()):
                read += len(await consumer.fetch(100, 0.2))
        took: list[float] = []

        async def wait_for_records() -> None:
            assert await consumer.fetch(100, 20.0) == []

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait_for_records)
            await anyio.sleep(0.5)  # the fetch holds the consumer, waiting
            started = time.monotonic()
            await consumer.seek(tp, 0)
            took.append(time.monotonic() - started)
        assert took[0] < 5.0, f"the seek waited {took[0]:.1f} s for the fetch"
        with anyio.fail_after(30):
            again: list[ConsumerRecord] = []
            while not again:
                again = await consumer.fetch(100, 1.0)
        assert (again[0].tp, again[0].offset) == (tp, 0)
