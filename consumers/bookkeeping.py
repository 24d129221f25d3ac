"""The hub's own tables (schema ``hub``): all their DDL, created once when a runtime,
projector or archiver starts, under one advisory lock (safe to race).

Each table is written by the one module that owns it:

- ``migrations``, ``projections``: :mod:`consumers.migrations` and :mod:`consumers.promotion`
- ``positions``, ``consumer_stats``: :mod:`consumers.positions` (the ``PositionStore``)
- ``dead_lettered``: :mod:`consumers.dead_letters`
- ``archive_segments``: :mod:`consumers.archive.archiver`
- ``rebuilds``: :mod:`hub.ops.rebuild`
- ``dlq_replays``: :mod:`hub.ops.dead_letters`
- ``key_usage``: :mod:`hub.access.usage`
- ``idempotency``: :mod:`hub.http.idempotency`
- ``ops_jobs``: :mod:`hub.ops.jobs`
"""

from __future__ import annotations

import asyncpg

__all__ = ["BOOKKEEPING", "MIGRATION_LOCK", "ensure_bookkeeping"]

MIGRATION_LOCK = 0x6875625F6D6967  # "hub_mig": serialises DDL of the hub's own tables

BOOKKEEPING = """
CREATE SCHEMA IF NOT EXISTS hub;
CREATE TABLE IF NOT EXISTS hub.migrations (
    schema      text NOT NULL,
    idx         int NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schema, idx)
);
CREATE TABLE IF NOT EXISTS hub.projections (
    name        text NOT NULL,
    version     int NOT NULL,
    schema      text NOT NULL,
    state       text NOT NULL CHECK (state IN ('live', 'rebuilding', 'catching_up', 'retired')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS hub.positions (
    consumer     text NOT NULL,
    topic        text NOT NULL,
    partition    int NOT NULL,
    next_offset  bigint NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, topic, partition)
);
CREATE TABLE IF NOT EXISTS hub.consumer_stats (
    consumer       text PRIMARY KEY,
    applied        bigint NOT NULL DEFAULT 0,
    duplicates     bigint NOT NULL DEFAULT 0,
    dead_lettered  bigint NOT NULL DEFAULT 0,
    batches        bigint NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
-- which records each projection has dead-lettered (consumers/dlq.py): a replay or a
-- rebuild that meets the same poison again skips it without a second dead letter
CREATE TABLE IF NOT EXISTS hub.dead_lettered (
    consumer     text NOT NULL,
    topic        text NOT NULL,
    partition    int NOT NULL,
    "offset"     bigint NOT NULL,
    at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, topic, partition, "offset")
);
CREATE TABLE IF NOT EXISTS hub.archive_segments (
    topic         text NOT NULL,
    partition     int NOT NULL,
    first_offset  bigint NOT NULL,
    last_offset   bigint NOT NULL,
    key           text NOT NULL UNIQUE,
    records       int NOT NULL,
    bytes         bigint NOT NULL,
    first_ts      timestamptz NOT NULL,
    last_ts       timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition, first_offset)
);
CREATE TABLE IF NOT EXISTS hub.rebuilds (
    name        text NOT NULL,
    shadow      text NOT NULL,
    state       text NOT NULL CHECK (state IN ('rebuilding', 'catching_up', 'swapped')),
    done        bigint NOT NULL DEFAULT 0,
    total       bigint NOT NULL DEFAULT 0,
    rate        double precision NOT NULL DEFAULT 0,
    retired     text,
    drop_after  timestamptz,
    started_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name)
);
CREATE TABLE IF NOT EXISTS hub.dlq_replays (
    dlq_partition  int NOT NULL,
    dlq_offset     bigint NOT NULL,
    consumer       text NOT NULL,
    event_id       uuid,
    replayed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dlq_partition, dlq_offset)
);
CREATE TABLE IF NOT EXISTS hub.key_usage (
    key_id        text PRIMARY KEY,
    last_used_at  timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS hub.idempotency (
    tenant_id     text NOT NULL,
    idem_key      text NOT NULL,
    fingerprint   text NOT NULL,
    status        int,
    headers       text,
    body          bytea,
    created_at    timestamptz NOT NULL DEFAULT now(),
    lease_until   timestamptz NOT NULL,
    completed_at  timestamptz,
    PRIMARY KEY (tenant_id, idem_key)
);
CREATE INDEX IF NOT EXISTS idempotency_created ON hub.idempotency (created_at);
CREATE TABLE IF NOT EXISTS hub.ops_jobs (
    job_id        text PRIMARY KEY,
    kind          text NOT NULL,
    projection    text NOT NULL,
    params        jsonb NOT NULL,
    state         text NOT NULL
                  CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'lost')),
    progress      jsonb,
    result        jsonb,
    error         text,
    requested_by  text NOT NULL,
    pid           int,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz
);
-- one operation per projection at a time (a verify drops the schema a rebuild fills)
CREATE UNIQUE INDEX IF NOT EXISTS ops_jobs_one_active ON hub.ops_jobs (projection)
    WHERE state IN ('queued', 'running');
CREATE INDEX IF NOT EXISTS ops_jobs_created ON hub.ops_jobs (created_at);
"""


async def ensure_bookkeeping(conn: asyncpg.Connection) -> None:
    """Create the hub's own tables where missing."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(BOOKKEEPING)
