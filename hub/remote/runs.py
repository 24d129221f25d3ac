"""``hub.runs`` in remote mode: runs begun, measured and finished with the direct
client's checks and events, artifacts streamed to the hub's upload route, reads over
HTTP."""

from __future__ import annotations

import builtins
import json
import time
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Self
from uuid import UUID

import anyio

from hub.core.cursor import CursorList
from hub.remote.api import quote_segment as _q
from hub.remote.context import RemoteContext
from hub.runs.client import RunsClient
from hub.runs.models import AggregateRow, ArtifactInfo, RunDetail, RunInfo
from hub.runs.run import CHUNK_SIZE, Run
from schemas.errors import ConflictError, InputError, NotFoundError

__all__ = ["RemoteRun", "RemoteRuns"]


def _context(run: Run) -> RemoteContext:
    ctx = run._ctx
    assert isinstance(ctx, RemoteContext)
    return ctx


class RemoteRun(Run):
    """A run whose artifacts go through the hub's upload route."""

    async def begin(self) -> Self:
        if self._started is None:
            ctx = _context(self)
            await ctx.outbox.flush()
            if await ctx.api.get_or_none(f"/v1/runs/{_q(self.run_id)}") is not None:
                raise ConflictError(f"run {self.run_id!r} already exists: run ids must be unique")
            await ctx.emit(self._start_event)
            self._started = time.monotonic()
        return self

    async def _put_artifact(
        self, source: AsyncIterable[bytes] | Path, fields: dict[str, Any]
    ) -> ArtifactInfo:
        ctx = _context(self)
        await self.flush()  # the metrics recorded before it go first
        await ctx.outbox.flush()
        metadata = fields["metadata"]
        params = {"name": fields["name"], "metadata": json.dumps(metadata) if metadata else None}
        body = _file_chunks(source) if isinstance(source, Path) else source
        stored = await ctx.api.upload(
            f"/v1/runs/{_q(self.run_id)}/artifacts",
            body,
            params=params,
            content_type=fields["content_type"],
        )
        return ArtifactInfo.model_validate(stored)


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as f:
        while chunk := await f.read(CHUNK_SIZE):
            yield chunk


class RemoteRuns(RunsClient):
    """Runs over HTTP."""

    run_class = RemoteRun

    def __init__(self, ctx: RemoteContext) -> None:
        super().__init__(ctx)
        self._api = ctx.api
        self._outbox = ctx.outbox

    async def _read(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        await self._outbox.flush()
        return await self._api.get(path, params)

    async def attach(self, run_id: str) -> Run:
        detail = await self.get(run_id)
        if detail is None:
            raise NotFoundError(f"no run {run_id!r}")
        run = detail.run
        return self.run_class.attached(
            self._ctx, run.agent_id, run_id, started_at=run.started_at, status=run.status
        )

    async def get(self, run_id: str, *, url_expires_s: int = 3600) -> RunDetail | None:
        if not isinstance(run_id, str) or not run_id:
            raise InputError("run_id: must be a non-empty string", field="run_id")
        await self._outbox.flush()
        found = await self._api.get_or_none(
            f"/v1/runs/{_q(run_id)}", {"url_expires_s": url_expires_s}
        )
        return None if found is None else RunDetail.model_validate(found)

    async def artifact(self, artifact_id: UUID | str, *, url_expires_s: int = 3600) -> ArtifactInfo:
        try:
            aid = UUID(str(artifact_id))
        except ValueError:
            raise InputError(
                f"artifact_id: {artifact_id!r} is not a UUID", field="artifact_id"
            ) from None
        found = await self._read(f"/v1/artifacts/{aid}", {"url_expires_s": url_expires_s})
        return ArtifactInfo.model_validate(found)

    async def list(
        self,
        *,
        agent_id: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
        before: tuple[datetime, str] | None = None,
    ) -> CursorList[RunInfo]:
        params: dict[str, Any] = {
            "agent_id": agent_id,
            "status": status,
            "since": since.isoformat() if since else None,
            "limit": limit,
            "cursor": cursor,
            "before": f"{before[0].isoformat()}|{before[1]}" if before else None,
        }
        found = await self._read("/v1/runs", params)
        return CursorList([RunInfo.model_validate(r) for r in found["runs"]], found["next_cursor"])

    async def aggregate(
        self,
        metric: str,
        *,
        agent_id: str | None = None,
        group_by: Literal["day", "prompt_version"] | None = None,
        since: datetime | None = None,
    ) -> builtins.list[AggregateRow]:
        if not isinstance(metric, str) or not metric:
            raise InputError("metric: must be a metric name", field="metric")
        params = {
            "metric": metric,
            "agent_id": agent_id,
            "group_by": group_by,
            "since": since.isoformat() if since else None,
        }
        found = await self._read("/v1/metrics/aggregate", params)
        return [AggregateRow.model_validate(g) for g in found["groups"]]
