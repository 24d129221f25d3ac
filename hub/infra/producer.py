"""The producer: validates, encodes and appends events, and remembers what it wrote.

Every event is validated (it is a frozen pydantic model) and size-checked before anything
is written; a batch either goes to the log whole or raises. Records carry the headers
``hub-type``, ``hub-schema`` (fingerprint) and ``hub-tenant`` and are keyed by the
event's partition key. The producer keeps the highest offset it wrote per partition, so
:meth:`hub.client.Hub.wait_for_projections` can wait for its own writes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar

import anyio
import structlog

from hub.infra.ports import Position, ProducerRecord, RecordSink, TopicPartition
from hub.infra.spool import Spool
from schemas.codec import Codec
from schemas.errors import InputError, LogError
from schemas.events import Event

__all__ = ["EventProducer"]

log = structlog.get_logger(__name__)


KEYS_REMEMBERED = 100_000
"""How many keys' (and parts') last positions a producer keeps for read-your-writes."""


class _Held:
    """The records a task's :meth:`EventProducer.one_append` block holds back."""

    def __init__(self, producer: EventProducer) -> None:
        self.producer = producer
        self.records: list[ProducerRecord] = []
        self.sent: list[Callable[[], None]] = []  # run once the records are appended
        self.open = True


_HELD: ContextVar[_Held | None] = ContextVar("hub_held_records", default=None)


class EventProducer:
    """Appends events to a log."""

    def __init__(
        self,
        log: RecordSink,
        codec: Codec,
        *,
        max_event_bytes: int = 1 << 20,
        spool: Spool | None = None,
    ) -> None:
        self.log = log
        self.spool = spool
        self.spooling = spool is not None and spool.has_pending()
        self.spooled = 0
        self.codec = codec
        self.max_event_bytes = max_event_bytes
        self.high_water: dict[TopicPartition, int] = {}
        self._last_of_key: dict[tuple[str, bytes], Position] = {}
        self._forgot_keys = False
        self._last_of_part: dict[tuple[str, bytes, str], Position | None] = {}
        self._forgot_parts = False
        self._type_headers = {
            name: (("hub-type", name.encode()), ("hub-schema", sv.fingerprint_hex.encode()))
            for name in codec.event_types
            for sv in [codec.registry.current(name)]
        }

    def record(
        self,
        event: Event,
        *,
        max_bytes: int | None = None,
        too_large: Callable[[int], InputError] | None = None,
    ) -> ProducerRecord:
        """The log record for ``event``; raises :class:`InputError` if it is too large:
        ``too_large(size)`` when over ``max_bytes`` (a caller's own limit, checked first),
        else the generic error over ``HUB_MAX_EVENT_BYTES``."""
        value = self.codec.encode(event)
        if max_bytes is not None and too_large is not None and len(value) > max_bytes:
            raise too_large(len(value))
        if len(value) > self.max_event_bytes:
            raise InputError(
                f"{type(event).__name__} is {len(value)} bytes encoded, over the "
                f"{self.max_event_bytes}-byte limit (HUB_MAX_EVENT_BYTES)"
            )
        return self.record_of(event, value)

    def record_of(self, event: Event, value: bytes) -> ProducerRecord:
        """The log record of ``event`` already encoded as ``value`` (headers built here)."""
        return self.record_of_value(type(event), event.partition_key(), event.tenant_id, value)

    def record_of_value(
        self, cls: type[Event], key: bytes, tenant: str, value: bytes
    ) -> ProducerRecord:
        """The log record of an event of ``cls`` encoded as ``value`` without a model (a
        one pass encoder's), keyed ``key``; the caller checked its size."""
        headers = (*self._type_headers[cls.__name__], ("hub-tenant", tenant.encode()))
        return ProducerRecord(str(cls.topic), key, value, headers)

    async def emit(self, events: Sequence[Event]) -> list[Position]:
        """Append ``events`` in order; returns their positions."""
        return await self.send([self.record(e) for e in events])  # all checked before writing

    async def send(self, records: Sequence[ProducerRecord]) -> list[Position]:
        """Append records built by :meth:`record` (all or none); returns their positions.

        With a spool: while the log is unreachable (or earlier batches still wait in the
        spool, so that order is kept) the records are spooled durably instead and no
        positions are returned. Inside :meth:`one_append`, the records are held instead."""
        held = self._held()
        if held is not None:  # sent when the block ends
            held.records.extend(records)
            return []
        spool = self.spool
        if spool is not None and self.spooling:
            if spool.has_pending():
                await anyio.to_thread.run_sync(spool.append, records)
                self.spooled += len(records)
                return []
            self.spooling = False  # drained: back to the log
        try:
            positions = await self.log.append(records)
        except LogError as exc:
            if spool is None or not exc.retriable:
                raise
            await anyio.to_thread.run_sync(spool.append, records)
            self.spooling = True
            self.spooled += len(records)
            log.warning("producer.spooled", records=len(records), error=str(exc))
            return []
        return self._remember(records, positions)

    @asynccontextmanager
    async def one_append(self) -> AsyncIterator[None]:
        """Within the block, this task's sends are held and go to the log as one append
        when it ends (one durable write instead of one each; all or none). If the block
        raises, nothing is sent. A send in the block returns no positions. Nested: the
        outermost block sends."""
        if self._held() is not None:
            yield
            return
        held = _Held(self)
        token = _HELD.set(held)
        try:
            yield
        finally:
            held.open = False  # a task started in the block sends on its own from now
            _HELD.reset(token)
        if held.records:
            await self.send(held.records)
        for callback in held.sent:
            callback()

    def after_send(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once what this task has sent is in the log: now, or when the
        open :meth:`one_append` block's append is done (never, if that fails)."""
        held = self._held()
        if held is None:
            callback()
        else:
            held.sent.append(callback)

    def _held(self) -> _Held | None:
        """The open block of this task holding this producer's sends, if any."""
        held = _HELD.get()
        return held if held is not None and held.open and held.producer is self else None

    async def forward_spool(self, *, max_records: int = 1000) -> int:
        """Send what the spool holds to the log, in order; returns the records sent."""
        if self.spool is None or not self.spool.has_pending():
            return 0
        sent = await self.spool.forward(self._append_direct, max_records=max_records)
        if not self.spool.has_pending():
            self.spooling = False
        return sent

    async def _append_direct(self, records: Sequence[ProducerRecord]) -> None:
        self._remember(records, await self.log.append(records))

    def _remember(
        self, records: Sequence[ProducerRecord], positions: list[Position]
    ) -> list[Position]:
        last_of_key = self._last_of_key
        for rec, pos in zip(records, positions, strict=True):
            known = last_of_key.get((rec.topic, rec.key))
            if known is None or known.offset < pos.offset:
                last_of_key[(rec.topic, rec.key)] = pos
        if len(last_of_key) > KEYS_REMEMBERED:
            last_of_key.clear()  # from now on, keys not seen since wait for the whole topic
            self._forgot_keys = True
        for pos in positions:
            tp = pos.tp
            if pos.offset > self.high_water.get(tp, -1):
                self.high_water[tp] = pos.offset
        return positions

    def marks_of_key(self, topic: str, key: bytes) -> dict[TopicPartition, int] | None:
        """Where this producer last wrote records of ``topic`` keyed ``key`` (read your
        writes for one entity): ``{}`` if it never did, ``None`` if it no longer knows."""
        known = self._last_of_key.get((topic, key))
        if known is not None:
            return {known.tp: known.offset}
        return None if self._forgot_keys else {}

    def note_parts(self, topic: str, key: bytes, parts: Sequence[str]) -> None:
        """Remember that this producer's records of ``topic`` keyed ``key`` written so far
        hold every record it wrote of ``parts`` (entities sharing the key, such as a
        tenant's checkpoint threads): call it once they are sent (:meth:`after_send`)."""
        known = None if self.spooling else self._last_of_key.get((topic, key))
        if len(self._last_of_part) + len(parts) > KEYS_REMEMBERED:
            self._last_of_part.clear()  # from now on, parts not seen since wait for the key
            self._forgot_parts = True
        for part in parts:
            self._last_of_part[(topic, key, part)] = known  # None: spooled or forgotten

    def marks_of_part(self, topic: str, key: bytes, part: str) -> dict[TopicPartition, int] | None:
        """Where this producer last wrote records of one part of a key (see
        :meth:`note_parts`): ``{}`` if it never did, ``None`` if it does not know (wait
        for the whole key then)."""
        if (topic, key, part) in self._last_of_part:
            known = self._last_of_part[(topic, key, part)]
            return None if known is None else {known.tp: known.offset}
        return None if self._forgot_parts else {}
