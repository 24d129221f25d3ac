"""A log that counts the fetches of the consumers it makes (a spy on the real log)."""

from __future__ import annotations

from typing import Any

__all__ = ["CountingLog"]


class CountingLog:
    """The runtime's log, counting the fetches of the consumers it makes."""

    def __init__(self, log: Any) -> None:
        self._log = log
        self.fetches = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)

    def consumer(self, **kw: Any) -> Any:
        consumer = self._log.consumer(**kw)
        fetch = consumer.fetch

        async def counted(max_records: int, timeout: float) -> Any:
            self.fetches += 1
            return await fetch(max_records, timeout)

        consumer.fetch = counted
        return consumer
