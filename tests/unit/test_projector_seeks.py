"""A batch read before its partition's latest seek is left out before the claim."""

from __future__ import annotations

from consumers.projector_types import Item, Seeks
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
