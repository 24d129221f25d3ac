"""The read-your-writes headers: a write's answer says where its events landed
(``X-Hub-Position``) and a read sent with those positions (``X-Hub-Read-After``) waits
for them. Both carry ``topic:partition:offset`` items, comma-separated; the server and
remote mode share this one format."""

from __future__ import annotations

from hub.infra.ports import TopicPartition
from schemas.errors import InputError

__all__ = ["MAX_MARKS", "POSITION", "READ_AFTER", "encode_marks", "parse_marks"]

POSITION = "X-Hub-Position"
READ_AFTER = "X-Hub-Read-After"
MAX_MARKS = 4096


def encode_marks(marks: dict[TopicPartition, int]) -> str:
    return ",".join(f"{tp.topic}:{tp.partition}:{offset}" for tp, offset in marks.items())


def parse_marks(value: str, header: str = READ_AFTER) -> dict[TopicPartition, int]:
    """The highest offset per partition in a header's value; :class:`InputError` naming
    ``header`` if it is not that format."""
    marks: dict[TopicPartition, int] = {}
    try:
        for item in value.split(","):
            topic, partition, offset = item.strip().rsplit(":", 2)
            tp = TopicPartition(topic, int(partition))
            marks[tp] = max(marks.get(tp, -1), int(offset))
    except ValueError:
        raise InputError(f"{header}: expected topic:partition:offset items", field=header) from None
    if len(marks) > MAX_MARKS:
        raise InputError(f"{header}: at most {MAX_MARKS} partitions", field=header)
    return marks
