"""The producer remembers where it last wrote each key: a read of one entity waits for
that entity's writes only, and falls back to the whole topic once it no longer knows."""

from __future__ import annotations

import pytest

from hub.infra import producer as producer_module
from hub.infra.log.partitioner import partition_for
from hub.infra.ports import ProducerRecord, TopicPartition
from hub.infra.producer import EventProducer
from schemas.codec import Codec
from tests.support.sinks import CountingSink

pytestmark = pytest.mark.anyio


def record(key: bytes) -> ProducerRecord:
    return ProducerRecord("t", key, b"v")


async def test_marks_name_each_keys_last_write() -> None:
    producer = EventProducer(CountingSink(), Codec())
    await producer.send([record(b"a"), record(b"b"), record(b"a")])
    await producer.send([record(b"a")])
    tp_a = TopicPartition("t", partition_for(b"a", 4))
    b_beside_a = partition_for(b"b", 4) == tp_a.partition
    # the third "a" of its partition, after "b" when "b" shares it
    assert producer.marks_of_key("t", b"a") == {tp_a: 3 if b_beside_a else 2}
    assert producer.marks_of_key("t", b"never") == {}  # nothing of ours to wait for
    assert producer.marks_of_key("other", b"a") == {}


async def test_past_its_capacity_it_says_it_does_not_know(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(producer_module, "KEYS_REMEMBERED", 3)
    producer = EventProducer(CountingSink(), Codec())
    await producer.send([record(bytes([i])) for i in range(4)])
    assert producer.marks_of_key("t", b"\x00") is None  # wait for the whole topic instead
    await producer.send([record(b"z")])
    assert producer.marks_of_key("t", b"z") is not None
