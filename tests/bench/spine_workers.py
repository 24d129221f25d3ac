"""The spine benchmark's ``--workers`` row: the registry projection applied by projector
processes that share its partitions through the consumer group, as ``agent-hub up
--workers N`` and ``agent-hub project`` run them.

Each process starts, builds its hub and says so; then all are told to go at once, and the
time runs from there until the projection's stored positions reach the log's end, the
group's join and rebalance included (what an operator who starts the processes over a
backlog waits for). The same is measured with one process, so the speed-up compares like
with like; the in-process ``project`` row times from the assignment instead.
"""

from __future__ import annotations

import subprocess
import sys
import time

import anyio

from hub.client import Hub
from hub.infra.ports import TopicPartition
from hub.settings import HubSettings
from projections.registry import RegistryProjection

__all__ = ["caught_up", "project_in_processes"]

PROJECTOR = """
import sys
import anyio
from hub.client import Hub
from hub.infra.logs import configure_logging
from hub.infra.tuning import tune_gc
from hub.settings import HubSettings
from projections.registry import RegistryProjection


async def main() -> None:
    settings = HubSettings()
    configure_logging(settings.log_level)  # to stderr: stdout says when it is ready
    async with Hub(settings) as hub:
        projector = hub.runtime.projector(RegistryProjection())
        print("ready", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)  # go
        tune_gc()
        async with anyio.create_task_group() as tg:
            await tg.start(projector.run)
            await anyio.to_thread.run_sync(sys.stdin.readline)  # stop
            projector.stop_soon()


anyio.run(main)
"""


async def project_in_processes(hub: Hub, settings: HubSettings, n: int, workers: int) -> float:
    """Seconds for ``workers`` projector processes to apply the ``n`` registry events in
    the log, from the moment they are told to go."""
    projection = RegistryProjection()
    topic = str(projection.topics[0])
    tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
    ends = await hub.runtime.log.end_offsets(tps)
    procs = [_start(settings) for _ in range(workers)]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = await anyio.to_thread.run_sync(proc.stdout.readline)
            if line.strip() != "ready":
                raise RuntimeError(f"a projector process did not start: {line!r}")
        started = time.perf_counter()
        for proc in procs:
            _say(proc, "go")
        with anyio.fail_after(600):
            while not await caught_up(hub, projection.consumer, ends):
                await anyio.sleep(0.01)
        elapsed = time.perf_counter() - started
    except BaseException:
        for proc in procs:
            proc.kill()
        raise
    finally:
        for proc in procs:
            if proc.poll() is None:
                _say(proc, "stop")
        for proc in procs:
            await anyio.to_thread.run_sync(proc.wait)
    count = await hub.runtime.pool.fetchval("SELECT count(*) FROM registry.agents")
    assert count == n, f"projected {count} of {n}"
    if any(proc.returncode for proc in procs):
        raise RuntimeError(f"projector exits: {[proc.returncode for proc in procs]}")
    return elapsed


def _start(settings: HubSettings) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", PROJECTOR],
        env=settings.child_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _say(proc: subprocess.Popen[str], word: str) -> None:
    assert proc.stdin is not None
    try:
        proc.stdin.write(word + "\n")
        proc.stdin.flush()
    except BrokenPipeError:
        pass  # it has ended; its exit code says how


async def caught_up(hub: Hub, consumer: str, ends: dict[TopicPartition, int]) -> bool:
    """Whether ``consumer``'s stored positions have reached ``ends``."""
    rows = await hub.runtime.pool.fetch(
        "SELECT topic, partition, next_offset FROM hub.positions WHERE consumer = $1", consumer
    )
    stored = {TopicPartition(r[0], r[1]): r[2] for r in rows}
    return all(stored.get(tp, 0) >= end for tp, end in ends.items())
