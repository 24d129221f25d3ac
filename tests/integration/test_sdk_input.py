"""Bad input to the SDK is an InputError naming the field, with nothing produced.

Regression (issue 11, finding 7): control characters and lone surrogates in message text
raised pydantic's ValidationError; huge token counts a SchemaError; ``as_of("yesterday")``
a TypeError; ``runs.start("")`` blamed ``actor``; negative token counts, 100 KB fork
titles and ``token_window(-1)`` were accepted; an oversized message got the generic
event-size error; ``record_run`` of an unknown run finished it before it started."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from hub import Hub, InputError
from hub.settings import HubSettings
from tests.integration.test_sessions import produced

pytestmark = pytest.mark.anyio


@pytest.fixture
async def hub(hub_settings: HubSettings, tmp_path: Path) -> AsyncIterator[Hub]:
    settings = hub_settings.model_copy(update={"run_projectors": "always"})
    async with Hub.connect(settings) as h:
        yield h


async def test_bad_input_names_the_field_and_produces_nothing(hub: Hub) -> None:
    t = await hub.sessions.start_thread(agent_id="a")
    await t.append("user", "hello")
    cases: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("content.text", lambda: t.append("user", "bell \x07 here")),
        ("content.text", lambda: t.append("user", "lone \ud800 surrogate")),
        ("content.1.text", lambda: t.append("user", ["ok", "bad \x1b"])),
        ("usage.input_tokens", lambda: t.append("assistant", "x", usage={"input_tokens": 2**70})),
        ("usage.output_tokens", lambda: t.append("assistant", "x", usage={"output_tokens": -1})),
        ("usage", lambda: t.append("assistant", "x", usage=5)),
        ("content", lambda: t.append("user", "x" * (1 << 20))),
        ("title", lambda: t.fork(title="x" * 100_000)),
        ("title", lambda: t.rename("bad \x00 title")),
        ("at", lambda: t.as_of("yesterday")),  # type: ignore[arg-type]
        ("max_tokens", lambda: t.token_window(-1)),
        ("agent_id", lambda: hub.runs.start("").__aenter__()),
        ("run_id", lambda: hub.runs.start("a", run_id="").__aenter__()),
    ]
    before = await produced(hub)
    for field, call in cases:
        with pytest.raises(InputError) as caught:
            await call()
        assert caught.value.field == field, (field, str(caught.value))
        assert str(caught.value).startswith(f"{field}: ")
    assert await produced(hub) == before


async def test_lookups_of_odd_ids_find_nothing_rather_than_fail(hub: Hub) -> None:
    assert await hub.registry.get("\x00") is None
    assert await hub.runs.get("\x00") is None
    assert await hub.sessions.search("\x00") == []


async def test_a_run_recorded_whole_starts_before_it_ends(hub: Hub) -> None:
    assert await hub.registry.record_run("a", "made-up-run", duration_s=5.0)
    detail = await hub.runs.get("made-up-run")
    assert detail is not None and detail.run.finished_at is not None
    assert (detail.run.finished_at - detail.run.started_at).total_seconds() == pytest.approx(5.0)
