"""HTTP routes of runs (``/v1/runs``, ``/v1/artifacts``, ``/v1/metrics/aggregate``)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from fastapi import Depends, FastAPI, Query
from fastapi.responses import RedirectResponse, Response

from hub.runs.models import AggregateRow, ArtifactInfo, RunDetail
from schemas.errors import InputError, NotFoundError

if TYPE_CHECKING:
    from hub.client import HubScope
    from hub.http.auth import Access

__all__ = ["add_run_routes"]


def _old_cursor(value: str | None) -> tuple[datetime, str] | None:
    """The deprecated ``before=started_at|run_id`` form (kept for one release)."""
    if value is None:
        return None
    at, sep, run_id = value.partition("|")
    try:
        if not sep:
            raise ValueError
        return datetime.fromisoformat(at), run_id
    except ValueError:
        raise InputError("before: not a cursor this API returned", field="before") from None


def add_run_routes(app: FastAPI, access: Access) -> None:
    reader = Depends(access.reader)
    expires = access.hub.settings.artifact_url_expires_s

    @app.get("/v1/runs")
    async def list_runs(
        agent_id: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        limit: int = Query(100, ge=1, le=1000),
        cursor: str | None = None,
        before: str | None = Query(None, deprecated=True, description="use cursor"),
        hub: HubScope = reader,
    ) -> dict[str, Any]:
        found = await hub.runs.list(
            agent_id=agent_id,
            status=status,
            since=since,
            limit=limit,
            cursor=cursor,
            before=_old_cursor(before),
        )
        last = found[-1] if found.next_cursor else None
        return {
            "runs": [r.model_dump(mode="json") for r in found],
            "next_cursor": found.next_cursor,
            # deprecated, for one release: the old `before` form
            "next": f"{last.started_at.isoformat()}|{last.run_id}" if last else None,
        }

    @app.get("/v1/runs/{run_id:path}")
    async def get_run(
        run_id: str,
        url_expires_s: int | None = Query(None, ge=1, le=7 * 24 * 3600),
        hub: HubScope = reader,
    ) -> RunDetail:
        detail = await hub.runs.get(run_id, url_expires_s=url_expires_s or expires)
        if detail is None:
            raise NotFoundError(f"no run {run_id!r}")
        return detail

    @app.get("/v1/artifacts/{artifact_id}", response_model=None)
    async def get_artifact(
        artifact_id: UUID,
        redirect: bool = False,
        url_expires_s: int | None = Query(None, ge=1, le=7 * 24 * 3600),
        hub: HubScope = reader,
    ) -> ArtifactInfo | Response:
        artifact = await hub.runs.artifact(artifact_id, url_expires_s=url_expires_s or expires)
        if redirect and artifact.url and artifact.url.startswith(("http://", "https://")):
            return RedirectResponse(artifact.url, status_code=307)
        return artifact

    @app.get("/v1/metrics/aggregate")
    async def aggregate(
        metric: str,
        agent_id: str | None = None,
        group_by: Literal["day", "prompt_version"] | None = None,
        since: datetime | None = None,
        hub: HubScope = reader,
    ) -> dict[str, list[AggregateRow]]:
        rows = await hub.runs.aggregate(metric, agent_id=agent_id, group_by=group_by, since=since)
        return {"groups": rows}
