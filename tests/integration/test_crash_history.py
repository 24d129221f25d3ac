"""Crashes of the history keepers, with real processes: the archiver and a rebuild are
SIGKILLed mid-way and restarted; the archive has no gap and no duplicate, and the rebuilt
read model is exact."""

from __future__ import annotations

import os
import random
import signal
import sys
from pathlib import Path

import anyio
import pytest
from anyio.abc import TaskGroup

from consumers.archive.segments import read_segment
from hub.infra.blob import open_blob_store
from hub.infra.ports import TopicPartition
from hub.runtime import Runtime
from hub.settings import HubSettings
from schemas.events import AgentRegistered, Topic
from tests.conftest import TEST_PARTITIONS, hub_env, settings_for
from tests.support.procs import HubProcess, children

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

REGISTRY = str(Topic.REGISTRY)
ALL = [TopicPartition(REGISTRY, p) for p in range(TEST_PARTITIONS)]


@pytest.fixture
def settings(hub_settings: HubSettings, tmp_path: Path) -> HubSettings:
    return hub_settings.model_copy(
        update={
            "archive_url": (tmp_path / "archive").as_uri(),
            "archive_max_records": 97,
            "archive_max_age_s": 0.5,
            "batch_size": 100,
        }
    )


def registered(i: int) -> AgentRegistered:
    return AgentRegistered(tenant_id="t1", actor="crash", agent_id=f"agent-{i:05d}")


async def archived_next(runtime: Runtime) -> int:
    rows = await runtime.pool.fetch(
        "SELECT coalesce(sum(next_offset), 0) FROM hub.positions WHERE consumer = 'archiver'"
    )
    return int(rows[0][0])


async def archive_all(
    runtime: Runtime, settings: HubSettings, tg: TaskGroup, total: int, *, step: int
) -> None:
    """``total`` registrations, archived by an archiver process that is then stopped."""
    for start in range(0, total, step):
        await runtime.producer.emit([registered(i) for i in range(start, start + step)])
    archiver = HubProcess(["archive"], hub_env(settings))
    await archiver.start(tg)
    ends = await runtime.log.end_offsets(ALL)
    with anyio.fail_after(120):
        while await archived_next(runtime) < sum(ends.values()):
            await anyio.sleep(0.1)
    await archiver.terminate()
    await archiver.close()


async def test_archiver_killed_three_times_leaves_no_gap_and_no_duplicate(
    settings: HubSettings,
) -> None:
    total, phases, chunk = 8_000, 4, 50
    per_phase = total // phases
    env = hub_env(settings)
    async with Runtime(settings) as runtime, anyio.create_task_group() as tg:
        for phase in range(phases):
            proc = HubProcess(["archive"], env)
            await proc.start(tg)
            try:
                before = await archived_next(runtime)
                for start in range(phase * per_phase, (phase + 1) * per_phase, chunk):
                    await runtime.producer.emit(
                        [registered(i) for i in range(start, start + chunk)]
                    )
                    await anyio.sleep(0.01)
                with anyio.fail_after(120):
                    while await archived_next(runtime) <= before:
                        await anyio.sleep(0.05)
                if phase < phases - 1:
                    await anyio.sleep(random.uniform(0.0, 0.4))
                    proc.kill()  # mid-segment, mid-write or between write and record
                else:
                    ends = await runtime.log.end_offsets(ALL)
                    with anyio.fail_after(120):
                        while await archived_next(runtime) < sum(ends.values()):
                            await anyio.sleep(0.1)
                    assert await proc.terminate() == 0, proc.tail()
            finally:
                await proc.close()

        ends = await runtime.log.end_offsets(ALL)
        store = open_blob_store(settings.archive)
        async with store:
            keys = set(await store.list(REGISTRY))
            for tp in ALL:
                rows = await runtime.pool.fetch(
                    "SELECT first_offset, last_offset, key FROM hub.archive_segments "
                    "WHERE topic = $1 AND partition = $2 ORDER BY first_offset",
                    tp.topic,
                    tp.partition,
                )
                offsets: list[int] = []
                for first, last, key in rows:
                    assert key in keys
                    keys.discard(key)
                    entries = read_segment(await store.get(key))
                    assert [e["offset"] for e in entries] == list(range(first, last + 1))
                    offsets += [e["offset"] for e in entries]
                assert offsets == list(range(ends[tp])), f"gap or duplicate on {tp}"
            assert keys == set(), f"stray objects: {sorted(keys)[:3]}"


async def test_rebuild_killed_midway_resumes_and_swaps_in_exactly(
    settings: HubSettings,
) -> None:
    total = 6_000
    env = hub_env(settings) | {"HUB_LOG_LEVEL": "warning"}
    async with Runtime(settings) as runtime, anyio.create_task_group() as tg:
        await archive_all(runtime, settings, tg, total, step=500)

        cmd = [sys.executable, "-m", "hub.cli", "rebuild", "registry", "--grace", "0"]
        async with await anyio.open_process(cmd, env=env) as proc:
            with anyio.fail_after(120):
                while True:
                    done = await runtime.pool.fetchval(
                        "SELECT coalesce(sum(next_offset), 0) FROM hub.positions "
                        "WHERE consumer = 'proj_registry_v1_next'"
                    )
                    if done > 0:
                        break
                    assert proc.returncode is None, "the rebuild ended before it was killed"
                    await anyio.sleep(0.01)
            proc.kill()  # SIGKILL, mid-rebuild
            await proc.wait()
        assert 0 < done < total, "the kill landed after the rebuild had finished"

        again = await anyio.run_process(cmd, env=env, check=False)
        assert again.returncode == 0, again.stderr.decode()[-2000:]
        assert "swapped in" in again.stdout.decode()
        rows = await runtime.pool.fetch(
            "SELECT agent_id, revision FROM registry.agents WHERE tenant_id = 't1' ORDER BY 1"
        )
        assert [r[0] for r in rows] == [f"agent-{i:05d}" for i in range(total)]
        assert {r[1] for r in rows} == {1}
        schemas = await runtime.pool.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'proj_registry_v1%'"
        )
        assert [r[0] for r in schemas] == ["proj_registry_v1"]


async def test_a_rebuild_worker_killed_midway_leaves_its_partitions_to_the_others(
    database_url: str, tmp_path: Path
) -> None:
    # the Postgres log: its group table shows when the worker holds partitions
    settings = settings_for(
        "postgres",
        "",
        database_url,
        tmp_path / "home",
        archive_url=(tmp_path / "archive").as_uri(),
        archive_max_records=97,
        archive_max_age_s=0.5,
    )
    total = 12_000
    env = hub_env(settings) | {"HUB_LOG_LEVEL": "warning", "HUB_BATCH_SIZE": "20"}
    members = "SELECT count(*) FROM hub_log.members WHERE group_id = 'proj_registry_v1_next'"
    async with Runtime(settings) as runtime, anyio.create_task_group() as tg:
        await archive_all(runtime, settings, tg, total, step=1000)

        cmd = [sys.executable, "-m", "hub.cli", "rebuild", "registry", "--grace", "0"]
        async with await anyio.open_process([*cmd, "--workers", "2"], env=env) as proc:
            with anyio.fail_after(120):
                while await runtime.pool.fetchval(members) < 2:  # both share the work
                    assert proc.returncode is None, "the rebuild ended before it was killed"
                    await anyio.sleep(0.01)
            (worker,) = children(proc.pid, "hub.ops.rebuild_worker")
            done = await runtime.pool.fetchval(
                "SELECT coalesce(sum(next_offset), 0) FROM hub.positions "
                "WHERE consumer = 'proj_registry_v1_next'"
            )
            os.kill(worker, signal.SIGKILL)
            assert done < total, "the kill landed after the rebuild had finished"
            with anyio.fail_after(180):
                code = await proc.wait()
            stdout = await proc.stdout.receive() if proc.stdout else b""
        assert code == 0 and b"swapped in" in stdout
        rows = await runtime.pool.fetch(
            "SELECT agent_id, revision FROM registry.agents WHERE tenant_id = 't1' ORDER BY 1"
        )
        assert [r[0] for r in rows] == [f"agent-{i:05d}" for i in range(total)]
        assert {r[1] for r in rows} == {1}
