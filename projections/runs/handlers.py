"""The runs projection's handlers and their table: each folds one event into the batch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

import asyncpg

from projections.base import EventMeta, Handler, Projection
from projections.runs.tables import (
    ARTIFACT_COLUMNS,
    KNOWN_RUNS,
    METRIC_COLUMNS,
    MIGRATIONS,
    RUN_COLUMNS,
    UPDATE_RUNS,
    UPSERT_STATS,
    RunChange,
    RunsBatch,
    unnest,
)
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

__all__ = ["RunsProjection", "on_artifact", "on_finished", "on_metric", "on_metrics", "on_started"]


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
        change = batch.changes.setdefault(key, RunChange())
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
                columns=RUN_COLUMNS,
                records=[tuple(r[c] for c in RUN_COLUMNS) for r in batch.new_runs.values()],
            )
        if batch.changes:
            await conn.execute(UPDATE_RUNS.format(schema=schema), *unnest(batch.changes))
        if batch.metrics:
            await conn.copy_records_to_table(
                "metrics", schema_name=schema, columns=METRIC_COLUMNS, records=batch.metrics
            )
        if batch.artifacts:
            await conn.copy_records_to_table(
                "artifacts", schema_name=schema, columns=ARTIFACT_COLUMNS, records=batch.artifacts
            )
        if batch.stats:
            await conn.execute(UPSERT_STATS.format(schema=schema), *unnest(batch.stats))
