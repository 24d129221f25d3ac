"""Crash and failover with real projector processes (``agent-hub project``).

- SIGKILL a projector three times while 20,000 events are produced: the read model ends
  with exactly the produced set, and positions (not the event-id dedupe) did it.
- Two projector processes in one group split the partitions; SIGKILL one and the other
  takes over with nothing lost and nothing duplicated.
"""

from __future__ import annotations

import random

import anyio
import pytest

from hub.infra.ports import TopicPartition
from hub.runtime import Runtime
from hub.settings import HubSettings
from projections.registry import RegistryProjection
from schemas.events import AgentRegistered, Topic
from tests.conftest import TEST_PARTITIONS, hub_env
from tests.support.procs import HubProcess

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

REGISTRY = str(Topic.REGISTRY)
ALL = [TopicPartition(REGISTRY, p) for p in range(TEST_PARTITIONS)]
CONSUMER = RegistryProjection().consumer


def registered(i: int) -> AgentRegistered:
    return AgentRegistered(
        tenant_id="t1", actor="crash-test", agent_id=f"agent-{i:05d}", tags=["t"]
    )


async def applied(runtime: Runtime) -> int:
    return int(
        await runtime.pool.fetchval(
            "SELECT coalesce(max(applied), 0) FROM hub.consumer_stats WHERE consumer = $1", CONSUMER
        )
    )


async def wait_caught_up(runtime: Runtime, total: int, timeout: float) -> None:
    with anyio.fail_after(timeout):
        while await applied(runtime) < total:
            await anyio.sleep(0.2)
        ends = await runtime.log.end_offsets(ALL)
        while True:
            rows = await runtime.pool.fetch(
                "SELECT topic, partition, next_offset FROM hub.positions WHERE consumer = $1",
                CONSUMER,
            )
            stored = {TopicPartition(r[0], r[1]): r[2] for r in rows}
            if all(stored.get(tp, 0) == ends[tp] for tp in ALL if ends[tp]):
                return
            await anyio.sleep(0.2)


async def assert_exactly(runtime: Runtime, total: int) -> None:
    rows = await runtime.pool.fetch(
        "SELECT agent_id, revision FROM registry.agents WHERE tenant_id = 't1' ORDER BY agent_id"
    )
    assert [r["agent_id"] for r in rows] == [f"agent-{i:05d}" for i in range(total)]
    assert {r["revision"] for r in rows} == {1}
    stats = await runtime.pool.fetchrow(
        "SELECT applied, duplicates, dead_lettered FROM hub.consumer_stats WHERE consumer = $1",
        CONSUMER,
    )
    # every event applied once by position alone: the event-id dedupe skipped nothing
    assert (stats["applied"], stats["duplicates"], stats["dead_lettered"]) == (total, 0, 0)


async def test_projector_killed_three_times_while_producing(hub_settings: HubSettings) -> None:
    """Four phases of 5,000 events; in each of the first three a projector is SIGKILLed
    mid-stream while that phase is being produced; the fourth projector stops on SIGTERM."""
    total, phases, chunk = 20_000, 4, 100
    per_phase = total // phases
    env = hub_env(hub_settings)
    async with Runtime(hub_settings) as runtime:

        async def produce(phase: int) -> None:
            first = phase * per_phase
            for start in range(first, first + per_phase, chunk):
                await runtime.producer.emit([registered(i) for i in range(start, start + chunk)])
                await anyio.sleep(0.02)

        async with anyio.create_task_group() as tg:
            for phase in range(phases):
                proc = HubProcess(["project"], env)
                await proc.start(tg)
                try:
                    async with anyio.create_task_group() as phase_tg:
                        phase_tg.start_soon(produce, phase)
                        before = await applied(runtime)
                        with anyio.fail_after(120):
                            while await applied(runtime) <= before:  # it is applying batches
                                await anyio.sleep(0.02)
                        if phase < phases - 1:
                            await anyio.sleep(random.uniform(0.05, 0.5))  # die mid-stream
                            assert phase_tg.cancel_scope.cancel_called is False
                            proc.kill()
                    if phase == phases - 1:
                        await wait_caught_up(runtime, total, timeout=240)
                        assert await proc.terminate() == 0, proc.tail()  # SIGTERM: clean stop
                        assert proc.saw("projector.stopped"), proc.tail()
                finally:
                    await proc.close()
        await assert_exactly(runtime, total)


async def test_two_projector_processes_split_partitions_and_fail_over(
    hub_settings: HubSettings,
) -> None:
    total = 6_000
    env = hub_env(hub_settings)
    async with Runtime(hub_settings) as runtime:
        a, b = HubProcess(["project"], env), HubProcess(["project"], env)
        async with anyio.create_task_group() as tg:
            try:
                await a.start(tg)
                await b.start(tg)
                await runtime.producer.emit([registered(i) for i in range(0, total // 2)])
                everything = {str(tp) for tp in ALL}
                with anyio.fail_after(120):
                    while not (
                        a.assigned(CONSUMER)
                        and b.assigned(CONSUMER)
                        and not a.assigned(CONSUMER) & b.assigned(CONSUMER)
                        and a.assigned(CONSUMER) | b.assigned(CONSUMER) == everything
                    ):
                        await anyio.sleep(0.1)
                half = TEST_PARTITIONS // 2
                assert len(a.assigned(CONSUMER)) == len(b.assigned(CONSUMER)) == half
                b.kill()
                await runtime.producer.emit([registered(i) for i in range(total // 2, total)])
                with anyio.fail_after(120):
                    while a.assigned(CONSUMER) != everything:
                        await anyio.sleep(0.1)
                await wait_caught_up(runtime, total, timeout=120)
                assert await a.terminate() == 0, a.tail()
            finally:
                await a.close()
                await b.close()
        await assert_exactly(runtime, total)
