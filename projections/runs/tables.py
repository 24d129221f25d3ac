"""The ``runs`` projection: runs, their metrics and artifacts, and per-agent run stats.

Views: ``runs.runs`` (one row per run, with provenance, status, duration and token
usage), ``runs.metrics`` (one row per MetricRecorded), ``runs.artifacts`` and
``runs.agent_stats`` (per agent: run count, finished counts by status, last run).

All events of a run share its partition, so a run's RunStarted is always applied before
its metrics and its end. An event for a run never started, or a second RunFinished, is
poison (dead-lettered). Metrics and artifacts go in by COPY; runs and stats are updated
with one set-based statement each per batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import asyncpg

from projections.base import Batch
from schemas.errors import ProjectionError
from schemas.events import (
    Event,
)

__all__ = [
    "ARTIFACT_COLUMNS",
    "KNOWN_RUNS",
    "METRIC_COLUMNS",
    "MIGRATIONS",
    "RUN_COLUMNS",
    "UPDATE_RUNS",
    "UPSERT_STATS",
    "AgentStats",
    "RunChange",
    "RunsBatch",
    "unnest",
]

MIGRATIONS = (
    """
    CREATE TABLE {schema}.runs (
        tenant_id       text NOT NULL,
        run_id          text NOT NULL,
        agent_id        text NOT NULL,
        status          text NOT NULL
                        CHECK (status IN ('running', 'success', 'failed', 'cancelled')),
        input           jsonb,
        model_name      text,
        model_version   text,
        code_version    text,
        prompt_name     text,
        prompt_version  text,
        seed            bigint,
        metadata        jsonb NOT NULL,
        started_at      timestamptz NOT NULL,
        finished_at     timestamptz,
        duration_s      double precision,
        error           text,
        input_tokens    bigint,
        output_tokens   bigint,
        total_tokens    bigint,
        result          jsonb,
        metric_count    integer NOT NULL DEFAULT 0,
        artifact_count  integer NOT NULL DEFAULT 0,
        PRIMARY KEY (tenant_id, run_id)
    );
    CREATE INDEX runs_agent ON {schema}.runs (tenant_id, agent_id, started_at DESC);
    CREATE INDEX runs_started ON {schema}.runs (tenant_id, started_at DESC);
    CREATE TABLE {schema}.metrics (
        tenant_id    text NOT NULL,
        run_id       text NOT NULL,
        agent_id     text NOT NULL,
        name         text NOT NULL,
        value        double precision NOT NULL,
        kind         text NOT NULL,
        unit         text,
        tags         jsonb NOT NULL,
        recorded_at  timestamptz NOT NULL,
        event_id     uuid NOT NULL,
        ordinal      integer NOT NULL
    );
    CREATE INDEX metrics_run ON {schema}.metrics (tenant_id, run_id, name);
    CREATE INDEX metrics_name ON {schema}.metrics (tenant_id, name, agent_id, recorded_at);
    CREATE TABLE {schema}.artifacts (
        tenant_id     text NOT NULL,
        artifact_id   uuid NOT NULL,
        run_id        text NOT NULL,
        agent_id      text NOT NULL,
        name          text NOT NULL,
        key           text NOT NULL,
        uri           text NOT NULL,
        content_type  text NOT NULL,
        size          bigint NOT NULL,
        sha256        text NOT NULL,
        metadata      jsonb NOT NULL,
        stored_at     timestamptz NOT NULL,
        PRIMARY KEY (tenant_id, artifact_id)
    );
    CREATE INDEX artifacts_run ON {schema}.artifacts (tenant_id, run_id, stored_at);
    CREATE TABLE {schema}.agent_stats (
        tenant_id    text NOT NULL,
        agent_id     text NOT NULL,
        runs         bigint NOT NULL,
        succeeded    bigint NOT NULL,
        failed       bigint NOT NULL,
        cancelled    bigint NOT NULL,
        last_run_id  text,
        last_run_at  timestamptz,
        PRIMARY KEY (tenant_id, agent_id)
    );
    """,
)

RUN_COLUMNS = (
    "tenant_id",
    "run_id",
    "agent_id",
    "status",
    "input",
    "model_name",
    "model_version",
    "code_version",
    "prompt_name",
    "prompt_version",
    "seed",
    "metadata",
    "started_at",
    "finished_at",
    "duration_s",
    "error",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "result",
    "metric_count",
    "artifact_count",
)
METRIC_COLUMNS = (
    "tenant_id",
    "run_id",
    "agent_id",
    "name",
    "value",
    "kind",
    "unit",
    "tags",
    "recorded_at",
    "event_id",
    "ordinal",
)
ARTIFACT_COLUMNS = (
    "tenant_id",
    "artifact_id",
    "run_id",
    "agent_id",
    "name",
    "key",
    "uri",
    "content_type",
    "size",
    "sha256",
    "metadata",
    "stored_at",
)

KNOWN_RUNS = """
SELECT tenant_id, run_id, status FROM {schema}.runs
WHERE (tenant_id, run_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
"""
UPDATE_RUNS = """
UPDATE {schema}.runs r SET
    status = COALESCE(u.status, r.status),
    finished_at = COALESCE(u.finished_at, r.finished_at),
    duration_s = COALESCE(u.duration_s, r.duration_s),
    error = COALESCE(u.error, r.error),
    input_tokens = COALESCE(u.input_tokens, r.input_tokens),
    output_tokens = COALESCE(u.output_tokens, r.output_tokens),
    total_tokens = COALESCE(u.total_tokens, r.total_tokens),
    result = COALESCE(u.result, r.result),
    metric_count = r.metric_count + u.metrics,
    artifact_count = r.artifact_count + u.artifacts
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::float8[], $6::text[],
            $7::int8[], $8::int8[], $9::int8[], $10::jsonb[], $11::int[], $12::int[])
  AS u (tenant_id, run_id, status, finished_at, duration_s, error, input_tokens,
        output_tokens, total_tokens, result, metrics, artifacts)
WHERE r.tenant_id = u.tenant_id AND r.run_id = u.run_id
"""
UPSERT_STATS = """
INSERT INTO {schema}.agent_stats AS s
    (tenant_id, agent_id, runs, succeeded, failed, cancelled, last_run_id, last_run_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int8[], $6::int8[],
                     $7::text[], $8::timestamptz[])
ON CONFLICT (tenant_id, agent_id) DO UPDATE SET
    runs = s.runs + EXCLUDED.runs,
    succeeded = s.succeeded + EXCLUDED.succeeded,
    failed = s.failed + EXCLUDED.failed,
    cancelled = s.cancelled + EXCLUDED.cancelled,
    -- the latest run by (start time, run id), whatever order partitions are applied in
    last_run_id = CASE WHEN s.last_run_at IS NULL
        OR (EXCLUDED.last_run_at, EXCLUDED.last_run_id) > (s.last_run_at, s.last_run_id)
        THEN EXCLUDED.last_run_id ELSE s.last_run_id END,
    last_run_at = CASE WHEN s.last_run_at IS NULL
        OR (EXCLUDED.last_run_at, EXCLUDED.last_run_id) > (s.last_run_at, s.last_run_id)
        THEN EXCLUDED.last_run_at ELSE s.last_run_at END
"""


@dataclass
class RunChange:
    """What one batch does to a run that was stored before the batch (fields in the
    order of UPDATE_RUNS' columns)."""

    status: str | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None
    error: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    result: Any = None
    metrics: int = 0
    artifacts: int = 0


@dataclass
class AgentStats:
    """A batch's counts for one agent (fields in the order of UPSERT_STATS' columns)."""

    runs: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    last_run_id: str | None = None
    last_run_at: datetime | None = None


def unnest(changes: Mapping[tuple[str, str], Any]) -> list[list[Any]]:
    """Arrays for an ``unnest``: tenants, ids, then each dataclass field in its order
    (the order of the statement's columns)."""
    keys, values = list(changes), list(changes.values())
    return [
        [tenant for tenant, _ in keys],
        [key for _, key in keys],
        *([getattr(v, f.name) for v in values] for f in fields(values[0])),
    ]


class RunsBatch(Batch):
    def __init__(self, conn: asyncpg.Connection, schema: str) -> None:
        super().__init__(conn, schema)
        self.known: dict[tuple[str, str], str] = {}  # stored before the batch: status
        self.new_runs: dict[tuple[str, str], dict[str, Any]] = {}
        self.changes: dict[tuple[str, str], RunChange] = {}
        self.metrics: list[tuple[Any, ...]] = []
        self.artifacts: list[tuple[Any, ...]] = []
        self.stats: dict[tuple[str, str], AgentStats] = {}

    def status(self, ev: Event, run_id: str) -> str:
        """The run's status as of this event; poison if the run was never started."""
        key = (ev.tenant_id, run_id)
        new = self.new_runs.get(key)
        if new is not None:
            return str(new["status"])
        change = self.changes.get(key)
        if change is not None and change.status is not None:
            return change.status
        stored = self.known.get(key)
        if stored is None:
            raise ProjectionError(f"{type(ev).__name__} for run {run_id!r}, which never started")
        return stored

    def count(self, ev: Event, run_id: str, *, metrics: int = 0, artifacts: int = 0) -> None:
        key = (ev.tenant_id, run_id)
        new = self.new_runs.get(key)
        if new is not None:
            new["metric_count"] += metrics
            new["artifact_count"] += artifacts
            return
        change = self.changes.setdefault(key, RunChange())
        change.metrics += metrics
        change.artifacts += artifacts

    def agent(self, ev: Event, agent_id: str) -> AgentStats:
        return self.stats.setdefault((ev.tenant_id, agent_id), AgentStats())
