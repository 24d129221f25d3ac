"""A batch read before its partition's latest seek, or of a revoked partition, is left out
before the claim; a revocation waits for its partitions' transactions."""

from __future__ import annotations

import anyio
import pytest

from consumers.projector_types import Applying, Item, Seeks
from hub.infra.ports import ConsumerRecord, TopicPartition

A, B = TopicPartition("t", 0), TopicPartition("t", 1)


def items(tp: TopicPartition, offsets: range) -> list[Item]:
    return [
        (ConsumerRecord(tp.topic, tp.partition, o, None, b"v", (), 0, tp), None) for o in offsets
    ]


def test_records_read_before_their_partitions_seek_are_left_out() -> None:
    seeks = Seeks()
    read_ahead = seeks.count  # the prefetch began reading
    batch = items(A, range(100, 110)) + items(B, range(50, 60))
    seeks.sought(A)  # a lane found A's batch before it stale and sought A back
    assert seeks.current(batch, read_ahead) == items(B, range(50, 60))
    read_after = seeks.count  # the next read began after the seek: it is from the seek
    again = items(A, range(90, 100))
    assert seeks.current(again, read_after) == again


def test_without_a_seek_since_the_read_a_batch_is_kept_whole() -> None:
    seeks = Seeks()
    seeks.sought(A)
    read = seeks.count
    batch = items(A, range(0, 5)) + items(B, range(0, 5))
    assert seeks.current(batch, read) is batch
    seeks.sought(B)
    assert seeks.current(batch, read) == items(A, range(0, 5))


def test_records_of_a_revoked_partition_are_left_out_until_it_is_assigned_again() -> None:
    seeks = Seeks()
    read = seeks.count
    batch = items(A, range(0, 5)) + items(B, range(0, 5))
    seeks.revoked({A})  # A's records read ahead are its next owner's
    assert seeks.current(batch, read) == items(B, range(0, 5))
    seeks.assigned({A})  # given back (Kafka's eager rebalance revokes all, then assigns)
    assert seeks.current(batch, read) is batch


@pytest.mark.anyio
async def test_a_revocation_waits_for_the_transactions_of_its_partitions_only() -> None:
    applying = Applying()
    finish_a, finish_b = anyio.Event(), anyio.Event()
    settled: list[bool] = []

    async def apply(tps: set[TopicPartition], finish: anyio.Event) -> None:
        async with applying.of(tps):
            await finish.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(apply, {A}, finish_a)
        tg.start_soon(apply, {A, B}, finish_b)
        await anyio.sleep(0.01)
        with anyio.fail_after(1):
            assert await applying.settled({TopicPartition("t", 9)}, 5)  # nothing in flight

        async def revoke() -> None:
            settled.append(await applying.settled({B}, 5))

        tg.start_soon(revoke)
        await anyio.sleep(0.05)
        assert settled == []  # B is still in a transaction
        finish_b.set()
        await anyio.sleep(0.05)
        assert settled == [True]  # A is too, but only B was revoked
        assert not await applying.settled({A}, 0.05)  # gives up after its timeout
        finish_a.set()
    assert await applying.settled({A, B}, 0)
