"""An in-process projector gathers a burst of writes into one batch while nobody in its
process waits to read, and stops gathering the moment a reader waits for its writes."""

from __future__ import annotations

import anyio
import pytest

from consumers.projector import ProjectorSettings
from hub import Hub
from hub.runtime import Runtime
from hub.settings import HubSettings
from projections.registry import RegistryProjection
from schemas.events import AgentRegistered
from tests.integration.test_projector import agents, caught_up, projector_with

pytestmark = pytest.mark.anyio


def registered(agent: str) -> AgentRegistered:
    return AgentRegistered(tenant_id="t1", actor="test", agent_id=agent)


async def test_writes_one_at_a_time_are_applied_in_one_batch(runtime: Runtime) -> None:
    projection = RegistryProjection()
    projector = projector_with(runtime, projection, ProjectorSettings(idle_linger=3.0))
    async with anyio.create_task_group() as tg:
        await tg.start(projector.run)
        await runtime.producer.emit([registered("warm-up")])  # the group joined, at rest
        await caught_up(runtime, projection.consumer)
        before = (projector.stats.batches, projector.stats.events)
        for i in range(5):  # five appends, each waking the projector
            await runtime.producer.emit([registered(f"a{i}")])
            await anyio.sleep(0.02)
        await caught_up(runtime, projection.consumer)
        projector.stop_soon()
    assert len(await agents(runtime)) == 6
    batches, events = projector.stats.batches - before[0], projector.stats.events - before[1]
    assert (batches, events) == (1, 5)


async def test_a_reader_waiting_for_its_writes_ends_the_gathering(
    hub_settings: HubSettings,
) -> None:
    settings = hub_settings.model_copy(
        update={"run_projectors": "always", "embedded_projector_linger_ms": 600_000}
    )
    async with Hub.connect(settings) as hub:
        await hub.registry.register("first")
        await anyio.sleep(0.5)
        unread = await hub.runtime.pool.fetchval("SELECT count(*) FROM registry.agents")
        assert unread == 0  # gathering: nobody waits (without a reader it would take 10 min)
        with anyio.fail_after(30):
            agent = await hub.registry.get("first")  # read-your-writes: waits, and hurries
        assert agent is not None and agent.agent_id == "first"
        # the next write gathers again until its reader comes
        await hub.registry.register("second")
        with anyio.fail_after(30):
            assert await hub.registry.get("second") is not None
