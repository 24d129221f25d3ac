"""Runs, metrics and artifacts: ``hub.runs``."""

from hub.runs.client import RunsClient
from hub.runs.models import AggregateRow, ArtifactInfo, MetricPoint, RunDetail, RunInfo
from hub.runs.run import Run
from hub.runs.tracker import RequestTracker, track_request

__all__ = [
    "AggregateRow",
    "ArtifactInfo",
    "MetricPoint",
    "RequestTracker",
    "Run",
    "RunDetail",
    "RunInfo",
    "RunsClient",
    "track_request",
]
