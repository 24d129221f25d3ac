"""Who in this process is waiting to read what a projection applied.

A projector inside an application's process (embedded defaults) lingers a moment to
gather more records into its batch, but only while nobody waits: a reader waiting for
its own writes (read-your-writes) hurries every projector it waits for. So an agent
writing one event at a time pays one projector transaction for a burst of writes, not
one per write, and a reader still gets its answer as soon as it asks.

Everything here runs on the one event loop of the process's hub.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import anyio

__all__ = ["WaitingReaders"]


class WaitingReaders:
    """The readers of this process waiting for projections, by projection consumer."""

    def __init__(self) -> None:
        self._waiting: Counter[str] = Counter()
        self._arrived: dict[str, anyio.Event] = {}

    @contextmanager
    def waiting(self, consumers: Iterable[str]) -> Iterator[None]:
        """While the block runs, the projectors of ``consumers`` do not linger; one
        lingering now stops at once."""
        names = set(consumers)
        for name in names:
            self._waiting[name] += 1
            arrived = self._arrived.pop(name, None)
            if arrived is not None:
                arrived.set()
        try:
            yield
        finally:
            for name in names:
                self._waiting[name] -= 1
                if self._waiting[name] <= 0:
                    del self._waiting[name]

    def is_waited_for(self, consumer: str) -> bool:
        """Whether a reader waits for the projection ``consumer`` now."""
        return self._waiting[consumer] > 0

    async def linger(self, consumer: str, seconds: float) -> bool:
        """Wait up to ``seconds``, or until a reader waits for ``consumer``; whether it
        waited (not if a reader waits already)."""
        if seconds <= 0 or self.is_waited_for(consumer):
            return False
        arrived = self._arrived.get(consumer)
        if arrived is None:
            arrived = self._arrived[consumer] = anyio.Event()
        with anyio.move_on_after(seconds):
            await arrived.wait()
        return True
