"""Remote writes on their way to the hub: the records of one client, in order, sent in
batches over HTTP as a Kafka producer sends them (after ``linger`` or once a batch is
full), and spooled durably when the hub cannot be reached.

``put`` returns once the records are queued; ``flush`` returns once everything queued
has been accepted by the hub (or spooled). A batch the hub refuses (a bug: the records
were checked before they were queued) fails the next ``put`` or ``flush`` with the hub's
error."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
from anyio.abc import TaskGroup

from hub.infra.ports import Position, ProducerRecord
from hub.infra.producer import EventProducer
from hub.infra.spool import RECORDS_MEDIA_TYPE, encode_batch
from hub.remote.api import HubApi
from schemas.errors import HubError

__all__ = ["HttpSink", "Outbox"]
MAX_BATCH_RECORDS = 5000


class HttpSink:
    """Records appended through a hub's ``POST /v1/events`` (a ``RecordSink``)."""

    def __init__(self, api: HubApi) -> None:
        self.api = api
        self.name = f"hub at {api.url}"

    async def append(self, records: Sequence[ProducerRecord]) -> list[Position]:
        response = await self.api.send(
            "POST",
            "/v1/events",
            content=encode_batch(records),
            headers={"content-type": RECORDS_MEDIA_TYPE},
        )
        positions = [Position(t, p, o) for t, p, o in response.json()["positions"]]
        self.api.remember(positions)
        return positions


class Outbox:
    """Queued records of one client, sent in order by one sender at a time."""

    def __init__(self, producer: EventProducer, *, linger: float, max_bytes: int) -> None:
        self.producer = producer
        self.linger = linger
        self.max_bytes = max_bytes
        self._queued: list[ProducerRecord] = []
        self._queued_bytes = 0
        self._lock = anyio.Lock()  # one batch in flight: order is kept
        self._error: HubError | None = None
        self._tg: TaskGroup | None = None
        self._timer = False

    def attach(self, tg: TaskGroup) -> None:
        """Where lingering sends run (the client's task group)."""
        self._tg = tg

    def _raise_pending(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    async def put(self, records: Sequence[ProducerRecord]) -> None:
        """Queue records; they are sent within ``linger``, or now if the batch is full."""
        self._raise_pending()
        self._queued.extend(records)
        self._queued_bytes += sum(len(r.value) for r in records)
        if self._queued_bytes >= self.max_bytes or len(self._queued) >= MAX_BATCH_RECORDS:
            await self.flush()
        elif not self._timer:
            self._timer = True
            if self._tg is None or self.linger <= 0:
                await self.flush()
            else:
                self._tg.start_soon(self._after_linger)

    async def _after_linger(self) -> None:
        await anyio.sleep(self.linger)
        try:
            await self._send_queued()
        except HubError as exc:  # raised by the next put or flush
            self._error = exc

    async def flush(self) -> list[Position]:
        """Send everything queued; returns the positions of what was sent now."""
        self._raise_pending()
        positions = await self._send_queued()
        self._raise_pending()
        return positions

    async def send(self, records: Sequence[ProducerRecord]) -> list[Position]:
        """Queued records, then these, sent now (in order); the positions of these."""
        async with self._lock:
            await self._send_locked()
            return await self.producer.send(records)

    async def _send_queued(self) -> list[Position]:
        async with self._lock:
            return await self._send_locked()

    async def _send_locked(self) -> list[Position]:
        self._timer = False
        positions: list[Position] = []
        while self._queued:
            batch, taken = self._take()
            try:
                positions += await self.producer.send(batch)  # spools when the hub is away
            except HubError as exc:
                if exc.retriable:  # no spool: kept, and sent by the next flush
                    raise
                del self._queued[:taken]  # refused for good: the error says why
                self._queued_bytes -= sum(len(r.value) for r in batch)
                raise
            del self._queued[:taken]
            self._queued_bytes -= sum(len(r.value) for r in batch)
        return positions

    def _take(self) -> tuple[list[ProducerRecord], int]:
        size, n = 0, 0
        for record in self._queued[:MAX_BATCH_RECORDS]:
            if n and size + len(record.value) > self.max_bytes:
                break
            size += len(record.value)
            n += 1
        return self._queued[:n], n
