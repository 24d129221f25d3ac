"""Operations as jobs: replay, rebuild or verify a projection from the HTTP API.

``submit(runtime, spec, requested_by)`` records a job in ``hub.ops_jobs`` (this module
owns the table) and starts ``python -m hub.ops.job_process JOB_ID`` with the server's
settings: the operation's CPU work never runs on an API process's event loop, and the
job keeps running when the request that started it ends. The process marks the job
running, reports progress and a heartbeat every few seconds, and records the result or
the error. A job whose heartbeat stops (its process was killed, its machine went away)
is shown as ``lost``; rebuilds resume where they were when started again.

One operation per projection at a time: a second one answers 409 naming the first (a
verify drops the scratch schema a rebuild fills).
"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from typing import Any, Literal

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.ops.replay import find_projection, parse_start
from hub.runtime import Runtime
from schemas.errors import ConflictError, NotFoundError
from schemas.ids import uuid7

__all__ = ["LOST_AFTER_S", "Job", "JobLauncher", "JobSpec", "get_job", "list_jobs"]

HEARTBEAT_S = 5.0
LOST_AFTER_S = 30.0  # no heartbeat for this long: the job's process is gone

JobKind = Literal["replay", "rebuild", "verify"]
JobState = Literal["queued", "running", "succeeded", "failed", "lost"]

LOSE_STALE = f"""
UPDATE hub.ops_jobs
SET state = 'lost', finished_at = now(),
    error = 'its process stopped without finishing (no heartbeat for {LOST_AFTER_S:g}s)'
WHERE state IN ('queued', 'running') AND updated_at < now() - interval '{LOST_AFTER_S:g} seconds'
"""
INSERT = """
INSERT INTO hub.ops_jobs (job_id, kind, projection, params, state, requested_by)
VALUES ($1, $2, $3, $4, 'queued', $5)
"""
ACTIVE = """
SELECT job_id, kind FROM hub.ops_jobs
WHERE projection = $1 AND state IN ('queued', 'running')
"""
COLUMNS = """
job_id, kind, projection, params, state, progress, result, error, requested_by,
created_at, updated_at, finished_at
"""
GET = f"SELECT {COLUMNS} FROM hub.ops_jobs WHERE job_id = $1"
LIST = f"SELECT {COLUMNS} FROM hub.ops_jobs ORDER BY created_at DESC, job_id DESC LIMIT $1"
CLAIM = """
UPDATE hub.ops_jobs SET state = 'running', pid = $2, updated_at = now()
WHERE job_id = $1 AND state = 'queued' RETURNING kind, projection, params
"""
BEAT = "UPDATE hub.ops_jobs SET updated_at = now() WHERE job_id = $1 AND state = 'running'"
PROGRESS = """
UPDATE hub.ops_jobs SET progress = $2, updated_at = now()
WHERE job_id = $1 AND state = 'running'
"""
FINISH = """
UPDATE hub.ops_jobs
SET state = $2, result = $3, error = $4, progress = coalesce($5, progress),
    updated_at = now(), finished_at = now()
WHERE job_id = $1 AND state IN ('queued', 'running')
"""
SPAWN_FAILED = """
UPDATE hub.ops_jobs SET state = 'failed', error = $2, finished_at = now() WHERE job_id = $1
"""


class JobSpec(BaseModel):
    """What to run: ``replay`` (``start``, ``reset``), ``rebuild`` (``workers``,
    ``grace_s``) or ``verify`` of one projection."""

    model_config = ConfigDict(extra="forbid")

    kind: JobKind
    projection: str = Field(min_length=1, max_length=200)
    start: str | int = Field(
        "earliest", description="replay: earliest, an offset, or an ISO time with a timezone"
    )
    reset: bool = Field(False, description="replay: empty the projection first")
    workers: int = Field(1, ge=1, le=64, description="rebuild: processes sharing the work")
    grace_s: float = Field(
        60.0, ge=0, le=86_400, description="rebuild: seconds the old tables are kept"
    )

    @model_validator(mode="after")
    def _options_of_its_kind(self) -> JobSpec:
        foreign = sorted(self.model_fields_set - OPTIONS[self.kind] - {"kind", "projection"})
        if foreign:
            raise ValueError(f"{', '.join(foreign)}: not an option of {self.kind}")
        return self


OPTIONS: dict[str, set[str]] = {
    "replay": {"start", "reset"},
    "rebuild": {"workers", "grace_s"},
    "verify": set(),
}


class Job(BaseModel):
    """One operation and how far it got; ``result`` once it succeeded."""

    job_id: str
    kind: JobKind
    projection: str
    params: dict[str, Any]
    state: JobState
    progress: dict[str, Any] | None = None
    result: Any = None
    error: str | None = None
    requested_by: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None


def _job(row: asyncpg.Record) -> Job:
    return Job.model_validate(dict(row))


async def get_job(runtime: Runtime, job_id: str) -> Job:
    """One job by id; :class:`NotFoundError` if there is none."""
    await runtime.pool.execute(LOSE_STALE)
    row = await runtime.pool.fetchrow(GET, job_id)
    if row is None:
        raise NotFoundError(f"no job {job_id!r}")
    return _job(row)


async def list_jobs(runtime: Runtime, limit: int = 50) -> list[Job]:
    """The newest jobs first."""
    await runtime.pool.execute(LOSE_STALE)
    return [_job(r) for r in await runtime.pool.fetch(LIST, limit)]


class JobLauncher:
    """Starts job processes, and reaps the ones that have ended."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._running: set[subprocess.Popen[bytes]] = set()

    async def submit(self, spec: JobSpec, requested_by: str) -> Job:
        """Record the job and start its process; :class:`ConflictError` while another
        operation on the same projection runs, :class:`NotFoundError` for an unknown one."""
        self.reap()
        find_projection(self.runtime, spec.projection)  # refuse bad input now, not in the job
        if spec.kind == "replay":
            parse_start(spec.start)
        job_id = str(uuid7())
        params = spec.model_dump(exclude={"kind", "projection"})
        pool = self.runtime.pool
        await pool.execute(LOSE_STALE)
        try:  # the unique index on running jobs' projection decides a race
            await pool.execute(INSERT, job_id, spec.kind, spec.projection, params, requested_by)
        except asyncpg.UniqueViolationError:
            busy = await pool.fetchrow(ACTIVE, spec.projection)
            what = f"a {busy['kind']} running (job {busy['job_id']})" if busy else "a job running"
            raise ConflictError(
                f"{spec.projection} already has {what}; one operation per projection at a time"
            ) from None
        try:
            self._spawn(job_id)
        except OSError as exc:
            await pool.execute(SPAWN_FAILED, job_id, f"its process did not start: {exc}")
        return await get_job(self.runtime, job_id)

    def _spawn(self, job_id: str) -> None:
        env = self.runtime.settings.child_env()
        if self.runtime.database_url:  # the embedded server's URL, made at start
            env["HUB_DATABASE_URL"] = self.runtime.database_url
        command = [sys.executable, "-m", "hub.ops.job_process", job_id]
        process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)
        self._running.add(process)

    def reap(self) -> None:
        """Collect the exit status of job processes that have ended."""
        self._running = {p for p in self._running if p.poll() is None}
