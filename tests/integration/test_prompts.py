"""``hub.prompts`` on each log: versions, labels, rollback, diff, conflicts, and the cache
(TTL, stale-while-revalidate, the last known version on an outage, offline starts)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from hub import ConflictError, Hub, InputError, NotFoundError, StoreError
from hub.infra.ports import TopicPartition
from hub.prompts.cache import PromptCache
from hub.settings import HubSettings
from schemas.events import Topic
from tests.conftest import TEST_PARTITIONS

pytestmark = pytest.mark.anyio

PROMPTS = str(Topic.PROMPTS)


@pytest.fixture
def settings(hub_settings: HubSettings) -> HubSettings:
    return hub_settings.model_copy(update={"run_projectors": "always"})


@pytest.fixture
async def hub(settings: HubSettings) -> AsyncIterator[Hub]:
    async with Hub.connect(settings) as h:
        yield h


async def produced(hub: Hub) -> int:
    tps = [TopicPartition(PROMPTS, p) for p in range(TEST_PARTITIONS)]
    return sum((await hub.runtime.log.end_offsets(tps)).values())


async def test_versions_labels_rollback_and_diff(hub: Hub) -> None:
    p = hub.prompts
    assert await p.ensure_exists("writer", "You are a helpful assistant.", "v1")
    assert not await p.ensure_exists("writer", "You are a helpful assistant.", "v1")
    assert await produced(hub) == 2  # the version, and `current` moved to it
    assert await p.get_current("writer") == "You are a helpful assistant."

    v2 = await p.set("writer", "You are an AMAZING assistant.", "v2", note="Added enthusiasm")
    assert (v2.version, v2.note, v2.labels) == ("v2", "Added enthusiasm", ("current",))
    assert await p.get_current("writer") == "You are an AMAZING assistant."
    await p.set("writer", "Draft.", "v3", make_current=False)
    assert await p.get_current("writer") == "You are an AMAZING assistant."
    await p.move_label("writer", "staging", "v3")
    assert await p.get_current("writer", label="staging") == "Draft."

    versions = await p.list_versions("writer")
    assert [(v.version, v.labels) for v in versions] == [
        ("v1", ()),
        ("v2", ("current",)),
        ("v3", ("staging",)),
    ]
    assert versions[0].sha256 != versions[1].sha256

    moved_at = datetime.now(UTC)
    await p.rollback("writer", "v1")
    assert await p.get_current("writer") == "You are a helpful assistant."
    assert (await p.labels_at("writer", moved_at)) == {"current": "v2", "staging": "v3"}
    assert (await p.labels_at("writer", datetime.now(UTC)))["current"] == "v1"

    diff = await p.diff("writer", "v1", "v2")
    assert "-You are a helpful assistant." in diff and "+You are an AMAZING assistant." in diff
    with pytest.raises(NotFoundError, match="no version 'v9'"):
        await p.diff("writer", "v1", "v9")
    with pytest.raises(NotFoundError, match="no version 'v9'"):
        await p.rollback("writer", "v9")


async def test_conflicts_and_bad_input_produce_nothing(hub: Hub) -> None:
    p = hub.prompts
    await p.ensure_exists("strict", "one", "v1")
    before = await produced(hub)
    with pytest.raises(ConflictError, match="version 'v1' already exists with different content"):
        await p.ensure_exists("strict", "two", "v1")
    with pytest.raises(ConflictError, match="already exists with different content"):
        await p.set("strict", "two", "v1")
    with pytest.raises(InputError, match="content: must not be empty"):
        await p.set("strict", "   ", "v2")
    with pytest.raises(InputError, match="content: expected a string"):
        await p.set("strict", b"bytes", "v2")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="version"):
        await p.set("strict", "ok", " v2")
    with pytest.raises(NotFoundError, match="no label 'current'"):
        await p.get_current("never-created")
    assert await produced(hub) == before
    assert await p.get_current("strict") == "one"


async def test_the_cache_serves_fresh_then_stale_while_refreshing(settings: HubSettings) -> None:
    # The reader runs no projectors: two group members in one process meet a SyncGroup
    # race of librdkafka's mock cluster (members of one group run in separate processes).
    slow = settings.model_copy(update={"prompt_cache_ttl_s": 3600, "run_projectors": "never"})
    async with Hub.connect(slow) as reader, Hub.connect(settings) as writer:
        await writer.prompts.ensure_exists("cached", "first", "v1")
        await writer.wait_for_projections()  # the reader is another client
        assert await reader.prompts.get_current("cached") == "first"
        await writer.prompts.set("cached", "second", "v2")
        await writer.wait_for_projections()
        # fresh within the TTL: no read at all, so the old content
        assert await reader.prompts.get_current("cached") == "first"
        assert await reader.prompts.get_current("cached", force_refresh=True) == "second"

        reader.prompts.cache.ttl_s = 0  # every entry is stale from now on
        await writer.prompts.set("cached", "third", "v3")
        await writer.wait_for_projections()
        assert await reader.prompts.get_current("cached") == "second"  # stale, served at once
        with anyio.fail_after(10):
            while await reader.prompts.get_current("cached") != "third":
                await anyio.sleep(0.02)  # the background refresh lands


async def test_outages_serve_the_last_known_version_and_offline_starts_have_it(
    hub: Hub, settings: HubSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    await hub.prompts.ensure_exists("survivor", "keep me", "v1")
    assert await hub.prompts.get_current("survivor") == "keep me"
    hub.prompts.cache.ttl_s = 0

    async def outage(*args: object, **kwargs: object) -> None:
        raise StoreError("database unreachable", retriable=True)

    monkeypatch.setattr(hub.prompts, "_label", outage)
    assert await hub.prompts.get_current("survivor") == "keep me"
    assert await hub.prompts.get_current("survivor", force_refresh=True) == "keep me"
    with pytest.raises(StoreError):
        await hub.prompts.get_current("unknown-prompt")

    # A new process that cannot reach the hub finds the local copy (seed layout).
    local = PromptCache(60, settings.home)
    entry, fresh = local.peek("survivor", "current")
    assert entry is not None and (entry.content, entry.version, fresh) == ("keep me", "v1", False)
    folder = settings.home / "prompts" / "survivor"
    assert (folder / "v1.txt").read_text() == "keep me"
    assert (folder / "current.txt").read_text() == "keep me"
    assert (folder / "cache_meta.json").is_file()


def test_local_copy_survives_names_with_slashes(tmp_path: Path) -> None:
    cache = PromptCache(60, tmp_path)
    cache.put("team/agent", "current", "v1", "hi", "00")
    again = PromptCache(60, tmp_path)
    entry, _ = again.peek("team/agent", "current")
    assert entry is not None and entry.content == "hi"
    assert [p.name for p in (tmp_path / "prompts").iterdir()] == ["team%2Fagent"]


async def test_which_version_was_current_as_of_a_time_or_offset(hub: Hub) -> None:
    p = hub.prompts
    assert await p.as_of("history", datetime.now(UTC)) is None
    await p.ensure_exists("history", "one", "v1")
    await hub.wait_for_projections()
    t1 = datetime.now(UTC)
    await p.set("history", "two", "v2")
    await hub.wait_for_projections()
    t2 = datetime.now(UTC)
    await p.rollback("history", "v1")
    then = await p.as_of("history", t1)
    assert then is not None and (then.version, then.content) == ("v1", "one")
    later = await p.as_of("history", t2)
    assert later is not None and later.version == "v2"
    now = await p.as_of("history", datetime.now(UTC))
    assert now is not None and now.version == "v1"
    assert await p.as_of("history", 0) is None  # before the first label move
