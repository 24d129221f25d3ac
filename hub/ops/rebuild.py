"""Blue/green rebuilds: a projection refilled beside the live one, then swapped in.

``rebuild(runtime, name)``:

1. creates a shadow schema (``proj_<name>_v<N>_next``) with the projection's migrations,
   neither registered nor visible to readers;
2. runs a projector into it from the beginning of history: the archive, then the log
   tail (the projector's COPY paths do the bulk work), reporting progress. Its positions
   are stored like any projector's, so a rebuild killed at any point resumes where it was.
   With ``workers > 1``, helper processes (``hub.ops.rebuild_worker``) join the shadow's
   consumer group and the partitions are shared out among them: decoding and folding
   events is CPU work, and each process brings a core;
3. follows the live head until it is at most ``swap_lag`` events behind, then swaps in
   one transaction: the live schema becomes ``..._old_<time>``, the shadow becomes the
   live schema, positions and counters move with it, and the stable views are re-pointed
   (in place when the columns match). A live projector elsewhere keeps running: its next
   batch finds the moved positions, is dropped and re-read, and continues into the new
   tables. Readers see the old rows or the new ones, never an error or an empty view;
4. drops the old schema after ``grace_s``: this process waits for it, and if it is gone
   by then, the projection's running projector (``agent-hub up``) or the next rebuild
   drops it.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import anyio
import structlog
from anyio.abc import ByteReceiveStream, Process

from consumers.migrations import migrate, point_view
from consumers.positions import partitions_of
from consumers.promotion import drop_rebuild_leftovers
from hub.infra.ports import TopicPartition
from hub.ops.rebuild_worker import worker_targets
from hub.ops.replay import Progress, find_projection, run_until_caught_up
from hub.ops.shadow import shadow_of
from hub.runtime import Runtime
from projections.base import Projection

__all__ = ["rebuild", "shadow_of"]

log = structlog.get_logger(__name__)

START = """
INSERT INTO hub.rebuilds (name, shadow, state) VALUES ($1, $2, 'rebuilding')
ON CONFLICT (name) DO UPDATE SET
    shadow = EXCLUDED.shadow,
    state = CASE WHEN hub.rebuilds.state = 'swapped' THEN 'rebuilding' ELSE hub.rebuilds.state END,
    started_at = CASE WHEN hub.rebuilds.state = 'swapped' THEN now()
                      ELSE hub.rebuilds.started_at END,
    updated_at = now()
"""
PROGRESS = """
UPDATE hub.rebuilds SET state = $2, done = $3, total = $4, rate = $5, updated_at = now()
WHERE name = $1
"""
SWAPPED = """
UPDATE hub.rebuilds SET state = 'swapped', retired = $2,
    drop_after = now() + make_interval(secs => $3), updated_at = now()
WHERE name = $1
"""


async def _prepare(runtime: Runtime, live: Projection[Any], shadow: Projection[Any]) -> None:
    async with runtime.pool.acquire() as conn:
        await drop_rebuild_leftovers(conn, live.name)
        await migrate(conn, shadow, register=False)
        await conn.execute(START, live.name, shadow.schema)


async def _swap(
    runtime: Runtime, live: Projection[Any], shadow: Projection[Any], grace_s: float
) -> str:
    retired = f"{live.schema}_old_{int(time.time())}"
    tps = await partitions_of(runtime.log, live.topics)
    async with runtime.pool.acquire() as conn, conn.transaction():
        # Hold the live positions: a live projector's next batch waits for the swap, so
        # the live rows stop moving. Bring the shadow up to them (it may pass them), so
        # that readers never see fewer rows after the swap than before it.
        live_at = await runtime.positions.lock_all(conn, live.consumer)
        targets = {tp: live_at.get(tp, 0) for tp in tps}
        await run_until_caught_up(runtime, runtime.projector(shadow), tps, targets=targets)
        await runtime.positions.hand_over(conn, shadow.consumer, live.consumer)
        await conn.execute(f"ALTER SCHEMA {live.schema} RENAME TO {retired}")
        await conn.execute(f"ALTER SCHEMA {shadow.schema} RENAME TO {live.schema}")
        await conn.execute(
            "UPDATE hub.migrations SET schema = $1 WHERE schema = $2", retired, live.schema
        )
        await conn.execute(
            "UPDATE hub.migrations SET schema = $1 WHERE schema = $2", live.schema, shadow.schema
        )
        for table in live.views:
            await point_view(conn, live.name, table, live.schema)
        await conn.execute(SWAPPED, live.name, retired, grace_s)
    return retired


async def rebuild(
    runtime: Runtime,
    name: str,
    *,
    report: Callable[[Progress], None] | None = None,
    swap_lag: int = 0,
    grace_s: float = 60.0,
    max_rounds: int = 20,
    workers: int = 1,
) -> Progress:
    """Rebuild projection ``name`` beside the live one and swap it in (see the module)."""
    live = find_projection(runtime, name)
    shadow = shadow_of(live)
    await _prepare(runtime, live, shadow)
    tps = await partitions_of(runtime.log, live.topics)
    targets = await runtime.log.end_offsets(tps)

    state = "rebuilding"

    async def note(p: Progress) -> None:
        if report is not None:
            report(p)
        await _record(runtime, name, state, p)  # for /v1/projections and `status`

    helpers = await _start_workers(runtime, name, targets, min(workers, len(tps)) - 1)
    try:
        progress = await run_until_caught_up(
            runtime, runtime.projector(shadow), tps, report=note, targets=targets
        )
    except BaseException:
        with anyio.CancelScope(shield=True):
            await _finish_workers(helpers, kill=True)
        raise
    await _finish_workers(helpers)  # before the swap: none may write to the shadow after it
    state = "catching_up"
    await _record(runtime, name, state, progress)
    for _ in range(max_rounds):  # the live head moved on meanwhile: follow it
        ends = await runtime.log.end_offsets(tps)
        at = await runtime.positions.all(shadow.consumer)
        if sum(max(0, ends[tp] - at.get(tp, 0)) for tp in tps) <= swap_lag:
            break
        await run_until_caught_up(runtime, runtime.projector(shadow), tps, report=note)
    retired = await _swap(runtime, live, shadow, grace_s)
    log.info("rebuild.swapped", projection=name, retired=retired, events=progress.done)
    return progress


async def _start_workers(
    runtime: Runtime, name: str, targets: dict[TopicPartition, int], count: int
) -> list[Process]:
    """Helper processes sharing the shadow's partitions (see ``hub.ops.rebuild_worker``)."""
    if count <= 0:
        return []
    env = runtime.settings.child_env()
    if runtime.database_url is not None:  # the embedded server this process started
        env["HUB_DATABASE_URL"] = runtime.database_url
    command = [sys.executable, "-m", "hub.ops.rebuild_worker", name, worker_targets(targets)]
    helpers = [
        await anyio.open_process(command, env=env, stdout=subprocess.PIPE, stderr=None)
        for _ in range(count)
    ]
    log.info("rebuild.workers_started", projection=name, workers=count + 1)
    return helpers


async def _finish_workers(helpers: list[Process], *, kill: bool = False) -> None:
    """Wait for the helpers (they stop once every partition has reached its target); one
    that failed has left its partitions to the others, who finished its work."""
    for helper in helpers:
        out = b""
        if kill:
            helper.kill()
        with anyio.move_on_after(60) as scope:
            out = await _read_all(helper.stdout)
            code = await helper.wait()
        if scope.cancelled_caught:
            helper.kill()
            code = await helper.wait()
        if code == 0:
            events = out.decode(errors="replace").strip().rpartition("events=")[2]
            log.info("rebuild.worker_finished", pid=helper.pid, events=events)
        elif not kill:
            log.warning("rebuild.worker_failed", pid=helper.pid, exit_code=code)


async def _read_all(stream: ByteReceiveStream | None) -> bytes:
    chunks: list[bytes] = []
    if stream is not None:
        with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
            while True:
                chunks.append(await stream.receive())
    return b"".join(chunks)


async def drop_retired(runtime: Runtime, name: str) -> None:
    """Drop old schemas of ``name`` whose grace period has passed."""
    async with runtime.pool.acquire() as conn:
        await drop_rebuild_leftovers(conn, name)


async def _record(runtime: Runtime, name: str, state: str, p: Progress) -> None:
    await runtime.pool.execute(PROGRESS, name, state, p.done, p.total, p.rate)
