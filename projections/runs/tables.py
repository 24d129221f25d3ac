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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, ClassVar

import asyncpg

from projections.base import Batch, EventMeta, Handler, Projection
from schemas.errors import ProjectionError
from schemas.events import (
    ArtifactStored,
    Event,
    MetricRecorded,
    MetricsRecorded,
    RunFinished,
    RunStarted,
    Topic,
)

__all__ = ["RunsProjection"]

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

_RUN_COLUMNS = (
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
_METRIC_COLUMNS = (
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
_ARTIFACT_COLUMNS = (
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
class _RunChange:
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
class _Stats:
    """A batch's counts for one agent (fields in the order of UPSERT_STATS' columns)."""

    runs: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    last_run_id: str | None = None
    last_run_at: datetime | None = None


def _unnest(changes: Mapping[tuple[str, str], Any]) -> list[list[Any]]:
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
        self.changes: dict[tuple[str, str], _RunChange] = {}
        self.metrics: list[tuple[Any, ...]] = []
        self.artifacts: list[tuple[Any, ...]] = []
        self.stats: dict[tuple[str, str], _Stats] = {}

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
        change = self.changes.setdefault(key, _RunChange())
        change.metrics += metrics
        change.artifacts += artifacts

    def agent(self, ev: Event, agent_id: str) -> _Stats:
        return self.stats.setdefault((ev.tenant_id, agent_id), _Stats())


def on_started(batch: RunsBatch, ev: RunStarted, meta: EventMeta) -> None:
    key = (ev.tenant_id, ev.run_id)
    if key in batch.known or key in batch.new_runs:
        raise ProjectionError(f"RunStarted for run {ev.run_id!r}, which already started")
    p = ev.provenance
    batch.new_runs[key] = {
        "tenant_id": ev.tenant_id,
        "run_id": ev.run_id,
        "agent_id": ev.agent_id,
        "status": "running",
        "input": ev.input,
        "model_name": p.model_name,
        "model_version": p.model_version,
        "code_version": p.code_version,
        "prompt_name": p.prompt_name,
        "prompt_version": p.prompt_version,
        "seed": p.seed,
        "metadata": ev.metadata,
        "started_at": ev.occurred_at,
        "finished_at": None,
        "duration_s": None,
        "error": None,
        "input_tokens": None,
        "output_tokens": None,
        "total_tokens": None,
        "result": None,
        "metric_count": 0,
        "artifact_count": 0,
    }
    stats = batch.agent(ev, ev.agent_id)
    stats.runs += 1
    if stats.last_run_at is None or (ev.occurred_at, ev.run_id) > (
        stats.last_run_at,
        stats.last_run_id or "",
    ):
        stats.last_run_id = ev.run_id
        stats.last_run_at = ev.occurred_at


def on_metric(batch: RunsBatch, ev: MetricRecorded, meta: EventMeta) -> None:
    batch.status(ev, ev.run_id)
    batch.metrics.append(
        (
            ev.tenant_id,
            ev.run_id,
            ev.agent_id,
            ev.name,
            ev.value,
            str(ev.kind),
            ev.unit,
            dict(ev.tags),
            ev.occurred_at,
            ev.event_id,
            0,
        )
    )
    batch.count(ev, ev.run_id, metrics=1)


def on_metrics(batch: RunsBatch, ev: MetricsRecorded, meta: EventMeta) -> None:
    batch.status(ev, ev.run_id)
    head = (ev.tenant_id, ev.run_id, ev.agent_id)
    batch.metrics.extend(
        (*head, name, value, str(kind), unit, dict(tags), at, ev.event_id, i)
        for i, (name, value, kind, unit, tags, at) in enumerate(
            zip(ev.names, ev.values, ev.kinds, ev.units, ev.tags, ev.recorded_at, strict=True)
        )
    )
    batch.count(ev, ev.run_id, metrics=len(ev.names))


def on_artifact(batch: RunsBatch, ev: ArtifactStored, meta: EventMeta) -> None:
    batch.status(ev, ev.run_id)
    batch.artifacts.append(
        (
            ev.tenant_id,
            ev.artifact_id,
            ev.run_id,
            ev.agent_id,
            ev.name,
            ev.key,
            ev.uri,
            ev.content_type,
            ev.size,
            ev.sha256,
            ev.metadata,
            ev.occurred_at,
        )
    )
    batch.count(ev, ev.run_id, artifacts=1)


def on_finished(batch: RunsBatch, ev: RunFinished, meta: EventMeta) -> None:
    if batch.status(ev, ev.run_id) != "running":
        raise ProjectionError(f"RunFinished for run {ev.run_id!r}, which already finished")
    usage = ev.usage
    end = {
        "status": str(ev.status),
        "finished_at": ev.occurred_at,
        "duration_s": ev.duration_s,
        "error": ev.error,
        "input_tokens": usage.input_tokens if usage else None,
        "output_tokens": usage.output_tokens if usage else None,
        "total_tokens": usage.total_tokens if usage else None,
        "result": ev.result,
    }
    key = (ev.tenant_id, ev.run_id)
    new = batch.new_runs.get(key)
    if new is not None:
        new.update(end)
    else:
        change = batch.changes.setdefault(key, _RunChange())
        for name, value in end.items():
            setattr(change, name, value)
    stats = batch.agent(ev, ev.agent_id)
    if ev.status == "success":
        stats.succeeded += 1
    elif ev.status == "failed":
        stats.failed += 1
    else:
        stats.cancelled += 1


class RunsProjection(Projection[RunsBatch]):
    """Runs with provenance and outcome, their metrics and artifacts, and agent run stats."""

    name = "runs"
    version = 1
    topics = (Topic.RUNS,)
    migrations = MIGRATIONS
    views = ("runs", "metrics", "artifacts", "agent_stats")
    handlers: ClassVar[Mapping[type[Event], Handler]] = {
        RunStarted: on_started,
        MetricRecorded: on_metric,
        MetricsRecorded: on_metrics,
        ArtifactStored: on_artifact,
        RunFinished: on_finished,
    }

    def begin(self, conn: asyncpg.Connection, schema: str) -> RunsBatch:
        return RunsBatch(conn, schema)

    async def prepare(self, batch: RunsBatch, events: Sequence[Event]) -> None:
        wanted = {
            (e.tenant_id, str(getattr(e, "run_id", ""))) for e in events if e.topic == Topic.RUNS
        }
        if not wanted:
            return
        rows = await batch.conn.fetch(
            KNOWN_RUNS.format(schema=batch.schema),
            [t for t, _ in wanted],
            [r for _, r in wanted],
        )
        batch.known.update({(r[0], r[1]): r[2] for r in rows})

    async def flush(self, batch: RunsBatch) -> None:
        conn, schema = batch.conn, batch.schema
        if batch.new_runs:
            await conn.copy_records_to_table(
                "runs",
                schema_name=schema,
                columns=_RUN_COLUMNS,
                records=[tuple(r[c] for c in _RUN_COLUMNS) for r in batch.new_runs.values()],
            )
        if batch.changes:
            await conn.execute(UPDATE_RUNS.format(schema=schema), *_unnest(batch.changes))
        if batch.metrics:
            await conn.copy_records_to_table(
                "metrics", schema_name=schema, columns=_METRIC_COLUMNS, records=batch.metrics
            )
        if batch.artifacts:
            await conn.copy_records_to_table(
                "artifacts", schema_name=schema, columns=_ARTIFACT_COLUMNS, records=batch.artifacts
            )
        if batch.stats:
            await conn.execute(UPSERT_STATS.format(schema=schema), *_unnest(batch.stats))
