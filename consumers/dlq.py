"""Dead letters: an event a consumer cannot apply, sent to ``agenthub.dlq`` with why."""

from __future__ import annotations

from collections.abc import Sequence

from hub.ports import ConsumerRecord, EventLog, Position, ProducerRecord
from schemas.codec import Codec
from schemas.events import DeadLettered, Header, Topic

__all__ = ["dead_letter_record", "send_dead_letters"]

MAX_REASON = 4000


def dead_letter_record(
    codec: Codec,
    record: ConsumerRecord,
    *,
    consumer: str,
    error: BaseException,
    event_type: str | None,
    attempts: int = 1,
    tenant_id: str = "unknown",
) -> ProducerRecord:
    """The ``DeadLettered`` record for ``record``, keyed like the original."""
    tenant = record.header("hub-tenant")
    reason = str(error) or type(error).__name__
    event = DeadLettered(
        tenant_id=tenant.decode(errors="replace") if tenant else tenant_id,
        actor=consumer,
        consumer=consumer,
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        original_key=record.key,
        original_value=record.value,
        original_headers=tuple(Header(key=k, value=v) for k, v in record.headers),
        event_type=event_type,
        error_type=type(error).__name__,
        reason=reason[:MAX_REASON],
        attempts=attempts,
    )
    headers = (
        ("hub-type", b"DeadLettered"),
        ("hub-schema", codec.registry.current("DeadLettered").fingerprint_hex.encode()),
        ("hub-tenant", event.tenant_id.encode()),
    )
    return ProducerRecord(str(Topic.DLQ), event.partition_key(), codec.encode(event), headers)


async def send_dead_letters(log: EventLog, records: Sequence[ProducerRecord]) -> list[Position]:
    """Append dead letters and wait until the log has them."""
    return await log.append(records) if records else []
