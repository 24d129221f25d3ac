"""What ``hub.runs`` returns: runs, metrics, artifacts and aggregates."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict

__all__ = ["AggregateRow", "ArtifactInfo", "MetricPoint", "RunDetail", "RunInfo"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class RunInfo(_Frozen):
    """A run as ``runs.list`` shows it."""

    run_id: str
    agent_id: str
    status: str
    input: Any = None
    model_name: str | None = None
    model_version: str | None = None
    code_version: str | None = None
    prompt_name: str | None = None
    prompt_version: str | None = None
    seed: int | None = None
    metadata: dict[str, Any]
    started_at: datetime
    finished_at: datetime | None = None
    duration_s: float | None = None
    error: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    result: Any = None
    metric_count: int
    artifact_count: int


class MetricPoint(_Frozen):
    name: str
    value: float
    kind: str
    unit: str | None = None
    tags: dict[str, str]
    recorded_at: datetime


class ArtifactInfo(_Frozen):
    """An artifact; ``url`` downloads it (presigned on S3) when asked for."""

    artifact_id: UUID
    run_id: str
    agent_id: str
    name: str
    key: str
    uri: str
    content_type: str
    size: int
    sha256: str
    metadata: dict[str, Any]
    stored_at: datetime
    url: str | None = None


class RunDetail(_Frozen):
    """A run with its metrics and artifacts (``runs.get``)."""

    run: RunInfo
    metrics: list[MetricPoint]
    artifacts: list[ArtifactInfo]

    def metric(self, name: str) -> float | None:
        """The last value recorded for ``name`` (None if never recorded)."""
        values = [m.value for m in self.metrics if m.name == name]
        return values[-1] if values else None


class AggregateRow(_Frozen):
    """Statistics of one metric over a group of runs (a day or a prompt version)."""

    group: str | None
    count: int
    mean: float
    p50: float
    p95: float
    min: float
    max: float
