"""What the SDK accepts, the hub stores and reads back exactly (issue 11's invariant).

Random input, with NUL, control characters, lone surrogates, astral-plane and combining
characters, the escape characters of ``projections.text``, empty and maximum sizes, huge
and negative numbers, goes through the public SDK for every kind of write. Each call
either raises an InputError naming a field, with nothing produced, or its data is read
back exactly through the SDK and the HTTP API; no event is ever dead-lettered. On both
logs."""

from __future__ import annotations

import itertools
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from httpx import AsyncClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub import Hub, InputError
from hub.http.app import create_app
from hub.infra.ports import TopicPartition
from hub.settings import HubSettings
from schemas.events import TOPICS, Topic
from tests.support.api import api_client, key_of

pytestmark = pytest.mark.anyio

_example = itertools.count()
ODD = ["\x00", "\x01", "\x07", "\x1b", "\x7f", "\ud800", "\ue000", "\ue001", "\u0301", "😀", "\n"]
chars = st.one_of(st.sampled_from(ODD), st.characters(codec="utf-8"))
texts = st.one_of(
    st.text(chars, max_size=30),
    st.sampled_from(["", "x" * 200, "x" * 201, "é\u0301" * 50]),
)
keys = st.text(chars, max_size=8)
values: Any = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=6,
)
objects = st.dictionaries(keys, values, max_size=3)
counts = st.one_of(st.integers(-5, 10**6), st.sampled_from([2**63 - 1, 2**63, 2**70, -(2**70)]))


@pytest.fixture
async def hub(hub_settings: HubSettings, tmp_path: Path) -> AsyncIterator[Hub]:
    settings = hub_settings.model_copy(
        update={"run_projectors": "always", "archive_url": (tmp_path / "blobs").as_uri()}
    )
    async with Hub.connect(settings) as h:
        yield h


@pytest.fixture
async def token(hub: Hub) -> str:
    return await key_of(hub, hub.settings.tenant, "reader")


async def produced(hub: Hub) -> int:
    tps = [
        TopicPartition(str(t), p)
        for t in TOPICS
        for p in range(await hub.runtime.log.partitions_for(str(t)))
    ]
    return sum((await hub.runtime.log.end_offsets(tps)).values())


async def dead_letters(hub: Hub) -> int:
    dlq = str(Topic.DLQ)
    tps = [TopicPartition(dlq, p) for p in range(await hub.runtime.log.partitions_for(dlq))]
    return sum((await hub.runtime.log.end_offsets(tps)).values())


def same_json(a: Any, b: Any) -> bool:
    """The same JSON value. JSON has one kind of number: Postgres ``jsonb`` gives a float
    written with an exponent back without it (``5.6e16`` as ``56000000000000000``), which
    parses as the same float (compared as floats here); nothing else may differ."""
    if isinstance(a, float | int) and isinstance(b, float | int) and float in (type(a), type(b)):
        fa, fb = float(a), float(b)
        return fa == fb or (math.isnan(fa) and math.isnan(fb))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


class Checker:
    """Runs one SDK call: refused with a named field and nothing produced, or kept."""

    def __init__(self, hub: Hub, http: AsyncClient) -> None:
        self.hub, self.http = hub, http

    async def call(self, what: Any) -> tuple[bool, Any]:
        await self.hub.wait_for_projections()
        before = await produced(self.hub)
        try:
            result = await what
        except InputError as exc:
            assert exc.field, f"no field named: {exc}"
            await self.hub.wait_for_projections()
            assert await produced(self.hub) == before, f"refused ({exc}) but produced"
            return False, None
        await self.hub.wait_for_projections()
        return True, result

    async def get(self, path: str, **params: Any) -> Any:
        response = await self.http.get(path, params=params)
        assert response.status_code == 200, (path, response.text)
        return response.json()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    agent=texts,
    description=texts,
    tags=st.lists(texts, max_size=2),
    metadata=objects,
    title=texts,
    text=texts,
    tool_input=objects,
    tool_output=texts,
    usage=st.fixed_dictionaries({"input_tokens": counts, "output_tokens": counts}),
    run_input=values,
    metric=st.floats(allow_nan=True, allow_infinity=True),
    metric_tags=st.dictionaries(keys, texts, max_size=2),
    prompt=texts,
)
async def test_every_accepted_write_reads_back_exactly(
    hub: Hub,
    token: str,
    agent: str,
    description: str,
    tags: list[str],
    metadata: dict[str, Any],
    title: str,
    text: str,
    tool_input: dict[str, Any],
    tool_output: str,
    usage: dict[str, int],
    run_input: Any,
    metric: float,
    metric_tags: dict[str, str],
    prompt: str,
) -> None:
    n = next(_example)
    async with api_client(hub, create_app(hub), token=token) as http:
        c = Checker(hub, http)

        # the registry
        kept, _ = await c.call(
            hub.registry.register(agent, description=description, tags=tags, metadata=metadata)
        )
        if kept:
            got = await hub.registry.get(agent)
            assert got is not None
            assert got.description == description and same_json(got.metadata, metadata)
            assert set(got.tags) == set(tags)
            over_http = await c.get(f"/v1/agents/{quote(agent, safe='')}")
            assert over_http == got.model_dump(mode="json")

        # a conversation
        kept, thread = await c.call(
            hub.sessions.start_thread(agent_id=f"agent-{n}", title=title, metadata=metadata)
        )
        if kept:
            info = await thread.info()
            assert info.title == title and same_json(info.metadata, metadata)
            for content, extra in (
                (text, {"metadata": metadata}),
                (
                    [{"type": "tool_call", "tool_call_id": "c1", "name": "f", "input": tool_input}],
                    {"usage": usage},
                ),
                ([{"type": "tool_result", "tool_call_id": "c1", "content": tool_output}], {}),
            ):
                role = "tool" if isinstance(content, list) and "content" in content[0] else "user"
                kept, _ = await c.call(thread.append(role, content, **extra))
                if not kept:
                    continue
                last = (await thread.messages())[-1]
                if isinstance(content, str):
                    assert last.text == content and same_json(last.metadata, metadata)
                else:
                    assert same_json(last.parts[0], content[0] | last.parts[0]) and all(
                        same_json(last.parts[0][k], v) for k, v in content[0].items()
                    )
                over_http = await c.get(f"/v1/threads/{thread.thread_id}/messages")
                assert over_http["messages"][-1] == last.model_dump(mode="json")

        # a run with a metric
        async def begin() -> Any:  # checks at start(), produces RunStarted on entering
            return await hub.runs.start(
                f"agent-{n}", input=run_input, metadata=metadata
            ).__aenter__()

        kept, run = await c.call(begin())
        if kept:
            measured, _ = await c.call(run.metric("m", metric, tags=metric_tags))
            await run.__aexit__(None, None, None)
            await hub.wait_for_projections()
            detail = await hub.runs.get(run.run_id)
            assert detail is not None and same_json(detail.run.input, run_input)
            assert same_json(detail.run.metadata, metadata)
            assert [(m.value, m.tags) for m in detail.metrics] == (
                [(metric, metric_tags)] if measured else []
            )
            over_http = await c.get(f"/v1/runs/{quote(run.run_id, safe='')}")
            assert over_http["run"] == detail.run.model_dump(mode="json")

        # a prompt
        kept, version = await c.call(hub.prompts.set(f"prompt-{n}", prompt, "v1"))
        if kept:
            assert version.content == prompt
            current = await hub.prompts.get(f"prompt-{n}")
            assert current is not None and current.content == prompt
            assert (await c.get(f"/v1/prompts/prompt-{n}"))["content"] == prompt

        assert await dead_letters(hub) == 0
