"""A group member in its own process, for failover tests.

``python -m tests.support.log_member URL GROUP TOPIC`` joins ``GROUP`` on ``TOPIC`` and
prints its assignment as a JSON list of partitions whenever it changes.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping

import anyio

from hub.infra.log import open_log
from hub.infra.logs import configure_logging
from hub.infra.ports import TopicPartition
from schemas.errors import LogError


class _Listener:
    def __init__(self) -> None:
        self.owned: set[TopicPartition] = set()

    async def on_assigned(
        self, partitions: frozenset[TopicPartition]
    ) -> Mapping[TopicPartition, int | None]:
        self.owned |= partitions
        return {}

    async def on_revoked(self, partitions: frozenset[TopicPartition]) -> None:
        self.owned -= partitions


async def main(*args: str) -> None:
    url, group, topic = args
    options = (
        {"request_timeout_ms": 5000, "session_timeout_ms": 6000, "heartbeat_interval_ms": 500}
        if url.startswith("kafka://")
        else {}
    )
    async with open_log(url, **options) as log:
        listener = _Listener()
        consumer = log.consumer(group_id=group, topics=[topic], listener=listener)
        while True:
            try:
                await consumer.start()
                break
            except LogError as exc:
                if not exc.retriable:
                    raise
                await anyio.sleep(0.5)
        last: list[int] | None = None
        while True:
            try:
                await consumer.fetch(100, 0.2)
            except LogError as exc:
                if not exc.retriable:
                    raise
            now = sorted(tp.partition for tp in listener.owned)
            if now != last:
                print(json.dumps(now), flush=True)
                last = now


if __name__ == "__main__":
    configure_logging("warning")
    anyio.run(main, *sys.argv[1:4])
