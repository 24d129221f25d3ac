"""HTTP routes writing runs: start one, record metrics in batches, stream an artifact to
the archive store (never held whole in memory), finish, or record a finished run.

Retries are safe: give ``run_id`` when starting, or send an ``Idempotency-Key`` header."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from hub.runs.models import ArtifactInfo, RunInfo
from schemas.errors import ConflictError, InputError, NotFoundError

if TYPE_CHECKING:
    from hub.client import HubScope
    from hub.http.auth import Access

__all__ = ["ARTIFACT_UPLOAD", "add_run_write_routes"]

MAX_METRICS = 10_000
ARTIFACT_UPLOAD = "/v1/runs/{run_id:path}/artifacts"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartRun(_Body):
    agent_id: str
    run_id: str | None = Field(None, description="Give one to make retries safe")
    input: Any = None
    provenance: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


class MetricIn(_Body):
    name: str
    value: float
    kind: str = "gauge"
    unit: str | None = None
    tags: dict[str, str] | None = None
    at: datetime | None = Field(None, description="When it was measured (default: now)")


class RecordMetrics(_Body):
    metrics: list[MetricIn] = Field(min_length=1, max_length=MAX_METRICS)


class Recorded(BaseModel):
    recorded: int


class FinishRun(_Body):
    status: str = "success"
    error: str | None = None
    result: Any = None
    usage: dict[str, int] | None = None


class RecordRun(_Body):
    agent_id: str
    success: bool = True
    status: str | None = None
    error: str | None = None
    duration_s: float = 0.0
    metadata: dict[str, Any] | None = None


class RunRecorded(BaseModel):
    recorded: bool = Field(description="false: the run had already finished")


async def _run_info(hub: HubScope, run_id: str) -> RunInfo:
    detail = await hub.runs.get(run_id)
    if detail is None:  # produced but refused by the projection
        raise NotFoundError(f"no run {run_id!r}")
    return detail.run


def _metadata(value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise InputError("metadata: must be a JSON object", field="metadata")
    return parsed


def add_run_write_routes(app: FastAPI, access: Access) -> None:
    writer = Depends(access.writer)

    @app.post("/v1/runs", status_code=201)
    async def start_run(body: StartRun, response: Response, hub: HubScope = writer) -> RunInfo:
        run = hub.runs.start(**body.model_dump())
        await run.begin()
        response.headers["Location"] = f"/v1/runs/{quote(run.run_id, safe='')}"
        return await _run_info(hub, run.run_id)

    @app.post("/v1/runs/{run_id:path}/metrics", status_code=201)
    async def record_metrics(run_id: str, body: RecordMetrics, hub: HubScope = writer) -> Recorded:
        run = await hub.runs.attach(run_id)
        for i, m in enumerate(body.metrics):
            try:
                await run.metric(m.name, m.value, kind=m.kind, unit=m.unit, tags=m.tags, at=m.at)
            except InputError as exc:  # all or none: nothing was sent
                field = f"metrics.{i}.{exc.field}" if exc.field else f"metrics.{i}"
                raise InputError(f"metrics.{i}: {exc.message}", field=field) from None
        await run.flush()
        return Recorded(recorded=len(body.metrics))

    @app.post(
        ARTIFACT_UPLOAD,
        status_code=201,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
                },
            }
        },
    )
    async def upload_artifact(
        run_id: str,
        request: Request,
        name: str = Query(..., min_length=1, description="A file name such as report.json"),
        metadata: str | None = Query(None, description="A JSON object"),
        hub: HubScope = writer,
    ) -> ArtifactInfo:
        """The request body is the artifact, streamed to the archive store as it comes."""
        meta = _metadata(metadata)
        run = await hub.runs.attach(run_id)
        kind = request.headers.get("content-type") or None

        async def body() -> AsyncIterator[bytes]:
            async for chunk in request.stream():
                if chunk:
                    yield chunk

        return await run.store_artifact(name, body(), content_type=kind, meta=meta)

    @app.post("/v1/runs/{run_id:path}/finish")
    async def finish_run(
        run_id: str, body: FinishRun | None = None, hub: HubScope = writer
    ) -> RunInfo:
        body = body or FinishRun()
        run = await hub.runs.attach(run_id)
        if run.status is None:
            await run.finish(body.status, error=body.error, result=body.result, usage=body.usage)
        elif run.status != body.status:  # a retry of the same finish is answered again
            raise ConflictError(f"run {run_id!r} already finished ({run.status})")
        return await _run_info(hub, run_id)

    @app.post("/v1/runs/{run_id:path}/record")
    async def record_run(run_id: str, body: RecordRun, hub: HubScope = writer) -> RunRecorded:
        """Record that a run ended (the whole run if it was not seen before)."""
        recorded = await hub.registry.record_run(
            body.agent_id,
            run_id,
            success=body.success,
            status=body.status,
            error=body.error,
            duration_s=body.duration_s,
            metadata=body.metadata,
        )
        return RunRecorded(recorded=recorded)
