"""HTTP routes of operations: jobs (replay, rebuild, verify) and dead letters.

Jobs act on every tenant's data, so they need an operator (an admin key of the hub's own
tenant). They run in their own process (:mod:`hub.ops.jobs`): ``POST /v1/ops/jobs``
answers 202 with the job and its ``Location``; ``GET /v1/ops/jobs/{job_id}`` shows its
progress, then its result or error.

Dead letters: an operator sees all of them; another tenant's admin sees those whose
original event is of its own tenant (one that does not decode has no tenant: operators
only), and may replay them."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Query, Response
from pydantic import BaseModel

from hub.access.keys import Principal
from hub.ops.dead_letters import DeadLetter, dead_letters, get_dead_letter, replay_dead_letter
from hub.ops.jobs import Job, JobLauncher, JobSpec, get_job, list_jobs
from schemas.errors import NotFoundError

if TYPE_CHECKING:
    from hub.http.auth import Access

__all__ = ["add_ops_routes"]


class JobList(BaseModel):
    jobs: list[Job]


class DeadLetterSummary(BaseModel):
    id: str
    consumer: str
    event_type: str | None
    source: str
    error_type: str
    reason: str
    at: datetime
    replayed: bool
    tenant_id: str | None  # of the original event; None if it does not decode


class DeadLetterDetail(DeadLetterSummary):
    event: dict[str, Any] | None  # the original event, if it decodes


class DeadLetterList(BaseModel):
    dead_letters: list[DeadLetterSummary]
    next_cursor: str | None


class ReplayOutcome(BaseModel):
    id: str
    outcome: str  # requeued, already_replayed, already_applied, failed
    detail: str


def _summary(dead: DeadLetter) -> dict[str, Any]:
    return dead.summary() | {"tenant_id": dead.event.tenant_id if dead.event else None}


def add_ops_routes(app: FastAPI, access: Access) -> None:
    operator = Depends(access.operator_principal)
    admin = Depends(access.admin_principal)
    runtime = access.hub.runtime
    launcher = JobLauncher(runtime)

    def visible(dead: DeadLetter, caller: Principal) -> bool:
        mine = dead.event is not None and dead.event.tenant_id == caller.tenant
        return mine or access.is_operator(caller)

    async def visible_dead_letter(dead_letter_id: str, caller: Principal) -> DeadLetter:
        dead = await get_dead_letter(runtime, dead_letter_id)
        if not visible(dead, caller):  # as if absent: ids of others are not confirmed
            raise NotFoundError(f"no dead letter {dead_letter_id}")
        return dead

    @app.post("/v1/ops/jobs", status_code=202)
    async def start_job(body: JobSpec, response: Response, caller: Principal = operator) -> Job:
        """Start a replay, rebuild or verify of one projection in its own process; 409
        while another operation on that projection runs."""
        job = await launcher.submit(body, requested_by=caller.actor)
        response.headers["Location"] = f"/v1/ops/jobs/{job.job_id}"
        return job

    @app.get("/v1/ops/jobs")
    async def list_ops_jobs(
        limit: int = Query(50, ge=1, le=1000), caller: Principal = operator
    ) -> JobList:
        """The newest jobs first."""
        launcher.reap()
        return JobList(jobs=await list_jobs(runtime, limit))

    @app.get("/v1/ops/jobs/{job_id}")
    async def get_ops_job(job_id: str, caller: Principal = operator) -> Job:
        """A job's state (queued, running, succeeded, failed, lost), progress and result."""
        launcher.reap()
        return await get_job(runtime, job_id)

    @app.get("/v1/dead-letters")
    async def list_dead_letters(
        consumer: str | None = None,
        pending: bool = Query(False, description="only those not replayed yet"),
        limit: int = Query(100, ge=1, le=1000),
        cursor: str | None = None,
        caller: Principal = admin,
    ) -> DeadLetterList:
        """Dead letters in log order (the caller's tenant's, or all for operators)."""
        found: list[DeadLetterSummary] = []
        next_cursor = None
        async for dead in dead_letters(runtime, consumer, after=cursor):
            if not visible(dead, caller) or (pending and dead.replayed):
                continue
            if len(found) == limit:
                next_cursor = found[-1].id
                break
            found.append(DeadLetterSummary.model_validate(_summary(dead)))
        return DeadLetterList(dead_letters=found, next_cursor=next_cursor)

    @app.get("/v1/dead-letters/{dead_letter_id}")
    async def show_dead_letter(dead_letter_id: str, caller: Principal = admin) -> DeadLetterDetail:
        """One dead letter, with its original event."""
        dead = await visible_dead_letter(dead_letter_id, caller)
        event = dead.event.model_dump(mode="json") if dead.event else None
        return DeadLetterDetail.model_validate(_summary(dead) | {"event": event})

    @app.post("/v1/dead-letters/{dead_letter_id}/replay")
    async def replay_one_dead_letter(
        dead_letter_id: str, caller: Principal = admin
    ) -> ReplayOutcome:
        """Put the original event back on its topic once, if its projection would now
        apply it (tried first in a rolled-back transaction); ``failed`` says why not."""
        dead = await visible_dead_letter(dead_letter_id, caller)
        result = await replay_dead_letter(runtime, dead)
        return ReplayOutcome(id=result.id, outcome=result.outcome, detail=result.detail)
