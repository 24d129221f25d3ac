"""Dead letters for operators: list, show, and replay into their projection.

A dead letter's id is its place in ``agenthub.dlq``: ``"{partition}:{offset}"``.
``replay`` first tries the original event against its projection in a transaction that
is rolled back: if the handler still fails, nothing happens and the reason is shown.
Otherwise the original record (same key, bytes and event id) is appended to its source
topic again, so the log stays the truth: the projection applies it in order, and a
rebuild from the log reproduces it (its first copy is dead-lettered again, the second
applies). ``hub.dlq_replays`` remembers each replay, and the event-id dedupe drops a
copy already applied, so replaying twice has no further effect.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg

from consumers.applied_events import record_new
from hub.infra.ports import ProducerRecord, TopicPartition
from hub.runtime import Runtime
from projections.base import Projection, call_handler
from schemas.errors import HubError, InputError, NotFoundError, SchemaError
from schemas.events import DeadLettered, Event, Topic

__all__ = ["DeadLetter", "ReplayResult", "dead_letters", "get_dead_letter", "replay_dead_letter"]

DLQ = str(Topic.DLQ)
RECORD = """
INSERT INTO hub.dlq_replays (dlq_partition, dlq_offset, consumer, event_id)
VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING 1
"""
REPLAYED = "SELECT dlq_partition, dlq_offset FROM hub.dlq_replays"
IS_REPLAYED = "SELECT true FROM hub.dlq_replays WHERE dlq_partition = $1 AND dlq_offset = $2"
UNRECORD = "DELETE FROM hub.dlq_replays WHERE dlq_partition = $1 AND dlq_offset = $2"


@dataclass(frozen=True)
class DeadLetter:
    """One dead letter, with where it sits in the DLQ and whether it was replayed."""

    id: str
    letter: DeadLettered
    event: Event | None  # the original, if it decodes
    replayed: bool

    def summary(self) -> dict[str, Any]:
        d = self.letter
        return {
            "id": self.id,
            "consumer": d.consumer,
            "event_type": d.event_type,
            "source": f"{d.source_topic}[{d.source_partition}]@{d.source_offset}",
            "error_type": d.error_type,
            "reason": d.reason,
            "at": d.occurred_at.isoformat(),
            "replayed": self.replayed,
        }


@dataclass(frozen=True)
class ReplayResult:
    id: str
    outcome: str  # requeued, already_replayed, already_applied, failed
    detail: str = ""


def _parse_id(value: str) -> tuple[int, int]:
    part, sep, offset = value.partition(":")
    if not sep or not part.isdigit() or not offset.isdigit():
        raise InputError(f"{value!r} is not a dead-letter id (partition:offset)", field="id")
    return int(part), int(offset)


async def _replayed(runtime: Runtime) -> set[tuple[int, int]]:
    return {(r[0], r[1]) for r in await runtime.pool.fetch(REPLAYED)}


async def dead_letters(
    runtime: Runtime, consumer: str | None = None, *, after: str | None = None
) -> AsyncIterator[DeadLetter]:
    """Every dead letter in log order (optionally of one consumer, and only those after
    the dead letter ``after``), streamed."""
    done = await _replayed(runtime)
    parts = await runtime.log.partitions_for(DLQ)
    tps = [TopicPartition(DLQ, p) for p in range(parts)]
    begins = await runtime.log.beginning_offsets(tps)
    ends = await runtime.log.end_offsets(tps)
    resume = _parse_id(after) if after is not None else (-1, -1)
    for tp in tps:
        first = begins[tp] if tp.partition != resume[0] else max(begins[tp], resume[1] + 1)
        if ends[tp] <= first or tp.partition < resume[0]:
            continue
        async with runtime.log.consumer(group_id=None, partitions=[tp]) as reader:
            await reader.seek(tp, first)
            position = first
            while position < ends[tp]:
                records = await reader.fetch(500, 5.0)
                if not records:
                    break
                for record in records:
                    position = record.offset + 1
                    letter = runtime.codec.decode(record.value)
                    if not isinstance(letter, DeadLettered):
                        continue
                    if consumer is not None and letter.consumer != consumer:
                        continue
                    yield _with_event(runtime, tp.partition, record.offset, letter, done)


def _with_event(
    runtime: Runtime, partition: int, offset: int, letter: DeadLettered, done: set[tuple[int, int]]
) -> DeadLetter:
    try:
        event: Event | None = runtime.codec.decode(letter.original_value)
    except SchemaError:
        event = None
    return DeadLetter(f"{partition}:{offset}", letter, event, (partition, offset) in done)


async def get_dead_letter(runtime: Runtime, dead_letter_id: str) -> DeadLetter:
    """One dead letter by id; :class:`NotFoundError` if there is none."""
    partition, offset = _parse_id(dead_letter_id)
    tp = TopicPartition(DLQ, partition)
    if partition >= await runtime.log.partitions_for(DLQ):
        raise NotFoundError(f"no dead letter {dead_letter_id}")
    async with runtime.log.consumer(group_id=None, partitions=[tp]) as reader:
        await reader.seek(tp, offset)
        records = await reader.fetch(1, 5.0)
    if not records or records[0].offset != offset:
        raise NotFoundError(f"no dead letter {dead_letter_id}")
    letter = runtime.codec.decode(records[0].value)
    if not isinstance(letter, DeadLettered):
        raise NotFoundError(f"no dead letter {dead_letter_id}")
    return _with_event(runtime, partition, offset, letter, await _replayed(runtime))


def _projection_for(runtime: Runtime, consumer: str) -> Projection[Any]:
    for projection in runtime.projections:
        if consumer == projection.consumer or consumer.startswith(f"proj_{projection.name}_v"):
            return projection
    raise NotFoundError(f"no projection consumes as {consumer!r}")


class _Meta:
    def __init__(self, letter: DeadLettered) -> None:
        self.topic = letter.source_topic
        self.partition = letter.source_partition
        self.offset = letter.source_offset
        self.timestamp_ms = int(letter.occurred_at.timestamp() * 1000)


class _DryRun(Exception):
    """Raised to roll back a trial application."""


async def _try_apply(runtime: Runtime, projection: Projection[Any], dead: DeadLetter) -> str:
    """Apply the event in a transaction that is always rolled back: "" if it would
    apply, else why not."""
    event = dead.event
    assert event is not None
    handler = projection.handlers[type(event)]
    try:
        async with runtime.pool.acquire() as conn, conn.transaction():
            if projection.dedupe and not await record_new(
                conn, projection.schema, [event.event_id]
            ):
                return "already applied"
            batch = projection.begin(conn, projection.schema)
            await projection.prepare(batch, [event])
            await call_handler(handler, batch, event, _Meta(dead.letter))
            await projection.flush(batch)
            raise _DryRun
    except _DryRun:
        return ""
    except (HubError, asyncpg.PostgresError) as exc:
        return f"{type(exc).__name__}: {exc}"


async def replay_dead_letter(runtime: Runtime, dead: DeadLetter) -> ReplayResult:
    """Put a dead letter back on its source topic, once, if its projection would now
    apply it (see the module docstring)."""
    if dead.event is None:
        return ReplayResult(dead.id, "failed", "the original bytes still do not decode")
    projection = _projection_for(runtime, dead.letter.consumer)
    if type(dead.event) not in projection.handlers:
        return ReplayResult(dead.id, "failed", f"{projection.name} has no handler for it")
    partition, offset = _parse_id(dead.id)
    if await runtime.pool.fetchval(IS_REPLAYED, partition, offset):
        return ReplayResult(dead.id, "already_replayed")
    problem = await _try_apply(runtime, projection, dead)
    if problem == "already applied":  # nothing left to do: no longer pending
        await runtime.pool.fetchval(
            RECORD, partition, offset, dead.letter.consumer, dead.event.event_id
        )
        return ReplayResult(dead.id, "already_applied")
    if problem:
        return ReplayResult(dead.id, "failed", problem)
    claimed = await runtime.pool.fetchval(
        RECORD, partition, offset, dead.letter.consumer, dead.event.event_id
    )
    if claimed is None:  # another operator got here first
        return ReplayResult(dead.id, "already_replayed")
    d = dead.letter
    record = ProducerRecord(
        d.source_topic,
        d.original_key or b"",
        d.original_value,
        tuple((h.key, h.value) for h in d.original_headers),
    )
    try:
        await runtime.producer.send([record])
    except BaseException:
        await runtime.pool.execute(UNRECORD, partition, offset)
        raise
    return ReplayResult(dead.id, "requeued")
