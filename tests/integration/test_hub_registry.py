"""``hub.agents.client`` through ``Hub.connect()`` on each log, with projectors in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from hub import Hub, InputError
from hub.agents.client import RegisterResult
from hub.infra.ports import TopicPartition
from hub.settings import HubSettings
from schemas.events import Topic
from tests.conftest import TEST_PARTITIONS

pytestmark = pytest.mark.anyio

ALL = [TopicPartition(str(Topic.REGISTRY), p) for p in range(TEST_PARTITIONS)]


@pytest.fixture
async def hub(hub_settings: HubSettings) -> AsyncIterator[Hub]:
    settings = hub_settings.model_copy(update={"run_projectors": "always", "tenant": "acme"})
    async with Hub.connect(settings) as h:
        yield h


async def produced(hub: Hub) -> int:
    return sum((await hub.runtime.log.end_offsets(ALL)).values())


async def test_register_update_unchanged_and_read_your_writes(hub: Hub) -> None:
    reg = hub.registry
    assert (
        await reg.register("planner", description="plans", tags=["nlp", "prod"])
        == RegisterResult.REGISTERED
    )
    agent = await reg.get("planner")  # no sleep: get waits for our own write
    assert agent is not None
    assert (agent.description, agent.tags, agent.status, agent.revision) == (
        "plans",
        ("nlp", "prod"),
        "active",
        1,
    )
    assert (
        await reg.register("planner", description="plans", tags=["nlp", "prod"])
        == RegisterResult.UNCHANGED
    )
    assert await reg.register("planner") == RegisterResult.UNCHANGED  # None keeps fields
    assert await produced(hub) == 1
    assert await reg.register("planner", tags=["nlp"]) == RegisterResult.UPDATED
    agent = await reg.get("planner")
    assert agent is not None and (agent.description, agent.tags, agent.revision) == (
        "plans",
        ("nlp",),
        2,
    )
    assert await produced(hub) == 2


async def test_list_by_tag_status_and_cursor(hub: Hub) -> None:
    reg = hub.registry
    for i in range(5):
        await reg.register(f"agent-{i}", tags=["even" if i % 2 == 0 else "odd"])
    assert await reg.retire("agent-4", reason="replaced")
    assert not await reg.retire("agent-4")  # already retired: nothing produced
    assert not await reg.retire("ghost")
    assert [a.agent_id for a in await reg.list(tag="even")] == ["agent-0", "agent-2", "agent-4"]
    assert [a.agent_id for a in await reg.list(tag="even", status="active")] == [
        "agent-0",
        "agent-2",
    ]
    first = await reg.list(limit=2)
    rest = await reg.list(limit=10, after=first[-1].agent_id)  # the older way, for one release
    assert [a.agent_id for a in first + rest] == [f"agent-{i}" for i in range(5)]
    assert first.next_cursor is not None and rest.next_cursor is None
    paged = await reg.list(limit=2, cursor=first.next_cursor)
    assert [a.agent_id for a in paged] == ["agent-2", "agent-3"]
    assert [a.agent_id for a in await reg.list(cursor=paged.next_cursor)] == ["agent-4"]
    with pytest.raises(InputError, match="cursor") as bad:
        await reg.list(cursor="not-a-cursor")
    assert bad.value.field == "cursor"
    retired = await reg.get("agent-4")
    assert retired is not None and (retired.status, retired.retired_reason) == (
        "retired",
        "replaced",
    )
    assert await reg.register("agent-4") == RegisterResult.REGISTERED  # back in service
    back = await reg.get("agent-4")
    assert back is not None and back.status == "active" and back.retired_at is None


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"agent_id": ""}, "agent_id"),
        ({"agent_id": "x" * 201}, "agent_id"),
        ({"agent_id": "bad\x07id"}, "agent_id"),
        ({"agent_id": "bad\u202eid"}, "agent_id"),
        ({"agent_id": " padded"}, "agent_id"),
        ({"agent_id": 42}, "agent_id"),
        ({"agent_id": "ok", "descripton": "typo"}, "descripton"),
        ({"agent_id": "ok", "description": 5}, "description"),
        ({"agent_id": "ok", "tags": "nlp"}, "tags"),
        ({"agent_id": "ok", "tags": ["fine", ""]}, "tags.1"),
        ({"agent_id": "ok", "tags": ["fine", 3]}, "tags.1"),
        ({"agent_id": "ok", "metadata": ["not", "a", "dict"]}, "metadata"),
    ],
)
async def test_bad_input_names_the_field_and_produces_nothing(
    hub: Hub, kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(InputError) as err:
        await hub.registry.register(**kwargs)
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}:")
    assert await produced(hub) == 0


async def test_events_over_the_size_limit_are_refused(hub_settings: HubSettings) -> None:
    settings = hub_settings.model_copy(update={"max_event_bytes": 2048})
    async with Hub.connect(settings) as small:
        with pytest.raises(InputError, match="over the 2048-byte limit"):
            await small.registry.register("big", description="x" * 4000)
        assert await produced(small) == 0


async def test_as_of_a_time_or_a_log_offset(hub: Hub) -> None:
    from datetime import UTC, datetime

    reg = hub.registry
    await reg.register("traveller", description="first", tags=["a"])
    await hub.wait_for_projections()
    t1 = datetime.now(UTC)
    await reg.register("traveller", description="second", tags=["a", "b"])
    positions = await hub.emit()  # nothing: just a marker that emit of nothing is fine
    assert positions == []
    await reg.retire("traveller", reason="done")
    await hub.wait_for_projections()
    t2 = datetime.now(UTC)
    await reg.register("traveller", description="back")

    then = await reg.as_of("traveller", t1)
    assert then is not None and (then.description, then.tags, then.status, then.revision) == (
        "first",
        ("a",),
        "active",
        1,
    )
    retired = await reg.as_of("traveller", t2)
    assert retired is not None and (retired.description, retired.status) == ("second", "retired")
    assert retired.retired_reason == "done" and retired.revision == 3
    now = await reg.as_of("traveller", datetime.now(UTC))
    current = await reg.get("traveller")
    assert now is not None and current is not None
    assert (now.description, now.status, now.revision) == ("back", "active", 4)
    assert (current.description, current.status, current.revision) == ("back", "active", 4)
    assert await reg.as_of("traveller", 0) is None  # before its first event
    assert (await reg.as_of("traveller", 10**9)) == now  # past the end: today
    assert await reg.as_of("nobody", datetime.now(UTC)) is None
    with pytest.raises(InputError, match="timezone-aware"):
        await reg.as_of("traveller", datetime(2024, 1, 1))
