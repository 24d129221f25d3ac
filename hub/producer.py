"""The producer: validates, encodes and appends events, and remembers what it wrote.

Every event is validated (it is a frozen pydantic model) and size-checked before anything
is written; a batch either goes to the log whole or raises. Records carry the headers
``hub-type``, ``hub-schema`` (fingerprint) and ``hub-tenant`` and are keyed by the
event's partition key. The producer keeps the highest offset it wrote per partition, so
:meth:`hub.client.Hub.wait_for_projections` can wait for its own writes.
"""

from __future__ import annotations

from collections.abc import Sequence

from hub.ports import EventLog, Position, ProducerRecord, TopicPartition
from schemas.codec import Codec
from schemas.errors import InputError
from schemas.events import Event

__all__ = ["EventProducer"]


class EventProducer:
    """Appends events to a log."""

    def __init__(self, log: EventLog, codec: Codec, *, max_event_bytes: int = 1 << 20) -> None:
        self.log = log
        self.codec = codec
        self.max_event_bytes = max_event_bytes
        self.high_water: dict[TopicPartition, int] = {}
        self._type_headers = {
            name: (("hub-type", name.encode()), ("hub-schema", sv.fingerprint_hex.encode()))
            for name in codec.event_types
            for sv in [codec.registry.current(name)]
        }

    def record(self, event: Event) -> ProducerRecord:
        """The log record for ``event``; raises :class:`InputError` if it is too large."""
        value = self.codec.encode(event)
        if len(value) > self.max_event_bytes:
            raise InputError(
                f"{type(event).__name__} is {len(value)} bytes encoded, over the "
                f"{self.max_event_bytes}-byte limit (HUB_MAX_EVENT_BYTES)"
            )
        headers = (
            *self._type_headers[type(event).__name__],
            ("hub-tenant", event.tenant_id.encode()),
        )
        return ProducerRecord(str(event.topic), event.partition_key(), value, headers)

    async def emit(self, events: Sequence[Event]) -> list[Position]:
        """Append ``events`` in order; returns their positions."""
        return await self.send([self.record(e) for e in events])  # all checked before writing

    async def send(self, records: Sequence[ProducerRecord]) -> list[Position]:
        """Append records built by :meth:`record` (all or none); returns their positions."""
        positions = await self.log.append(records)
        for pos in positions:
            tp = pos.tp
            if pos.offset > self.high_water.get(tp, -1):
                self.high_water[tp] = pos.offset
        return positions
