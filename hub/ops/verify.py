"""Determinism checks: rebuild a projection into a scratch schema and compare checksums.

``verify(runtime, name)`` fills a shadow of the projection from history (archive, then
log) up to the live projection's positions, computes one checksum per table on both
sides (an md5 over the rows' text, sorted, so row order does not matter) and drops the
shadow. Equal checksums mean the read model is a pure function of the log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from consumers.migrations import migrate
from consumers.positions import partitions_of
from hub.ops.replay import Progress, find_projection, run_until_caught_up
from hub.ops.shadow import shadow_of
from hub.runtime import Runtime
from projections.base import Projection

__all__ = ["TableCheck", "table_checksums", "verify"]

TABLES = """
SELECT tablename FROM pg_tables WHERE schemaname = $1 AND tablename <> 'applied_events'
ORDER BY tablename
"""


@dataclass(frozen=True)
class TableCheck:
    table: str
    live: str
    rebuilt: str
    rows: int

    @property
    def same(self) -> bool:
        return self.live == self.rebuilt


async def table_checksums(conn: asyncpg.Connection, schema: str) -> dict[str, tuple[str, int]]:
    """Per table of ``schema``: an order-independent checksum of its rows, and the count."""
    out: dict[str, tuple[str, int]] = {}
    for (table,) in await conn.fetch(TABLES, schema):
        row = await conn.fetchrow(
            f"SELECT coalesce(md5(string_agg(r, E'\\n' ORDER BY r)), ''), count(*) "
            f"FROM (SELECT t::text AS r FROM {schema}.{table} t) s"
        )
        out[table] = (row[0], row[1])
    return out


async def _drop(runtime: Runtime, shadow: Projection[Any]) -> None:
    async with runtime.pool.acquire() as conn:
        await conn.execute(f"DROP SCHEMA IF EXISTS {shadow.schema} CASCADE")
        await runtime.positions.forget(conn, shadow.consumer)
        await conn.execute("DELETE FROM hub.migrations WHERE schema = $1", shadow.schema)


async def verify(
    runtime: Runtime, name: str, *, report: Callable[[Progress], object] | None = None
) -> list[TableCheck]:
    """Rebuild ``name`` from scratch beside the live one and compare every table;
    ``report`` gets the rebuild's progress every few seconds."""
    live = find_projection(runtime, name)
    shadow = shadow_of(live)
    await _drop(runtime, shadow)  # a fresh scratch schema every time
    try:
        async with runtime.pool.acquire() as conn:
            await migrate(conn, shadow, register=False)
        stored = await runtime.positions.all(live.consumer)
        tps = await partitions_of(runtime.log, live.topics)
        targets = {tp: stored.get(tp, 0) for tp in tps}
        await run_until_caught_up(
            runtime, runtime.projector(shadow), tps, targets=targets, report=report
        )
        async with runtime.pool.acquire() as conn:
            ours = await table_checksums(conn, live.schema)
            theirs = await table_checksums(conn, shadow.schema)
    finally:
        await _drop(runtime, shadow)
    return [TableCheck(t, ours[t][0], theirs.get(t, ("", 0))[0], ours[t][1]) for t in sorted(ours)]
