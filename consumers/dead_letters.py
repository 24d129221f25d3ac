"""Dead letters: an event a consumer cannot apply, sent to ``agenthub.dlq`` with why."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from consumers.projector_types import Key, Poison
from hub.infra.ports import ConsumerRecord, EventLog, Position, ProducerRecord
from schemas.codec import Codec
from schemas.events import DeadLettered, Header, Topic

__all__ = ["dead_letter_poison", "dead_letter_record", "first_time_dead", "send_dead_letters"]

MAX_REASON = 4000
CLAIM = """
INSERT INTO hub.dead_lettered (consumer, topic, partition, "offset")
SELECT $1, * FROM unnest($2::text[], $3::int[], $4::bigint[])
ON CONFLICT DO NOTHING
RETURNING topic, partition, "offset"
"""


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


async def first_time_dead(
    conn: asyncpg.Connection, consumer: str, records: Sequence[ConsumerRecord]
) -> list[ConsumerRecord]:
    """The records ``consumer`` has not dead-lettered before, now marked as dead-lettered
    (in the caller's transaction). A replay or a rebuild meeting old poison skips it
    again without sending the operator a second dead letter for it."""
    if not records:
        return []
    rows = await conn.fetch(
        CLAIM,
        consumer,
        [r.topic for r in records],
        [r.partition for r in records],
        [r.offset for r in records],
    )
    new = {(r[0], r[1], r[2]) for r in rows}
    return [r for r in records if (r.topic, r.partition, r.offset) in new]


async def send_dead_letters(log: EventLog, records: Sequence[ProducerRecord]) -> list[Position]:
    """Append dead letters and wait until the log has them."""
    return await log.append(records) if records else []


async def dead_letter_poison(
    conn: asyncpg.Connection,
    log: EventLog,
    codec: Codec,
    consumer: str,
    dead: Sequence[Poison],
    records: Mapping[Key, ConsumerRecord],
    logger: Any,
) -> None:
    """Dead-letter the poison of a batch, except what was dead-lettered before (a replay
    or a rebuild meeting the same record again skips it quietly)."""
    first = await first_time_dead(conn, consumer, [records[p.key] for p in dead])
    new = {(r.tp, r.offset) for r in first}
    letters = []
    for poison in dead:
        tp, offset = poison.key
        if poison.key not in new:
            logger.info("projector.poison_skipped_again", tp=str(tp), offset=offset)
            continue
        logger.error(
            "projector.dead_lettered",
            tp=str(tp),
            offset=offset,
            event_type=poison.event_type,
            error=f"{type(poison.error).__name__}: {poison.error}",
        )
        letters.append(
            dead_letter_record(
                codec,
                records[poison.key],
                consumer=consumer,
                error=poison.error,
                event_type=poison.event_type,
            )
        )
    await send_dead_letters(log, letters)
