"""Properties only the Postgres log must prove: gapless offsets visible in commit order,
no skipped late commits under concurrent writers, and tailing by LISTEN/NOTIFY."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import asyncpg
import pytest

from hub.infra.log.partitioner import partition_for
from hub.infra.log.postgres import PostgresLog
from hub.infra.log.postgres_append import Appender
from hub.infra.log.postgres_group import append_channel
from hub.infra.ports import ConsumerRecord, Position, ProducerRecord, TopicPartition

pytestmark = pytest.mark.anyio

TOPIC = "t"


@pytest.fixture
async def pglog(database_url: str) -> AsyncIterator[PostgresLog]:
    async with PostgresLog(database_url, pool_size=20) as log:
        await log.ensure_topics({TOPIC: 1, "multi": 3})
        yield log


class ReadCounter:
    """Counts the reads of the records table a log's consumers make."""

    def __init__(self, log: PostgresLog, monkeypatch: pytest.MonkeyPatch) -> None:
        self.n = 0
        real_read = log.read

        async def counting_read(*args: Any, **kwargs: Any) -> Any:
            self.n += 1
            return await real_read(*args, **kwargs)

        monkeypatch.setattr(log, "read", counting_read)


async def tail(log: PostgresLog, expected: int, seen: list[ConsumerRecord]) -> None:
    async with log.consumer(group_id=None, partitions=[TopicPartition(TOPIC, 0)]) as consumer:
        with anyio.fail_after(60):
            while len(seen) < expected:
                seen += await consumer.fetch(50, 0.5)


async def test_concurrent_writers_and_a_late_committer_are_never_skipped(
    pglog: PostgresLog, database_url: str
) -> None:
    """8 writers append while one writer holds its transaction open for a while.

    The tailing consumer must see every offset exactly once, in order, with no gap:
    the late committer's records included, though later appends were made meanwhile.
    """
    writers, per_writer = 8, 40
    seen: list[ConsumerRecord] = []
    late_conn = await asyncpg.connect(database_url)
    late_tx = late_conn.transaction()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(tail, pglog, writers * per_writer + 5, seen)

            async def writer(w: int) -> None:
                for i in range(per_writer):
                    await pglog.append(
                        [ProducerRecord(TOPIC, f"w{w}".encode(), f"{w}:{i}".encode())]
                    )
                    await anyio.sleep(random.random() / 200)

            async def late_writer() -> None:
                await anyio.sleep(0.05)
                await late_tx.start()
                await pglog.append_in(
                    late_conn,
                    [ProducerRecord(TOPIC, b"late", f"late:{i}".encode()) for i in range(5)],
                )
                await anyio.sleep(1.0)  # everyone else is blocked on the partition meanwhile
                await late_tx.commit()

            tg.start_soon(late_writer)
            async with anyio.create_task_group() as wg:
                for w in range(writers):
                    wg.start_soon(writer, w)
    finally:
        await late_conn.close()
    offsets = [r.offset for r in seen]
    assert offsets == list(range(writers * per_writer + 5))
    values = [r.value.decode() for r in seen]
    assert sorted(v for v in values if v.startswith("late")) == [f"late:{i}" for i in range(5)]
    for w in range(writers):  # each writer's own appends stay in its order
        mine = [int(v.split(":")[1]) for v in values if v.startswith(f"{w}:")]
        assert mine == list(range(per_writer))


async def test_an_aborted_append_leaves_no_gap(pglog: PostgresLog, database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        tx = conn.transaction()
        await tx.start()
        await pglog.append_in(conn, [ProducerRecord(TOPIC, b"k", b"rolled back")])
        await tx.rollback()
    finally:
        await conn.close()
    positions = await pglog.append([ProducerRecord(TOPIC, b"k", b"kept")])
    assert positions[0].offset == 0
    assert (await pglog.end_offsets([TopicPartition(TOPIC, 0)]))[TopicPartition(TOPIC, 0)] == 1


async def test_a_group_commit_writes_all_its_partitions_in_one_statement(
    pglog: PostgresLog, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Concurrent single-partition appends, from two logs (two processes) at once, to
    partitions in any order: each group commit is one statement whatever partitions it
    holds, no two deadlock, and every caller's positions hold exactly what it sent,
    headers included, gapless per partition."""
    writes: list[int] = []
    statements = 0
    real_write = Appender._write_partitions
    real_fetch = asyncpg.connection.Connection.fetch
    real_fetchval = asyncpg.connection.Connection.fetchval

    async def counting_write(self: Appender, conn: Any, by_partition: Any) -> Any:
        writes.append(len(by_partition))
        return await real_write(self, conn, by_partition)

    async def counting_fetch(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        nonlocal statements
        if "INSERT INTO" in query and "records" in query:
            statements += 1
        return await real_fetch(self, query, *args, **kwargs)

    async def counting_fetchval(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        nonlocal statements
        if "INSERT INTO" in query and "records" in query:
            statements += 1
        return await real_fetchval(self, query, *args, **kwargs)

    monkeypatch.setattr(Appender, "_write_partitions", counting_write)
    monkeypatch.setattr(asyncpg.connection.Connection, "fetch", counting_fetch)
    monkeypatch.setattr(asyncpg.connection.Connection, "fetchval", counting_fetchval)
    sent: list[tuple[Position, ProducerRecord]] = []

    async def writer(log: PostgresLog, seed: int) -> None:
        rng = random.Random(seed)
        for i in range(25):
            key = f"k{rng.randrange(40)}".encode()
            headers = (("n", str(i).encode()),) if i % 3 else ()
            records = [
                ProducerRecord("multi", key, f"{seed}:{i}:{j}".encode(), headers)
                for j in range(rng.randrange(1, 4))
            ]
            sent.extend(zip(await log.append(records), records, strict=True))

    async with PostgresLog(database_url, pool_size=5) as other:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for seed in range(12):
                    tg.start_soon(writer, pglog if seed % 2 else other, seed)
    assert max(writes) >= 2, "no group commit held two partitions"
    assert statements == len(writes)
    stored: dict[tuple[int, int], ConsumerRecord] = {}
    parts = [TopicPartition("multi", p) for p in range(3)]
    async with pglog.consumer(group_id=None, partitions=parts) as c:
        while len(stored) < len(sent):
            got = await c.fetch(500, 1.0)
            assert got, "fewer records stored than acknowledged"
            stored.update({(r.partition, r.offset): r for r in got})
    for position, record in sent:
        back = stored[(position.partition, position.offset)]
        assert (back.key, back.value, back.headers) == (record.key, record.value, record.headers)
        assert position.partition == partition_for(record.key, 3)
    for p in range(3):
        offsets = sorted(o for q, o in stored if q == p)
        assert offsets == list(range(len(offsets)))


async def test_multi_partition_appends_do_not_deadlock(pglog: PostgresLog) -> None:
    async def burst(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(20):
            keys = [f"k{rng.randrange(50)}".encode() for _ in range(rng.randrange(2, 8))]
            await pglog.append([ProducerRecord("multi", k, b"v") for k in keys])

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for seed in range(8):
                tg.start_soon(burst, seed)
    ends = await pglog.end_offsets([TopicPartition("multi", p) for p in range(3)])
    assert sum(ends.values()) > 0


async def test_idle_tailing_runs_no_queries(
    pglog: PostgresLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A waiting consumer sleeps on LISTEN; it does not poll the records table."""
    reads = ReadCounter(pglog, monkeypatch)
    async with pglog.consumer(group_id=None, partitions=[TopicPartition(TOPIC, 0)]) as c:
        started = anyio.current_time()
        assert await c.fetch(10, 3.0) == []  # idle for 3 s
        assert anyio.current_time() - started >= 2.9
        assert reads.n == 1, f"{reads.n} reads in 3 s idle: polling"

        async def append_soon() -> None:
            await anyio.sleep(0.2)
            await pglog.append([ProducerRecord(TOPIC, b"k", b"wake")])

        async with anyio.create_task_group() as tg:
            tg.start_soon(append_soon)
            assert len(await c.fetch(10, 3.0)) == 1
        assert reads.n == 3  # the empty read before waiting, and the one the NOTIFY woke


async def test_a_notification_of_records_already_read_costs_no_read(
    pglog: PostgresLog, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An append's NOTIFY names each partition's new end; one that reaches a consumer
    after it has read those records (delivery follows the commit) does not make it read
    again. One naming an end past its position, or no end (an older writer), does; and
    it still reads once a second whatever the notifications say."""
    reads = ReadCounter(pglog, monkeypatch)
    parts = [TopicPartition("multi", p) for p in range(3)]
    conn = await asyncpg.connect(database_url)
    async with pglog.consumer(group_id=None, partitions=parts) as c:
        await pglog.append([ProducerRecord("multi", f"{k}".encode(), b"m") for k in range(6)])
        await pglog.append([ProducerRecord("multi", b"0", b"one more")])
        seen: list[ConsumerRecord] = []
        with anyio.fail_after(10):
            while len(seen) < 7:
                seen += await c.fetch(10, 0.5)
        await anyio.sleep(0.3)  # every notification of those appends has arrived
        await c.fetch(10, 0.0)  # a read, if one arrived while the last read ran
        ends = await pglog.end_offsets(parts)
        for payload in (f"multi|{p}:{ends[tp]}" for p, tp in enumerate(parts)):
            await conn.execute("SELECT pg_notify($1, $2)", append_channel("multi"), payload)
        reads.n = 0
        assert await c.fetch(10, 0.5) == []
        assert reads.n == 0, "a notification of records already read made the consumer read"

        await conn.execute("SELECT pg_notify($1, $2)", append_channel("multi"), "multi|1")
        with anyio.fail_after(5):
            assert await c.fetch(10, 3.0) == []  # woken at once, read, nothing new
        assert reads.n == 1

        reads.n = 0
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(pglog.append, [ProducerRecord("multi", b"k", b"new")])
                assert [r.value for r in await c.fetch(10, 3.0)] == [b"new"]
        assert reads.n >= 1

        await c.fetch(10, 0.0)
        await anyio.sleep(1.1)
        reads.n = 0
        assert await c.fetch(10, 0.0) == []
        assert reads.n == 1, "the once-a-second read is kept whatever the notifications say"
    await conn.close()


async def test_an_append_notifies_its_topics_channel_only(
    pglog: PostgresLog, database_url: str
) -> None:
    """Each topic has its own NOTIFY channel (a long name's is hashed to fit Postgres's
    63 bytes), so an append wakes its topic's consumers only, single- or multi-partition;
    a consumer of a long-named topic is woken by the NOTIFY, not by its fetch timeout."""
    long_topic = "agenthub." + "x" * 80
    await pglog.ensure_topics({long_topic: 2})
    heard: list[str] = []
    conn = await asyncpg.connect(database_url)
    try:
        for topic in (TOPIC, "multi", long_topic):
            await conn.add_listener(append_channel(topic), lambda *a: heard.append(a[2]))
        await pglog.append([ProducerRecord(TOPIC, b"k", b"one")])
        await pglog.append([ProducerRecord("multi", f"{k}".encode(), b"m") for k in range(6)])
        with anyio.fail_after(10):
            while len(heard) < 2:
                await anyio.sleep(0.05)
        await anyio.sleep(0.3)  # anything else would have come by now
        # a multi-partition append may notify once per partition: on its topic's channel
        assert sorted(set(heard)) == sorted([append_channel(TOPIC), append_channel("multi")])
    finally:
        await conn.close()
    assert len(append_channel(long_topic).encode()) <= 63
    mine = [TopicPartition(long_topic, 0), TopicPartition(long_topic, 1)]
    async with pglog.consumer(group_id=None, partitions=mine) as c:
        assert await c.fetch(10, 0.2) == []

        async def append_mine() -> None:
            await anyio.sleep(0.2)
            await pglog.append(
                [ProducerRecord(long_topic, f"{k}".encode(), b"m") for k in range(4)]
            )

        async with anyio.create_task_group() as tg:
            tg.start_soon(append_mine)
            with anyio.fail_after(5):  # well before the fetch's own timeout
                got = await c.fetch(10, 30.0)
        assert len(got) == 4


async def test_truncation_moves_the_start_and_readers_skip_ahead(pglog: PostgresLog) -> None:
    await pglog.append([ProducerRecord(TOPIC, b"k", str(i).encode()) for i in range(10)])
    tp = TopicPartition(TOPIC, 0)
    await pglog.truncate_before(tp, 6)
    assert (await pglog.beginning_offsets([tp]))[tp] == 6
    async with pglog.consumer(group_id=None, partitions=[tp]) as consumer:
        got = await consumer.fetch(100, 1.0)
    assert [r.offset for r in got] == [6, 7, 8, 9]


def _odd_records(rng: random.Random, topic: str) -> list[ProducerRecord]:
    """Records at the edges: no key or an empty one, empty values, NUL and high bytes,
    no headers, non-ASCII header names, a value of 1 MiB."""
    names = ["hub-type", "hub-tenant", "é-ñame", "x" * 40, "", "日本"]
    records = [
        ProducerRecord(topic, b"", b""),
        ProducerRecord(topic, b"\x00", b"\x00\xff" * 3, (("", b""),)),
        ProducerRecord(topic, b"big", bytes(rng.getrandbits(8) for _ in range(1 << 20))),
    ]
    for _ in range(300):
        headers = tuple(
            (rng.choice(names), rng.randbytes(rng.randrange(20))) for _ in range(rng.randrange(4))
        )
        records.append(
            ProducerRecord(
                topic,
                rng.randbytes(rng.randrange(30)),
                rng.randbytes(rng.randrange(300)),
                headers,
            )
        )
    return records


@pytest.mark.parametrize("topic", [TOPIC, "multi"])
async def test_appended_records_read_back_byte_for_byte(pglog: PostgresLog, topic: str) -> None:
    """Every key, value and header is stored exactly as given, whether the append went to
    one partition (one statement) or to several (one transaction, a binary COPY built by
    hub/infra/log/copy_rows.py)."""
    records = _odd_records(random.Random(7), topic)
    before_ms = time.time() * 1000
    positions = await pglog.append(records)
    after_ms = time.time() * 1000
    assert len(positions) == len(records)
    read: dict[tuple[TopicPartition, int], ConsumerRecord] = {}
    partitions = sorted({p.tp for p in positions})
    async with pglog.consumer(group_id=None, partitions=partitions) as consumer:
        with anyio.fail_after(30):
            while len(read) < len(records):
                for rec in await consumer.fetch(500, 1):
                    read[(rec.tp, rec.offset)] = rec
    for record, pos in zip(records, positions, strict=True):
        got = read[(pos.tp, pos.offset)]
        assert (got.key, got.value, got.headers) == (record.key, record.value, record.headers)
        assert before_ms - 1 <= got.timestamp_ms <= after_ms + 1


async def test_one_busy_partition_among_idle_ones_is_read_in_full_pages(
    pglog: PostgresLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The archiver reads every partition of every topic: the one that has records gets
    the whole page once it shows it has some, not a page split over all the partitions (a
    fetch whose first read was a probe reads the rest at once: a short fetch would be
    taken for the end of the log); and when every partition has records at once, a fetch
    still brings no more than asked."""
    await pglog.ensure_topics({"many": 12})
    keys = {partition_for(f"k{i}".encode(), 12): f"k{i}".encode() for i in range(500)}
    await pglog.append([ProducerRecord("many", keys[5], b"v")] * 1000)
    tps = [TopicPartition("many", p) for p in range(12)] + [TopicPartition(TOPIC, 0)]
    reads = ReadCounter(pglog, monkeypatch)
    async with pglog.consumer(group_id=None, partitions=tps) as consumer:
        first = await consumer.fetch(240, 1.0)
        assert len(first) == 240 and reads.n == 2  # a probe, then the rest in a page
        second = await consumer.fetch(240, 1.0)
        assert len(second) == 240 and reads.n == 3
        everywhere = [ProducerRecord("many", keys[p], b"v") for p in range(12)]
        await pglog.append(everywhere * 100)
        got = [await consumer.fetch(240, 1.0) for _ in range(4)]
        assert all(0 < len(g) <= 240 for g in got)
        seen = first + second + [r for g in got for r in g]
        rest = []
        while more := await consumer.fetch(240, 0.2):
            rest += more
    by_partition: dict[int, list[int]] = {}
    for r in seen + rest:
        by_partition.setdefault(r.partition, []).append(r.offset)
    assert by_partition[5] == list(range(1100))  # in order, nothing skipped or repeated
    assert all(by_partition[p] == list(range(100)) for p in range(12) if p != 5)


HEADER_SETS: list[tuple[tuple[str, bytes], ...]] = [
    (("hub-type", b"AgentRegistered"), ("hub-tenant", b"t1")),
    (("hub-type", b"AgentRegistered"), ("hub-tenant", b"t2")),  # same keys, another value
    (),
    (("hub-type", b"AgentRegistered"),),  # a part of the first
    (("hub-tenant", b"t1"), ("hub-type", b"AgentRegistered")),  # the first, reordered
    (("bin", b"\x00\xff\x00"), ("", b"")),
]


async def test_every_header_set_reads_back_exactly_whichever_set_a_read_expects(
    pglog: PostgresLog,
) -> None:
    """A read names the header set it expects and gets NULLs for the rows that carry
    exactly it; every record still reads back with the headers it was appended with, as
    runs of one set and single changes go by, across partitions and fetches."""
    pattern = [0] * 30 + [1, 0, 2, 0, 3, 4, 5, 5, 0] + [2] * 10 + [4, 1] * 5
    sent = [
        ProducerRecord("multi", f"k{i % 7}".encode(), f"v{i}".encode(), HEADER_SETS[h])
        for i, h in enumerate(pattern)
    ]
    positions = await pglog.append(sent)
    pairs = zip(positions, sent, strict=True)
    expected = {(pos.partition, pos.offset): r.headers for pos, r in pairs}
    tps = [TopicPartition("multi", p) for p in range(3)]
    seen: dict[tuple[int, int], Any] = {}
    async with pglog.consumer(group_id=None, partitions=tps) as consumer:
        with anyio.fail_after(30):
            while len(seen) < len(sent):
                for r in await consumer.fetch(7, 0.5):
                    seen[(r.partition, r.offset)] = r.headers
    assert seen == expected

    usual = HEADER_SETS[0]
    rows = await pglog.read(
        [(tp, 0, 1000) for tp in tps], ([k for k, _ in usual], [v for _, v in usual])
    )
    by_position = {(tps[row[0] - 1].partition, row[1]): row for row in rows}
    for position, headers in expected.items():
        keys, values = by_position[position][4], by_position[position][5]
        if headers == usual:
            assert keys is None and values is None  # not sent: the reader fills them in
        else:
            assert list(zip(keys, values, strict=True)) == list(headers)
