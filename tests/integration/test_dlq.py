"""Dead letters on each log: listed, shown, replayed into their projection once the cause
is fixed, and a second replay changes nothing."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import anyio
import pytest

from hub import Hub
from hub.ops.dead_letters import dead_letters, get_dead_letter, replay_dead_letter
from hub.settings import HubSettings
from schemas.events import AgentRegistered, AgentRetired
from tests.conftest import hub_env

pytestmark = pytest.mark.anyio


@pytest.fixture
async def hub(hub_settings: HubSettings) -> AsyncIterator[Hub]:
    settings = hub_settings.model_copy(update={"run_projectors": "always"})
    async with Hub.connect(settings) as h:
        yield h


async def test_fix_the_cause_then_replay_once(hub: Hub, hub_settings: HubSettings) -> None:
    # retiring an agent the registry has never seen is poison: dead-lettered
    tenant = hub.settings.tenant
    await hub.emit(AgentRetired(tenant_id=tenant, actor="ops", agent_id="ghost", reason="gone"))
    await hub.wait_for_projections()
    runtime = hub.runtime
    with anyio.fail_after(30):
        while not [d async for d in dead_letters(runtime)]:
            await anyio.sleep(0.1)
    (dead,) = [d async for d in dead_letters(runtime, "proj_registry_v1")]
    assert (
        dead.letter.error_type == "ProjectionError"
        and "unknown agent 'ghost'" in dead.letter.reason
    )
    assert isinstance(dead.event, AgentRetired) and not dead.replayed
    assert [d async for d in dead_letters(runtime, "proj_sessions_v1")] == []
    shown = await get_dead_letter(runtime, dead.id)
    assert shown.letter == dead.letter

    still = await replay_dead_letter(runtime, dead)  # the cause is not fixed yet
    assert still.outcome == "failed" and "unknown agent 'ghost'" in still.detail
    assert (await get_dead_letter(runtime, dead.id)).replayed is False

    await hub.registry.register("ghost", description="it exists after all")  # the fix
    await hub.wait_for_projections()
    applied = await replay_dead_letter(runtime, dead)
    assert applied.outcome == "requeued", applied.detail
    await hub.wait_for_projections()  # the original is back on its topic, in order
    agent = await hub.registry.get("ghost")
    assert agent is not None and (agent.status, agent.retired_reason) == ("retired", "gone")
    assert agent.revision == 2

    again = await replay_dead_letter(runtime, await get_dead_letter(runtime, dead.id))
    assert again.outcome == "already_replayed"
    agent = await hub.registry.get("ghost")
    assert agent is not None and agent.revision == 2  # no further effect

    # the CLI shows it replayed, and --all has nothing left to do
    env = hub_env(hub_settings) | {"HUB_LOG_LEVEL": "warning"}
    listed = await anyio.run_process([sys.executable, "-m", "hub.cli", "dlq", "list"], env=env)
    assert listed.stdout.decode().startswith(f"{dead.id}\treplayed\tproj_registry_v1")
    shown_cli = await anyio.run_process(
        [sys.executable, "-m", "hub.cli", "dlq", "show", dead.id], env=env
    )
    assert '"event_type": "AgentRetired"' in shown_cli.stdout.decode()
    done = await anyio.run_process(
        [sys.executable, "-m", "hub.cli", "dlq", "replay", "--all"], env=env
    )
    assert done.stdout.decode() == ""
    verified = await anyio.run_process(
        [sys.executable, "-m", "hub.cli", "verify", "registry"], env=env
    )
    lines = verified.stdout.decode().splitlines()
    assert [line.split("\t")[:3] for line in lines] == [
        ["agent_history", "2", "same"],
        ["agents", "1", "same"],
    ]
    # the verify's rebuild met the poison again: skipped, without a second dead letter
    assert [d.id async for d in dead_letters(runtime)] == [dead.id]
    rebuilt = await anyio.run_process(
        [sys.executable, "-m", "hub.cli", "rebuild", "registry", "--grace", "0"], env=env
    )
    assert "rebuilt from 3 events" in rebuilt.stdout.decode()
    assert [d.id async for d in dead_letters(runtime)] == [dead.id]
    agent = await hub.registry.get("ghost")
    assert agent is not None and (agent.status, agent.revision) == ("retired", 2)
    bad = await anyio.run_process(
        [sys.executable, "-m", "hub.cli", "dlq", "show", "nope"], env=env, check=False
    )
    assert bad.returncode == 1 and "is not a dead-letter id" in bad.stderr.decode()


async def test_an_unknown_registration_is_not_a_dead_letter(hub: Hub) -> None:
    await hub.emit(AgentRegistered(tenant_id=hub.settings.tenant, actor="t", agent_id="fine"))
    await hub.wait_for_projections()
    assert [d async for d in dead_letters(hub.runtime)] == []


async def test_a_dead_letter_applied_since_is_no_longer_pending(hub: Hub) -> None:
    """Regression (issue 11, finding 8): ``dlq replay`` said already_applied while
    ``dlq list`` kept listing the dead letter as pending."""
    tenant = hub.settings.tenant
    poison = AgentRetired(tenant_id=tenant, actor="ops", agent_id="late", reason="gone")
    await hub.emit(poison)
    runtime = hub.runtime
    with anyio.fail_after(30):
        while not [d async for d in dead_letters(runtime, "proj_registry_v1")]:
            await anyio.sleep(0.1)
    await hub.registry.register("late")
    await hub.emit(poison)  # the same event again, now applicable: applied
    await hub.wait_for_projections()
    (dead,) = [d async for d in dead_letters(runtime, "proj_registry_v1")]
    result = await replay_dead_letter(runtime, dead)
    assert result.outcome == "already_applied"
    (after,) = [d async for d in dead_letters(runtime, "proj_registry_v1")]
    assert after.replayed  # listed as handled, and `replay --all` leaves it alone
