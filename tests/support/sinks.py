"""A record sink for producer unit tests: it numbers records per partition, as a log does,
and remembers each append's size."""

from __future__ import annotations

from collections.abc import Sequence

from hub.infra.log.partitioner import partition_for
from hub.infra.ports import Position, ProducerRecord, TopicPartition

__all__ = ["CountingSink"]


class CountingSink:
    """Numbers records per partition (4 partitions); ``appends``: each append's records."""

    name = "counting"

    def __init__(self) -> None:
        self.next: dict[TopicPartition, int] = {}
        self.appends: list[list[ProducerRecord]] = []

    async def append(self, records: Sequence[ProducerRecord]) -> list[Position]:
        self.appends.append(list(records))
        positions = []
        for rec in records:
            tp = TopicPartition(rec.topic, partition_for(rec.key, 4))
            offset = self.next.get(tp, 0)
            self.next[tp] = offset + 1
            positions.append(Position(tp.topic, tp.partition, offset))
        return positions
