"""A projector's batch never holds one record twice, even when a rebalance during its
linger re-reads a partition from the stored position (``consumers.projector_types.not_in``)."""

from __future__ import annotations

from consumers.projector_types import not_in
from hub.infra.ports import ConsumerRecord, TopicPartition

P0, P1 = TopicPartition("t", 0), TopicPartition("t", 1)


def rec(tp: TopicPartition, offset: int) -> ConsumerRecord:
    return ConsumerRecord(tp.topic, tp.partition, offset, b"k", b"v", (), 0, tp)


def test_a_re_read_partition_adds_only_what_follows_the_batch() -> None:
    batch = [rec(P0, o) for o in range(100, 110)] + [rec(P1, 5)]
    re_read = [rec(P0, o) for o in range(100, 115)] + [rec(P1, 5), rec(P1, 6)]
    kept = not_in(batch, re_read)
    assert [(r.tp, r.offset) for r in kept] == [(P0, o) for o in range(110, 115)] + [(P1, 6)]


def test_new_partitions_and_continuations_pass() -> None:
    batch = [rec(P0, 0)]
    more = [rec(P0, 1), rec(P1, 0)]
    assert not_in(batch, more) == more
