"""The archiver against real Postgres, each log, and each blob store (file, moto S3)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from consumers.archive.archiver import CONSUMER, Archiver, ArchiverSettings, segment_key
from consumers.archive.segments import encode_segment, read_segment
from hub.infra.blob import open_blob_store
from hub.infra.ports import BlobStore, ConsumerRecord, ProducerRecord, TopicPartition
from hub.runtime import Runtime
from schemas.events import AgentRegistered, Topic
from tests.conftest import TEST_PARTITIONS
from tests.support.counting_log import CountingLog

pytestmark = pytest.mark.anyio

REGISTRY = str(Topic.REGISTRY)
ALL = [TopicPartition(REGISTRY, p) for p in range(TEST_PARTITIONS)]


@pytest.fixture
async def store(archive_url: str, s3_endpoint: str | None) -> AsyncIterator[BlobStore]:
    async with open_blob_store(archive_url, endpoint_url=s3_endpoint) as s:
        yield s


def archiver(runtime: Runtime, store: BlobStore, log: Any = None, **kw: object) -> Archiver:
    """An archiver with a store of its own (it owns its lifecycle) at ``store``'s location."""
    own = open_blob_store(store.url, endpoint_url=getattr(store, "endpoint_url", None))
    settings = ArchiverSettings(**({"max_records": 100, "max_age": 60.0} | kw))  # type: ignore[arg-type]
    return Archiver(
        log=log or runtime.log, pool=runtime.pool, store=own, topics=[REGISTRY], settings=settings
    )


def event(i: int) -> AgentRegistered:
    return AgentRegistered(tenant_id="t1", actor="a", agent_id=f"agent-{i}", description=f"n{i}")


async def read_log(runtime: Runtime) -> dict[tuple[int, int], ConsumerRecord]:
    ends = await runtime.log.end_offsets(ALL)
    out: dict[tuple[int, int], ConsumerRecord] = {}
    async with runtime.log.consumer(group_id=None, partitions=ALL) as consumer:
        with anyio.fail_after(30):
            while len(out) < sum(ends.values()):
                for r in await consumer.fetch(1000, 0.5):
                    out[(r.partition, r.offset)] = r
    return out


async def archived_up_to(
    runtime: Runtime, ends: dict[TopicPartition, int], timeout: float = 60
) -> None:
    with anyio.fail_after(timeout):
        while True:
            stored = await runtime.pool.fetch(
                "SELECT topic, partition, next_offset FROM hub.positions WHERE consumer = $1",
                CONSUMER,
            )
            got = {TopicPartition(r[0], r[1]): r[2] for r in stored}
            if all(got.get(tp, 0) >= end for tp, end in ends.items() if end):
                return
            await anyio.sleep(0.05)


async def segments(runtime: Runtime) -> list[tuple[int, int, int, str, int]]:
    rows = await runtime.pool.fetch(
        "SELECT partition, first_offset, last_offset, key, records FROM hub.archive_segments "
        "ORDER BY partition, first_offset"
    )
    return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]


async def test_archives_every_record_in_rotated_segments(
    runtime: Runtime, store: BlobStore
) -> None:
    await runtime.producer.emit([event(i) for i in range(450)])
    ends = await runtime.log.end_offsets(ALL)
    arch = archiver(runtime, store, max_records=50, max_age=0.5)  # the tail goes by age
    async with anyio.create_task_group() as tg:
        await tg.start(arch.run)
        await archived_up_to(runtime, ends)
        arch.stop_soon()
    log = await read_log(runtime)
    rows = await segments(runtime)
    seen: dict[tuple[int, int], dict[str, object]] = {}
    for partition, first, last, key, count in rows:
        assert key == segment_key("", TopicPartition(REGISTRY, partition), first, last)
        assert count <= 50 and last - first + 1 == count
        entries = read_segment(await store.get(key))
        assert [e["offset"] for e in entries] == list(range(first, last + 1))
        for e in entries:
            seen[(partition, e["offset"])] = e
    assert set(seen) == set(log)  # no gap, no duplicate
    for pos, record in log.items():
        entry = seen[pos]
        assert (entry["key"], entry["value"], entry["timestamp_ms"]) == (
            record.key,
            record.value,
            record.timestamp_ms,
        )
        assert [(h["key"], h["value"]) for h in entry["headers"]] == list(record.headers)  # type: ignore[attr-defined]
    # per partition, segments tile the offsets exactly
    for tp in ALL:
        mine = [(f, la) for p, f, la, _, _ in rows if p == tp.partition]
        assert mine == sorted(mine)
        assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(mine))
        if mine:
            assert mine[0][0] == 0 and mine[-1][1] == ends[tp] - 1


@pytest.mark.parametrize("archive_url", ["file"], indirect=True)
async def test_records_appended_one_at_a_time_are_read_in_few_fetches(
    runtime: Runtime, store: BlobStore
) -> None:
    """After a read that did not fill a batch, records gather for ``fetch_linger``: not a
    read per append (each append wakes the consumer). Every record is still archived."""
    log = CountingLog(runtime.log)
    arch = archiver(runtime, store, log, max_records=1000, max_age=1.0, fetch_linger=0.5)
    async with anyio.create_task_group() as tg:
        await tg.start(arch.run)
        await anyio.sleep(0.3)
        before = log.fetches
        for i in range(40):  # over about 0.4 s
            await runtime.producer.emit([event(i)])
            await anyio.sleep(0.01)
        during = log.fetches - before
        ends = await runtime.log.end_offsets(ALL)
        await archived_up_to(runtime, ends, timeout=15)
        arch.stop_soon()
    assert during <= 3, f"{during} fetches for 40 appends"
    assert sum(r[4] for r in await segments(runtime)) == 40


@pytest.mark.parametrize("archive_url", ["file"], indirect=True)
async def test_age_rotation_fires_without_new_records(runtime: Runtime, store: BlobStore) -> None:
    arch = archiver(runtime, store, max_records=1000, max_age=0.5)
    async with anyio.create_task_group() as tg:
        await tg.start(arch.run)
        await runtime.producer.emit([event(i) for i in range(3)])
        ends = await runtime.log.end_offsets(ALL)
        started = anyio.current_time()
        await archived_up_to(runtime, ends, timeout=15)  # nothing else is produced meanwhile
        waited = anyio.current_time() - started
        arch.stop_soon()
    assert 0.3 <= waited < 10
    assert sum(r[4] for r in await segments(runtime)) == 3


@pytest.mark.parametrize("archive_url", ["file"], indirect=True)
async def test_a_graceful_stop_writes_what_every_partition_holds(
    runtime: Runtime, store: BlobStore
) -> None:
    """Stopped with records of several partitions held (not yet due by count, size or
    age), the archiver writes them all before it stops. It used to write the first
    partition's only: the others waited to be read again at the next start."""
    await runtime.producer.emit([event(i) for i in range(200)])
    ends = await runtime.log.end_offsets(ALL)
    busy = [tp for tp in ALL if ends[tp]]
    assert len(busy) >= 2
    arch = archiver(runtime, store, max_records=1000, max_age=3600)
    async with anyio.create_task_group() as tg:
        await tg.start(arch.run)
        with anyio.fail_after(15):
            while arch.held < 200:
                await anyio.sleep(0.01)
        assert arch.stats.records == 0  # nothing was due
        arch.stop_soon()
    assert arch.held == 0 and arch.stats.records == 200
    rows = await segments(runtime)
    assert sorted(r[0] for r in rows) == sorted(tp.partition for tp in busy)
    await archived_up_to(runtime, ends, timeout=5)


@pytest.mark.parametrize("archive_url", ["file"], indirect=True)
async def test_byte_rotation(runtime: Runtime, store: BlobStore) -> None:
    await runtime.log.append(
        [ProducerRecord(REGISTRY, b"same-key", b"x" * 3000) for _ in range(20)]
    )
    ends = await runtime.log.end_offsets(ALL)
    arch = archiver(runtime, store, max_records=1000, max_bytes=10_000, max_age=0.5)
    async with anyio.create_task_group() as tg:
        await tg.start(arch.run)
        await archived_up_to(runtime, ends)
        arch.stop_soon()
    rows = await segments(runtime)
    assert sum(r[4] for r in rows) == 20
    assert all(r[4] <= 3 for r in rows)  # 3 x ~3 KB fit in 10 KB, 4 do not


@pytest.mark.parametrize("archive_url", ["file"], indirect=True)
async def test_a_segment_written_before_a_crash_is_adopted_and_strays_removed(
    runtime: Runtime, store: BlobStore
) -> None:
    """What a crash between the object write and the position write leaves behind."""
    await runtime.log.append(
        [ProducerRecord(REGISTRY, b"one-key", f"v{i}".encode()) for i in range(30)]
    )
    log = await read_log(runtime)
    partition = next(iter(log))[0]
    tp = TopicPartition(REGISTRY, partition)
    records = [log[(partition, o)] for o in range(30)]
    orphan = segment_key("", tp, 0, 9)
    await store.put(orphan, encode_segment(tp, records[:10]))  # written, never recorded
    stray = segment_key("", tp, 5, 14)
    await store.put(stray, encode_segment(tp, records[5:15]))  # overlaps: must go
    ends = await runtime.log.end_offsets(ALL)
    arch = archiver(runtime, store, max_records=10)
    async with anyio.create_task_group() as tg:
        await tg.start(arch.run)
        await archived_up_to(runtime, ends)
        arch.stop_soon()
    assert arch.stats.adopted == 1 and arch.stats.removed == 1
    rows = [(f, la) for p, f, la, _, _ in await segments(runtime) if p == partition]
    assert rows == [(0, 9), (10, 19), (20, 29)]
    keys = await store.list(f"{REGISTRY}/{partition:04d}/")
    assert keys == [segment_key("", tp, f, la) for f, la in rows]
