"""A partition handed over between two projectors of one group, and a partition sought
while a batch lingers, on each log.

When a second projector joins, the first revokes half its partitions. Its batches of
those partitions that are in a transaction commit before the partitions go, and what it
read ahead of them is left to the new owner, so the new owner starts at the stored
position: no batch is read twice and dropped. Before, a revocation returned at once; the
new owner loaded the position from before the batch still in flight, read from there and
had its first batch dropped when the claim failed (and so might the old owner).
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from consumers.projector import ProjectorSettings
from hub.infra.ports import TopicPartition
from hub.runtime import Runtime
from projections.registry import RegistryProjection
from tests.integration.test_projector import agents, caught_up, projector_with, registered

pytestmark = pytest.mark.anyio

TOTAL = 3000  # at 50 a batch and 0.15 s a flush: longer than a Kafka rebalance takes


class _SlowRegistry(RegistryProjection):
    """The registry, each flush taking a while: a revocation finds a batch in flight."""

    async def flush(self, batch: Any) -> None:
        await anyio.sleep(0.15)
        await super().flush(batch)


async def test_a_joining_projector_takes_over_partitions_without_dropping_a_batch(
    runtime: Runtime, backend: str
) -> None:
    await runtime.producer.emit([registered(f"a{i:04d}") for i in range(TOTAL)])
    settings = ProjectorSettings(lanes=1, batch_size=50)
    first = projector_with(runtime, _SlowRegistry(), settings)
    second = projector_with(runtime, _SlowRegistry(), settings)
    async with anyio.create_task_group() as tg:
        await tg.start(first.run)
        with anyio.fail_after(30):
            while first.stats.batches < 1:
                await anyio.sleep(0.01)
        await tg.start(second.run)
        with anyio.fail_after(30):
            while not second.stats.batches:
                await anyio.sleep(0.01)
        await caught_up(runtime, first.projection.consumer)
        first.stop_soon()
        second.stop_soon()
    assert first.stats.events and second.stats.events  # the partitions were shared
    assert second.stats.dropped_batches == 0
    if backend == "postgres":
        # Kafka's (eager) rebalance revokes every partition and gives some back, so the
        # first projector may drop a batch it read before getting its own partitions back
        assert first.stats.dropped_batches == 0
    rows = await agents(runtime)
    assert sorted(rows) == [f"a{i:04d}" for i in range(TOTAL)]
    assert {r["revision"] for r in rows.values()} == {1}
    assert first.stats.events + second.stats.events == TOTAL
    assert first.stats.duplicates == second.stats.duplicates == 0


async def test_a_seek_while_a_batch_lingers_leaves_the_second_read_to_the_next_batch(
    runtime: Runtime,
) -> None:
    """A batch's records of a partition sought after its first read are left out as
    stale; a second read after the linger would bring that partition's records from the
    new position, left out with them, and with nothing more appended the partition
    stalled (the rebuild-under-readers test stuck one run in two). So a seek during the
    linger ends the batch at its first read, and the next batch reads from the seek."""
    projector = projector_with(
        runtime, RegistryProjection(), ProjectorSettings(lanes=1, batch_linger=5.0)
    )
    await projector.start()
    try:
        first = await runtime.producer.emit([registered(f"a{i}") for i in range(8)])
        sought = first[0]
        tp = TopicPartition(sought.topic, sought.partition)
        projector._applied = anyio.Event()  # a batch in hand: the linger waits for it
        seeks = projector._seeks.count

        async def seek_during_the_linger() -> None:
            await anyio.sleep(0.3)
            await runtime.producer.emit([registered(f"b{i}") for i in range(8)])
            await projector._resync(tp, 0)  # as a lane does when its claim fails
            assert projector._applied is not None
            projector._applied.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(seek_during_the_linger)
            with anyio.fail_after(10):
                batch = await projector._fetch_batch(seeks)
        assert batch and not [r for r in batch if r.key and r.key.startswith(b"b")]  # one read
        left = projector._seeks.current([(r, None) for r in batch], seeks)
        assert left == [(r, None) for r in batch if r.tp != tp]  # stale: read before the seek
        mine: list[int] = []
        with anyio.fail_after(10):  # later batches read the sought partition from the seek
            while not mine:
                again = await projector._fetch_batch(projector._seeks.count)
                mine = [r.offset for r in again if r.tp == tp]
        assert mine[0] == 0
    finally:
        await projector.stop()
