"""Promotion: a new version of a projection takes over once it has caught up.

When a projection's version is bumped in code, ``migrate`` registers the new version as
``rebuilding`` and leaves the stable views on the old one. Its projector fills it from
history (the archive, then the log) like any projector; this module checks, now and
then, whether every partition has reached the log's end, and then, in one transaction
holding the new version's positions, points the views at it, marks it ``live`` and the
old versions ``retired``. Readers see the old version until that moment, never a
half-built one. A retired version's schema, positions and bookkeeping are dropped once
its grace period has passed (``drop_retired_versions``): until then a process still
running the old code keeps working.
"""

from __future__ import annotations

import time
from typing import Any

import asyncpg
import structlog

from consumers.migrations import MIGRATION_LOCK, publish_views
from consumers.positions import PostgresPositionStore, partitions_of
from hub.infra.db import is_retriable
from hub.infra.ports import EventLog
from projections.base import Projection

__all__ = [
    "VersionKeeper",
    "drop_rebuild_leftovers",
    "drop_retired_versions",
    "is_rebuilding",
    "promote_if_caught_up",
]

log = structlog.get_logger(__name__)

STATE = "SELECT state FROM hub.projections WHERE name = $1 AND version = $2"
PROMOTE = """
UPDATE hub.projections SET
    state = CASE WHEN version = $2 THEN 'live' ELSE 'retired' END, updated_at = now()
WHERE name = $1 AND (version = $2 OR state = 'live')
"""
RETIRED = """
SELECT version, schema FROM hub.projections
WHERE name = $1 AND state = 'retired' AND updated_at <= now() - make_interval(secs => $2)
ORDER BY version
"""
FORGET_VERSION = """
DELETE FROM hub.projections WHERE name = $1 AND version = $2 AND state = 'retired'
RETURNING schema
"""
REBUILD_LEFTOVERS = """
SELECT retired FROM hub.rebuilds
WHERE retired IS NOT NULL AND drop_after <= now() AND name = $1
"""
FORGET_LEFTOVER = """
UPDATE hub.rebuilds SET retired = NULL, drop_after = NULL WHERE name = $1 AND retired = $2
"""
FORGET_MIGRATIONS = "DELETE FROM hub.migrations WHERE schema = $1"


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


async def drop_retired_versions(
    conn: asyncpg.Connection, projection: Projection[Any], grace_s: float
) -> list[str]:
    """Drop the schemas of ``projection``'s versions retired over ``grace_s`` ago.

    Each goes in its own transaction with its positions, counters and migration records;
    the stable views point at the live version, so readers never notice. Returns the
    dropped schemas.
    """
    dropped: list[str] = []
    for row in await conn.fetch(RETIRED, projection.name, grace_s):
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            schema = await conn.fetchval(FORGET_VERSION, projection.name, row["version"])
            if schema is None or schema == projection.schema:
                continue  # gone meanwhile (another process dropped it)
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            await PostgresPositionStore.forget(conn, schema)
            await conn.execute(FORGET_MIGRATIONS, schema)
        dropped.append(schema)
        log.info("projection.retired_version_dropped", projection=projection.name, schema=schema)
    return dropped


async def drop_rebuild_leftovers(conn: asyncpg.Connection, name: str) -> list[str]:
    """Drop the schemas a rebuild of ``name`` swapped out, once their grace has passed."""
    dropped: list[str] = []
    if await conn.fetchval("SELECT to_regclass('hub.rebuilds')") is None:
        return dropped  # never rebuilt
    for row in await conn.fetch(REBUILD_LEFTOVERS, name):
        async with conn.transaction():
            await conn.execute(f"DROP SCHEMA IF EXISTS {row['retired']} CASCADE")
            await conn.execute(FORGET_LEFTOVER, name, row["retired"])
        dropped.append(row["retired"])
        log.info("rebuild.dropped_old_schema", projection=name, schema=row["retired"])
    return dropped


class VersionKeeper:
    """A projector's upkeep of its versions, between batches: a version being rebuilt
    takes over the views once caught up; versions it replaced, and tables a rebuild
    swapped out, are dropped once their grace period is over."""

    def __init__(
        self, pool: asyncpg.Pool, event_log: EventLog, projection: Projection[Any], grace: float
    ) -> None:
        self.pool, self.log, self.projection, self.grace = pool, event_log, projection, grace
        self.rebuilding = False
        self._next_promote_check = 0.0
        self._next_retired_check = 0.0

    async def start(self) -> None:
        self.rebuilding = await is_rebuilding(self.pool, self.projection)

    async def tick(self, logger: Any) -> None:
        """Promote or drop what is due; retriable failures are logged and tried later."""
        await self._maybe_promote(logger)
        await self._maybe_drop_retired(logger)

    async def _maybe_promote(self, logger: Any) -> None:
        now = time.monotonic()
        if not self.rebuilding or now < self._next_promote_check:
            return
        self._next_promote_check = now + 1.0
        try:
            if await promote_if_caught_up(self.pool, self.log, self.projection):
                self.rebuilding = False
        except Exception as exc:
            if not is_retriable(exc):
                raise
            logger.warning("projector.promote_failed", error=str(exc))

    async def _maybe_drop_retired(self, logger: Any) -> None:
        now = time.monotonic()
        if self.rebuilding or now < self._next_retired_check or not self.projection.published:
            return
        self._next_retired_check = now + min(max(self.grace, 1.0), 60.0)
        try:
            async with self.pool.acquire() as conn:
                await drop_retired_versions(conn, self.projection, self.grace)
                await drop_rebuild_leftovers(conn, self.projection.name)
        except Exception as exc:
            if not is_retriable(exc):
                raise
            logger.warning("projector.drop_retired_failed", error=str(exc))
