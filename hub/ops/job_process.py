"""The process of one operation job: ``python -m hub.ops.job_process JOB_ID``.

Started by :class:`hub.ops.jobs.JobLauncher` with the server's settings in its
environment (``HUB_*``). It claims the queued job, runs it while writing its progress and
a heartbeat to ``hub.ops_jobs`` every few seconds, and records the result or the error.
SIGTERM or SIGINT stop it: the job is recorded as failed ("interrupted"), and a rebuild
started again resumes where this one was.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import anyio

from hub.ops.jobs import BEAT, CLAIM, FINISH, HEARTBEAT_S, PROGRESS
from hub.ops.replay import Progress
from hub.runtime import Runtime

__all__ = ["main", "run_job"]


class _Reporter:
    """Keeps the latest progress; the heartbeat writes it out."""

    def __init__(self) -> None:
        self.latest: Progress | None = None

    def __call__(self, progress: Progress) -> None:
        self.latest = progress


async def _operate(
    runtime: Runtime, kind: str, name: str, params: dict[str, Any], report: _Reporter
) -> Any:
    if kind == "replay":
        from hub.ops.replay import parse_start, replay

        start = parse_start(params.get("start", "earliest"))
        done = await replay(runtime, name, start, reset=bool(params.get("reset")), report=report)
        return {"events": done.done}
    if kind == "rebuild":
        from hub.ops.rebuild import rebuild

        done = await rebuild(
            runtime,
            name,
            report=report,
            grace_s=float(params.get("grace_s", 60.0)),
            workers=int(params.get("workers", 1)),
        )
        return {"events": done.done, "swapped": True}
    if kind == "verify":
        from hub.ops.verify import verify

        checks = await verify(runtime, name, report=report)
        tables = [
            {"table": c.table, "rows": c.rows, "same": c.same, "live": c.live, "rebuilt": c.rebuilt}
            for c in checks
        ]
        return {"same": all(c.same for c in checks), "tables": tables}
    raise ValueError(f"unknown job kind {kind!r}")


async def _heartbeat(runtime: Runtime, job_id: str, report: _Reporter) -> None:
    while True:
        await anyio.sleep(HEARTBEAT_S)
        if report.latest is not None:
            await runtime.pool.execute(PROGRESS, job_id, asdict(report.latest))
        else:
            await runtime.pool.execute(BEAT, job_id)


async def _on_signal(scope: anyio.CancelScope, stopped: list[int]) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            stopped.append(signum)
            scope.cancel()
            return


async def run_job(runtime: Runtime, job_id: str) -> bool:
    """Claim and run job ``job_id``; True if it succeeded (False if it failed, or was
    not queued)."""
    row = await runtime.pool.fetchrow(CLAIM, job_id, os.getpid())
    if row is None:
        return False
    kind, name, params = row[0], row[1], row[2]
    report = _Reporter()
    stopped: list[int] = []
    outcome: tuple[str, Any, str | None] = ("failed", None, "interrupted")
    async with anyio.create_task_group() as tg:
        tg.start_soon(_heartbeat, runtime, job_id, report)
        tg.start_soon(_on_signal, tg.cancel_scope, stopped)
        try:
            result = await _operate(runtime, kind, name, params, report)
            outcome = ("succeeded", result, None)
        except Exception as exc:  # recorded on the job: that is where operators look
            outcome = ("failed", None, f"{type(exc).__name__}: {exc}")
        finally:
            if stopped:
                name_of = signal.Signals(stopped[0]).name
                outcome = ("failed", None, f"interrupted by {name_of}")
            with anyio.CancelScope(shield=True):
                last = asdict(report.latest) if report.latest is not None else None
                await runtime.pool.execute(FINISH, job_id, *outcome, last)
            tg.cancel_scope.cancel()
    return outcome[0] == "succeeded"


async def _main(job_id: str) -> bool:
    from hub.settings import load_settings

    async with Runtime(load_settings(url=None, run_projectors="never")) as runtime:
        return await run_job(runtime, job_id)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit 0 if the job succeeded, 1 if not."""
    from hub.infra.logs import configure_logging
    from hub.infra.tuning import tune_gc
    from hub.settings import load_settings

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m hub.ops.job_process JOB_ID", file=sys.stderr)
        return 2
    settings = load_settings(url=None)
    configure_logging(settings.log_level, json=settings.log_json)
    tune_gc()
    return 0 if anyio.run(_main, args[0]) else 1


if __name__ == "__main__":
    sys.exit(main())
