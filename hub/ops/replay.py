"""Operating on history: replay a projection from a point, with progress.

``replay(runtime, name, start)`` moves the projection's stored positions back to
``start`` (``"earliest"``, an offset, or a time) and runs its projector until it has caught
up with the log's head: events come from the archive while they are archived, then from
the log. Events the projection already holds are skipped by their event id, so a replay
after restoring a database backup re-applies exactly what the backup lacks. With
``reset=True`` the projection's tables are emptied first, in the same transaction as the
rewind, and everything is applied again (readers see the view refill: use ``rebuild``
for zero downtime).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio
import asyncpg

from consumers.positions import partitions_of
from consumers.projector import Projector
from hub.core.inputs import parse_time
from hub.infra.ports import TopicPartition
from hub.runtime import Runtime
from projections.base import Projection
from schemas.errors import InputError, NotFoundError, first_error

__all__ = [
    "Progress",
    "find_projection",
    "offsets_for_time",
    "parse_start",
    "replay",
    "run_until_caught_up",
]

SEGMENT_AT = """
SELECT first_offset, last_offset, key FROM hub.archive_segments
WHERE topic = $1 AND partition = $2 AND last_ts >= $3
ORDER BY first_offset LIMIT 1
"""


@dataclass
class Progress:
    """How far a replay or rebuild has got."""

    done: int
    total: int
    rate: float  # events per second
    eta_s: float | None

    def line(self, what: str) -> str:
        eta = f"{self.eta_s:,.0f}s" if self.eta_s is not None else "-"
        return f"{what}: {self.done:,}/{self.total:,} events, {self.rate:,.0f} ev/s, ETA {eta}"


def parse_start(value: str | int) -> str | int | datetime:
    """Where a replay starts: ``earliest``, an offset, or an ISO time with a timezone."""
    if isinstance(value, int) or value.isdigit():
        return int(value)
    if value == "earliest":
        return value
    return parse_time(value, "start", shown="--from")


def find_projection(runtime: Runtime, name: str) -> Projection[Any]:
    for projection in runtime.projections:
        if projection.name == name:
            return projection
    names = ", ".join(sorted(p.name for p in runtime.projections))
    raise NotFoundError(f"no projection {name!r} (there are: {names})")


async def offsets_for_time(
    runtime: Runtime, tps: list[TopicPartition], at: datetime
) -> dict[TopicPartition, int]:
    """The first offset at or after ``at`` in each partition (archive, then log)."""
    if at.tzinfo is None:
        raise InputError("the time must have a timezone, such as 2025-01-01T00:00+00:00")
    reader = runtime.archive_reader()
    out: dict[TopicPartition, int] = {}
    try:
        archived = await reader.ends(tps)
        for tp in tps:
            row = await runtime.pool.fetchrow(SEGMENT_AT, tp.topic, tp.partition, at)
            if row is not None:
                seg = (await reader.segments(tp, row["first_offset"]))[0]
                records = await reader.read(tp, seg, row["first_offset"])
                cut = at.timestamp() * 1000
                out[tp] = next(r.offset for r in records if r.timestamp_ms >= cut)
            else:
                out[tp] = await _log_offset_for_time(runtime, tp, archived[tp], at)
    finally:
        await reader.close()
    return out


async def _log_offset_for_time(
    runtime: Runtime, tp: TopicPartition, start: int, at: datetime
) -> int:
    begin = (await runtime.log.beginning_offsets([tp]))[tp]
    end = (await runtime.log.end_offsets([tp]))[tp]
    cut = at.timestamp() * 1000
    async with runtime.log.consumer(group_id=None, partitions=[tp]) as consumer:
        await consumer.seek(tp, max(start, begin))
        position = max(start, begin)
        while position < end:
            records = await consumer.fetch(2000, 5.0)
            if not records:
                break
            for r in records:
                if r.timestamp_ms >= cut:
                    return r.offset
            position = records[-1].offset + 1
    return end


async def _rewind(
    runtime: Runtime,
    projection: Projection[Any],
    starts: dict[TopicPartition, int],
    *,
    reset: bool,
) -> None:
    async with runtime.pool.acquire() as conn, conn.transaction():
        # the live projector's batches lock these rows too: no batch straddles the rewind
        stored = await runtime.positions.lock_all(conn, projection.consumer)
        if reset:
            await _truncate(conn, projection)
        else:
            # A replay only goes back: a partition already before the requested offset
            # (or shorter than it) stays where it is, so nothing in between is skipped.
            starts = {tp: min(at, stored.get(tp, 0)) for tp, at in starts.items()}
        await runtime.positions.rewind(conn, projection.consumer, starts)


async def _truncate(conn: asyncpg.Connection, projection: Projection[Any]) -> None:
    tables = await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = $1", projection.schema
    )
    if tables:
        names = ", ".join(f"{projection.schema}.{r[0]}" for r in tables)
        await conn.execute(f"TRUNCATE {names}")


async def run_until_caught_up(
    runtime: Runtime,
    projector: Projector,
    tps: list[TopicPartition],
    *,
    report: Callable[[Progress], object] | None = None,
    every: float = 2.0,
    targets: dict[TopicPartition, int] | None = None,
) -> Progress:
    """Run ``projector`` until its positions reach ``targets`` (default: the log's end
    offsets as they were when it started), reporting progress every ``every`` seconds."""
    if targets is None:
        targets = await runtime.log.end_offsets(tps)
    consumer = projector.projection.consumer
    store = runtime.positions

    async def positions() -> dict[TopicPartition, int]:
        return await store.all(consumer)

    first = await positions()
    total = sum(max(0, targets[tp] - first.get(tp, 0)) for tp in tps)
    try:
        return await _follow(runtime, projector, tps, targets, total, positions, report, every)
    except BaseExceptionGroup as group:  # the projector's own error, not the task group's
        raise first_error(group) from None


async def _follow(
    runtime: Runtime,
    projector: Projector,
    tps: list[TopicPartition],
    targets: dict[TopicPartition, int],
    total: int,
    positions: Callable[[], Awaitable[dict[TopicPartition, int]]],
    report: Callable[[Progress], object] | None,
    every: float,
) -> Progress:
    started = time.monotonic()
    progress = Progress(0, total, 0.0, None)
    async with anyio.create_task_group() as tg:
        await tg.start(projector.run)
        while True:
            now = await positions()
            left = sum(max(0, targets[tp] - now.get(tp, 0)) for tp in tps)
            done = total - left
            elapsed = max(time.monotonic() - started, 1e-9)
            rate = done / elapsed
            progress = Progress(done, total, rate, left / rate if rate > 0 else None)
            if report is not None:
                shown = report(progress)
                if inspect.isawaitable(shown):
                    await shown
            if left == 0:
                break
            with anyio.move_on_after(every):
                await (await runtime.position_watcher()).changed().wait()
        projector.stop_soon()
    return progress


async def replay(
    runtime: Runtime,
    name: str,
    start: str | int | datetime,
    *,
    reset: bool = False,
    report: Callable[[Progress], object] | None = None,
) -> Progress:
    """Replay projection ``name`` from ``start``; see the module docstring."""
    projection = find_projection(runtime, name)
    tps = await partitions_of(runtime.log, projection.topics)
    if start == "earliest":
        starts = dict.fromkeys(tps, 0)
    elif isinstance(start, int):
        if start < 0:
            raise InputError(f"--from: an offset must be 0 or more, not {start}")
        starts = dict.fromkeys(tps, start)
    elif isinstance(start, datetime):
        starts = await offsets_for_time(runtime, tps, start)
    else:
        raise InputError(f"--from: use earliest, an offset or an ISO time, not {start!r}")
    ends = await runtime.log.end_offsets(tps)
    if isinstance(start, int) and all(start > ends[tp] for tp in tps):
        longest = max(ends.values(), default=0)
        raise InputError(
            f"--from {start}: past the end of every partition of {name} (the longest ends at "
            f"{longest}); a replay goes back in history, use an offset up to {longest}"
        )
    # never past the end: a position beyond it would skip what is written there next
    starts = {tp: min(at, ends[tp]) for tp, at in starts.items()}
    await _rewind(runtime, projection, starts, reset=reset)
    return await run_until_caught_up(runtime, runtime.projector(projection), tps, report=report)
