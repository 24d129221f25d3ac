"""What a Postgres log consumer knows of its partitions' ends, from the appends' NOTIFYs.

Every append notifies ``"topic|partition:end,..."`` (``end``: the offset after its last
record) once it has committed. A consumer that has read everything up to those ends
learns nothing new from a read, so it skips it. A notification can reach the consumer
after a read has already returned the records it announces (delivery follows the commit);
without the ends each one cost an empty read. The knowledge is kept only while it is
sure:

- after a read that returned everything its partitions held (no partition up to its
  limit, no gap) and during which no notification announced more;
- until a notification names an end past the consumer's position (or names none: an
  older writer), or the consumer connects again, is assigned partitions or seeks.

A read is still made every ``poll_s`` whatever the notifications say, as before: a
notification lost with its connection delays a record by at most that long.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from hub.infra.ports import TopicPartition

__all__ = ["TailKnowledge", "notify_payload"]


def notify_payload(topic: str, ends: Mapping[int, int]) -> str:
    """The payload announcing ``topic``'s partitions appended up to ``ends`` (partition:
    the offset after its last new record)."""
    return topic + "|" + ",".join(f"{p}:{end}" for p, end in sorted(ends.items()))


class TailKnowledge:
    """Whether a read of the consumer's partitions could find records it has not read."""

    def __init__(self, poll_s: float = 1.0) -> None:
        self.poll_s = poll_s
        self.generation = 0
        """How many notifications announced records past the positions, and forgets."""
        self._read_all = False
        self._read_at = float("-inf")

    def forget(self) -> None:
        """Nothing is known any more (connected again, partitions assigned, a seek); a
        read in flight, started before, cannot make it known again."""
        self.generation += 1
        self._read_all = False

    def notified(self, payload: str, positions: Mapping[TopicPartition, int]) -> bool:
        """Take in an append's notification; whether it announces records past
        ``positions`` in an assigned partition (a waiting consumer should read)."""
        topic, _, parts = payload.partition("|")
        new = False
        for part in parts.split(","):
            partition, has_end, end = part.partition(":")
            try:
                tp = TopicPartition(topic, int(partition))
                position = positions.get(tp)
                if position is not None and (not has_end or int(end) > position):
                    new = True
            except ValueError:  # not a payload of ours: read to be sure
                new = new or any(tp.topic == topic for tp in positions)
        if new:
            self.generation += 1
            self._read_all = False
        return new

    def worth_reading(self) -> bool:
        """Whether to read: more may be there, or the last read is ``poll_s`` old."""
        return not self._read_all or time.monotonic() - self._read_at >= self.poll_s

    def read(self, generation: int, *, complete: bool) -> None:
        """A read finished; it started at ``generation`` and returned everything its
        partitions held (``complete``) or not."""
        self._read_at = time.monotonic()
        self._read_all = complete and generation == self.generation
