"""Promotion: a new version of a projection takes over once it has caught up.

When a projection's version is bumped in code, ``migrate`` registers the new version as
``rebuilding`` and leaves the stable views on the old one. Its projector fills it from
history (the archive, then the log) like any projector; this module checks, now and
then, whether every partition has reached the log's end, and then, in one transaction
holding the new version's positions, points the views at it, marks it ``live`` and the
old versions ``retired``. Readers see the old version until that moment, never a
half-built one.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import structlog

from consumers.positions import PostgresPositionStore, partitions_of
from hub.ports import EventLog
from projections.base import Projection
from projections.migrate import publish_views

__all__ = ["is_rebuilding", "promote_if_caught_up"]

log = structlog.get_logger(__name__)

STATE = "SELECT state FROM hub.projections WHERE name = $1 AND version = $2"
PROMOTE = """
UPDATE hub.projections SET
    state = CASE WHEN version = $2 THEN 'live' ELSE 'retired' END, updated_at = now()
WHERE name = $1 AND (version = $2 OR state = 'live')
"""


async def is_rebuilding(pool: asyncpg.Pool, projection: Projection[Any]) -> bool:
    state = await pool.fetchval(STATE, projection.name, projection.version)
    return bool(state == "rebuilding")


async def promote_if_caught_up(
    pool: asyncpg.Pool, event_log: EventLog, projection: Projection[Any]
) -> bool:
    """Make ``projection`` live if it is rebuilding and has caught up; True once live."""
    tps = await partitions_of(event_log, projection.topics)
    ends = await event_log.end_offsets(tps)
    async with pool.acquire() as conn, conn.transaction():
        state = await conn.fetchval(STATE, projection.name, projection.version)
        if state != "rebuilding":
            return bool(state == "live")
        at = await PostgresPositionStore.lock_all(conn, projection.consumer)  # holds batches
        if any(at.get(tp, 0) < ends[tp] for tp in tps if ends[tp] > 0):
            return False
        await publish_views(conn, projection)
        await conn.execute(PROMOTE, projection.name, projection.version)
    log.info("projection.promoted", projection=projection.name, version=projection.version)
    return True
