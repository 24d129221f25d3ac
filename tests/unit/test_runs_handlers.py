"""The runs projection's handlers, without Postgres: each folds one event into the batch
(new runs, status changes, metric rows, per-agent stats); events out of order are poison."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from projections.runs.handlers import RunsProjection, on_finished, on_metric, on_started
from projections.runs.tables import RunsBatch
from schemas.errors import ProjectionError
from schemas.events import (
    ArtifactStored,
    MetricKind,
    MetricRecorded,
    MetricsRecorded,
    Provenance,
    RunFinished,
    RunStarted,
    RunStatus,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Meta:
    topic: str = "agenthub.runs"
    partition: int = 0
    offset: int = 0
    timestamp_ms: int = 0


def _env(run_id: str, minutes: int = 0) -> dict[str, Any]:
    return {
        "tenant_id": "t",
        "actor": "agent",
        "agent_id": "agent",
        "run_id": run_id,
        "occurred_at": T0 + timedelta(minutes=minutes),
    }


def _batch() -> RunsBatch:
    return RunsBatch(conn=None, schema="runs_test")


def test_the_handler_table_routes_every_run_event() -> None:
    assert set(RunsProjection.handlers) == {
        RunStarted,
        MetricRecorded,
        MetricsRecorded,
        ArtifactStored,
        RunFinished,
    }


def test_a_run_started_measured_and_finished_in_one_batch() -> None:
    batch = _batch()
    on_started(batch, RunStarted(**_env("r1"), provenance=Provenance(), input={"n": 1}), Meta())
    on_metric(
        batch,
        MetricRecorded(**_env("r1", 1), name="latency", value=2.5, kind=MetricKind.GAUGE),
        Meta(),
    )
    on_finished(
        batch, RunFinished(**_env("r1", 2), status=RunStatus.SUCCESS, duration_s=3.0), Meta()
    )
    run = batch.new_runs[("t", "r1")]
    assert (run["status"], run["duration_s"], run["metric_count"], run["input"]) == (
        "success",
        3.0,
        1,
        {"n": 1},
    )
    assert [(m[3], m[4], m[5]) for m in batch.metrics] == [("latency", 2.5, "gauge")]
    stats = batch.stats[("t", "agent")]
    assert (stats.runs, stats.succeeded, stats.last_run_id) == (1, 1, "r1")


def test_a_run_stored_before_the_batch_is_finished_as_a_change() -> None:
    batch = _batch()
    batch.known[("t", "r0")] = "running"
    on_finished(
        batch, RunFinished(**_env("r0"), status=RunStatus.FAILED, duration_s=1.0, error="x"), Meta()
    )
    change = batch.changes[("t", "r0")]
    assert (change.status, change.error) == ("failed", "x")
    assert batch.stats[("t", "agent")].failed == 1


def test_events_out_of_order_are_poison() -> None:
    batch = _batch()
    with pytest.raises(ProjectionError, match="never started"):
        on_metric(
            batch, MetricRecorded(**_env("ghost"), name="m", value=1, kind=MetricKind.GAUGE), Meta()
        )
    on_started(batch, RunStarted(**_env("r1"), provenance=Provenance()), Meta())
    with pytest.raises(ProjectionError, match="already started"):
        on_started(batch, RunStarted(**_env("r1"), provenance=Provenance()), Meta())
    on_finished(batch, RunFinished(**_env("r1"), status=RunStatus.CANCELLED, duration_s=0), Meta())
    with pytest.raises(ProjectionError, match="already finished"):
        on_finished(
            batch, RunFinished(**_env("r1"), status=RunStatus.SUCCESS, duration_s=0), Meta()
        )
