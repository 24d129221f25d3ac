"""Content with NUL (U+0000) and the escape character is stored and read back exactly.

Regression (issue 11, finding 3): Postgres text and jsonb cannot hold NUL, so metadata,
tool-call input, tool results, run input and metric tags containing one were accepted by
the SDK and then dead-lettered by the projection: the write was silently lost."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub import Hub
from hub.settings import HubSettings
from schemas.events import Topic

pytestmark = pytest.mark.anyio

NASTY = "a\x00b \ue000 \ue000\ue001 \x00\x00 \ue000\x00 end"


@pytest.fixture
async def hub(hub_settings: HubSettings, tmp_path: Path) -> AsyncIterator[Hub]:
    settings = hub_settings.model_copy(
        update={"run_projectors": "always", "archive_url": (tmp_path / "blobs").as_uri()}
    )
    async with Hub.connect(settings) as h:
        yield h


async def dead_letters(hub: Hub) -> int:
    tps = [(str(Topic.DLQ), p) for p in range(await hub.runtime.log.partitions_for("agenthub.dlq"))]
    from hub.infra.ports import TopicPartition

    ends = await hub.runtime.log.end_offsets([TopicPartition(*tp) for tp in tps])
    return sum(ends.values())


async def test_nul_in_content_round_trips_through_every_projection(hub: Hub) -> None:
    meta = {"k\x00ey": NASTY, "list": [NASTY, {"in\ue000ner": NASTY}]}

    await hub.registry.register("nul-agent", description="plain", metadata=meta)
    agent = await hub.registry.get("nul-agent")
    assert agent is not None and agent.metadata == meta

    thread = await hub.sessions.start_thread(agent_id="nul-agent", metadata=meta)
    await thread.append(
        "assistant",
        [{"type": "tool_call", "tool_call_id": "c1", "name": "run", "input": meta}],
        metadata=meta,
    )
    await thread.append("tool", [{"type": "tool_result", "tool_call_id": "c1", "content": NASTY}])
    info = await thread.info()
    assert info.metadata == meta
    call, result = await thread.messages()
    assert call.metadata == meta and call.parts[0]["input"] == meta
    assert result.parts[0]["content"] == NASTY

    async with hub.runs.start("nul-agent", input=meta) as run:
        await run.metric("latency", 1.0, tags={"t\x00": NASTY})
    detail = await hub.runs.get(run.run_id)
    assert detail is not None
    assert detail.run.input == meta
    assert detail.metrics[0].tags == {"t\x00": NASTY}

    version = await hub.prompts.set("nul-prompt", NASTY, "v1")
    assert version.content == NASTY
    current = await hub.prompts.get("nul-prompt")
    assert current is not None and current.content == NASTY

    assert await dead_letters(hub) == 0
