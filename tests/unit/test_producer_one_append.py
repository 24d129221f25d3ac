"""``one_append``: what a task sends inside the block goes to the log as one append when
the block ends, or not at all if it raises."""

from __future__ import annotations

import anyio
import pytest

from hub.infra.ports import ProducerRecord
from hub.infra.producer import EventProducer
from schemas.codec import Codec
from tests.support.sinks import CountingSink

pytestmark = pytest.mark.anyio


def record(key: bytes, topic: str = "t") -> ProducerRecord:
    return ProducerRecord(topic, key, b"v")


async def test_the_blocks_sends_are_one_append_when_it_ends() -> None:
    sink = CountingSink()
    producer = EventProducer(sink, Codec())
    async with producer.one_append():
        assert await producer.send([record(b"a"), record(b"b")]) == []
        assert await producer.send([record(b"c", topic="other")]) == []
        assert sink.appends == []  # nothing written yet
    assert [[r.key for r in a] for a in sink.appends] == [[b"a", b"b", b"c"]]
    assert producer.marks_of_key("other", b"c") is not None  # remembered once written
    await producer.send([record(b"d")])  # after the block: as before
    assert len(sink.appends) == 2


async def test_a_block_that_raises_sends_nothing() -> None:
    sink = CountingSink()
    producer = EventProducer(sink, Codec())
    with pytest.raises(ValueError):
        async with producer.one_append():
            await producer.send([record(b"a")])
            raise ValueError("a message the caller could not build")
    assert sink.appends == []
    assert producer.high_water == {}


async def test_nested_blocks_send_once_and_other_producers_are_not_held() -> None:
    sink, other_sink = CountingSink(), CountingSink()
    producer, other = EventProducer(sink, Codec()), EventProducer(other_sink, Codec())
    async with producer.one_append():
        async with producer.one_append():
            await producer.send([record(b"a")])
        assert sink.appends == []
        positions = await other.send([record(b"b")])
        assert positions and len(other_sink.appends) == 1  # its own producer: sent now
        await producer.send([record(b"c")])
    assert [[r.key for r in a] for a in sink.appends] == [[b"a", b"c"]]


async def test_only_the_blocks_own_task_is_held() -> None:
    sink = CountingSink()
    producer = EventProducer(sink, Codec())
    go, later = anyio.Event(), anyio.Event()

    async def beside() -> None:  # started before the block: not in it
        await go.wait()
        await producer.send([record(b"beside")])

    async def started_inside() -> None:  # sends once the block has ended
        await later.wait()
        await producer.send([record(b"late")])

    async with anyio.create_task_group() as tg:
        tg.start_soon(beside)
        async with producer.one_append():
            await producer.send([record(b"a")])
            tg.start_soon(started_inside)
            go.set()
            while not sink.appends:
                await anyio.sleep(0.001)
            assert [[r.key for r in a] for a in sink.appends] == [[b"beside"]]
        later.set()
    keys = [[r.key for r in a] for a in sink.appends]
    assert keys == [[b"beside"], [b"a"], [b"late"]]
