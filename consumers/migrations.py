"""Migrations for projections: versioned schemas, applied once, behind stable views."""

from __future__ import annotations

import hashlib
from typing import Any

import asyncpg

from consumers.applied_events import create_applied_events
from consumers.bookkeeping import MIGRATION_LOCK, ensure_bookkeeping
from projections.base import Projection
from schemas.errors import ProjectionError

__all__ = ["MIGRATION_LOCK", "migrate", "point_view", "publish_views"]

APPLIED = "SELECT idx, checksum FROM hub.migrations WHERE schema = $1"
RECORD = "INSERT INTO hub.migrations (schema, idx, checksum) VALUES ($1, $2, $3)"
REGISTER = """
INSERT INTO hub.projections (name, version, schema, state) VALUES ($1, $2, $3, $4)
ON CONFLICT (name, version) DO NOTHING
"""
LIVE_VERSION = "SELECT version FROM hub.projections WHERE name = $1 AND state = 'live'"


def _checksum(sql: str) -> str:
    return hashlib.sha256(sql.encode()).hexdigest()[:16]


async def migrate(
    conn: asyncpg.Connection, projection: Projection[Any], *, register: bool = True
) -> bool:
    """Bring the projection's versioned schema up to date. Returns whether it is new.

    A migration that changed after it was applied is an error: a changed read model
    needs a new projection version (and a rebuild), not an edit in place.
    """
    schema = projection.schema
    await ensure_bookkeeping(conn)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        applied = {r["idx"]: r["checksum"] for r in await conn.fetch(APPLIED, schema)}
        created = not applied
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        for idx, sql in enumerate(projection.migrations):
            checksum = _checksum(sql)
            if idx in applied:
                if applied[idx] != checksum:
                    raise ProjectionError(
                        f"migration {idx} of projection {projection.name} v{projection.version} "
                        "changed after it was applied; bump the projection's version instead"
                    )
                continue
            await conn.execute(sql.format(schema=schema))
            await conn.execute(RECORD, schema, idx, checksum)
        if projection.dedupe:
            await create_applied_events(conn, schema)
        if not (register and projection.published):  # a rebuild's shadow: hidden
            return created
        live = await conn.fetchval(LIVE_VERSION, projection.name)
        if live is not None and live > projection.version:
            raise ProjectionError(
                f"projection {projection.name} v{projection.version} is older than the live "
                f"v{live}: this process runs old code (upgrade it, or roll the database back)"
            )
        state = "live" if live is None or live == projection.version else "rebuilding"
        await conn.execute(REGISTER, projection.name, projection.version, schema, state)
        if state == "live":
            await publish_views(conn, projection)
    return created


VIEW_TARGET = """
SELECT d.refobjid::regclass::text FROM pg_depend d
JOIN pg_rewrite r ON r.oid = d.objid
WHERE r.ev_class = to_regclass($1) AND d.refobjid <> r.ev_class
LIMIT 1
"""


async def publish_views(conn: asyncpg.Connection, projection: Projection[Any]) -> None:
    """Point the stable views (``<name>.<table>``) at this version's tables.

    Run inside a transaction: readers see the old views or the new ones, never neither.
    """
    await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {projection.name}")
    for table in projection.views:
        target = await conn.fetchval(VIEW_TARGET, f"{projection.name}.{table}")
        if target == f"{projection.schema}.{table}":
            continue
        await point_view(conn, projection.name, table, projection.schema)


async def point_view(conn: asyncpg.Connection, name: str, table: str, schema: str) -> None:
    """Make ``name.table`` show ``schema.table``: replaced in place when the columns match
    (readers never miss it), else dropped and created in the caller's transaction."""
    view, source = f"{name}.{table}", f"{schema}.{table}"
    try:
        async with conn.transaction():  # a savepoint inside the caller's transaction
            await conn.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM {source}")
    except asyncpg.PostgresError:  # the columns changed (a new version of the read model)
        await conn.execute(f"DROP VIEW IF EXISTS {view}")
        await conn.execute(f"CREATE VIEW {view} AS SELECT * FROM {source}")
