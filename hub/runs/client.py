"""``hub.runs``: runs of agents, their metrics and artifacts.

``async with hub.runs.start("my-agent", input=...) as run: await run.metric(...)``.
Reads come from the ``runs`` projection after waiting for this client's own writes.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from hub.core.cursor import CursorList, cursor_time, decode_cursor, encode_cursor
from hub.core.inputs import build_event, check_id
from hub.runs.models import AggregateRow, ArtifactInfo, MetricPoint, RunDetail, RunInfo
from hub.runs.run import Run, artifact_store_key
from projections.runs import queries
from schemas.errors import InputError, NotFoundError
from schemas.events import Provenance, RunStatus, Topic
from schemas.ids import uuid7

if TYPE_CHECKING:
    from hub.core.context import HubContext

__all__ = ["RunsClient"]

RUNS = str(Topic.RUNS)
GROUPS = {None: queries.AGGREGATE_TOTAL, "day": queries.AGGREGATE_BY_DAY}
GROUPS["prompt_version"] = queries.AGGREGATE_BY_PROMPT


def _provenance(value: Provenance | Mapping[str, Any] | None) -> Provenance:
    if value is None:
        return Provenance()
    if isinstance(value, Provenance):
        return value
    if not isinstance(value, Mapping):
        raise InputError(
            f"provenance: expected a mapping, got {type(value).__name__}", field="provenance"
        )
    return build_event(Provenance, **value)


def _since(value: datetime | None, field: str = "since") -> datetime | None:
    if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
        raise InputError(f"{field}: must be a timezone-aware datetime", field=field)
    return value


class RunsClient:
    """Runs, metrics and artifacts, as ``hub.runs``."""

    run_class: type[Run] = Run
    """What ``start`` and ``attach`` make (remote mode's runs send through its API)."""

    def __init__(self, ctx: HubContext) -> None:
        self._ctx = ctx

    def start(
        self,
        agent_id: str,
        *,
        input: Any = None,
        provenance: Provenance | Mapping[str, Any] | None = None,
        run_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Run:
        """A run, begun when entered: ``async with hub.runs.start(...) as run``."""
        check_id(agent_id, "agent_id")
        if run_id is not None:
            check_id(run_id, "run_id")
        return self.run_class(
            self._ctx,
            agent_id,
            run_id or f"{agent_id}_{uuid7().hex[:16]}",
            input=input,
            provenance=_provenance(provenance),
            metadata=metadata,
        )

    async def attach(self, run_id: str) -> Run:
        """A handle on a run begun before (perhaps by another process): record metrics,
        store artifacts and finish it. :class:`NotFoundError` if there is no such run."""
        check_id(run_id, "run_id")
        await self._settled()
        row = await self._ctx.pool.fetchrow(queries.RUN, self._ctx.tenant, run_id)
        if row is None:
            raise NotFoundError(f"no run {run_id!r}")
        return self.run_class.attached(
            self._ctx, row["agent_id"], run_id, started_at=row["started_at"], status=row["status"]
        )

    async def _settled(self) -> None:
        await self._ctx.wait_for_projections(topics=[RUNS])

    async def get(self, run_id: str, *, url_expires_s: int = 3600) -> RunDetail | None:
        """The run with its metrics and artifacts (each with a download URL), or None."""
        if not isinstance(run_id, str) or not run_id:
            raise InputError("run_id: must be a non-empty string", field="run_id")
        await self._settled()
        pool = self._ctx.pool
        row = await pool.fetchrow(queries.RUN, self._ctx.tenant, run_id)
        if row is None:
            return None
        metrics = await pool.fetch(queries.METRICS, self._ctx.tenant, run_id)
        artifacts = await pool.fetch(queries.ARTIFACTS, self._ctx.tenant, run_id)
        return RunDetail(
            run=RunInfo(**dict(row)),
            metrics=[MetricPoint(**dict(m)) for m in metrics],
            artifacts=[await self._with_url(dict(a), url_expires_s) for a in artifacts],
        )

    async def _with_url(self, row: dict[str, Any], expires_s: int) -> ArtifactInfo:
        store = await self._ctx.blob_store()
        key = artifact_store_key(self._ctx.tenant, row["key"])
        return ArtifactInfo(**row, url=await store.presign(key, expires_s=expires_s))

    async def artifact(self, artifact_id: UUID | str, *, url_expires_s: int = 3600) -> ArtifactInfo:
        """One artifact with a download URL; :class:`NotFoundError` if there is none."""
        try:
            aid = UUID(str(artifact_id))
        except ValueError:
            raise InputError(
                f"artifact_id: {artifact_id!r} is not a UUID", field="artifact_id"
            ) from None
        await self._settled()
        row = await self._ctx.pool.fetchrow(queries.ARTIFACT, self._ctx.tenant, aid)
        if row is None:
            raise NotFoundError(f"no artifact {aid}")
        return await self._with_url(dict(row), url_expires_s)

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
        """Runs, newest first. Pass the result's ``next_cursor`` back as ``cursor`` for the
        next page (``before=(started_at, run_id)`` is the older way, kept for one release)."""
        if status is not None and status != "running":
            try:
                RunStatus(status)
            except ValueError:
                raise InputError(
                    f"status: must be running, success, failed or cancelled, not {status!r}",
                    field="status",
                ) from None
        if not 1 <= limit <= 1000:
            raise InputError("limit: must be between 1 and 1000", field="limit")
        if cursor is not None:
            at, run_id = decode_cursor(cursor, "runs")
            before = (cursor_time(at), str(run_id))
        await self._settled()
        rows = await self._ctx.pool.fetch(
            queries.LIST,
            self._ctx.tenant,
            agent_id,
            status,
            _since(since),
            before[0] if before else None,
            before[1] if before else None,
            limit,
        )
        found = [RunInfo(**dict(r)) for r in rows]
        last = found[-1] if len(found) == limit else None
        return CursorList(
            found, encode_cursor("runs", last.started_at.isoformat(), last.run_id) if last else None
        )

    async def aggregate(
        self,
        metric: str,
        *,
        agent_id: str | None = None,
        group_by: Literal["day", "prompt_version"] | None = None,
        since: datetime | None = None,
    ) -> builtins.list[AggregateRow]:
        """Count, mean, p50 and p95 of ``metric`` (computed in Postgres), per group."""
        if not isinstance(metric, str) or not metric:
            raise InputError("metric: must be a metric name", field="metric")
        query = GROUPS.get(group_by)
        if query is None:
            raise InputError(
                f"group_by: must be 'day' or 'prompt_version', not {group_by!r}", field="group_by"
            )
        await self._settled()
        rows = await self._ctx.pool.fetch(query, self._ctx.tenant, metric, agent_id, _since(since))
        return [
            AggregateRow(
                group=r["grp"],
                count=r["count"],
                mean=r["mean"],
                p50=r["p50"],
                p95=r["p95"],
                min=r["min"],
                max=r["max"],
            )
            for r in rows
            if r["count"]
        ]
