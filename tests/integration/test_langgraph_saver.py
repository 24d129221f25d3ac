"""``HubCheckpointSaver`` beyond LangGraph's conformance suite: copies that share rows with
their source (copy of a copy, then the source pruned, deleted, or a run deleted), values
too large for an event, metadata filters on nested values, and the sync API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import anyio
import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions
from langgraph.checkpoint.conformance.test_utils import (
    generate_checkpoint,
    generate_config,
    generate_metadata,
)

from hub import Hub
from hub.bridge import SyncHub
from hub.integrations.langgraph import HubCheckpointSaver
from hub.settings import HubSettings
from projections.checkpoints import queries
from tests.support.plans import rows_read

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("backend", ["postgres"])]


@pytest.fixture
async def saver(hub_settings: HubSettings) -> AsyncIterator[HubCheckpointSaver]:
    settings = hub_settings.model_copy(update={"run_projectors": "always"})
    async with Hub(settings) as hub:
        yield HubCheckpointSaver(hub)


async def _put(
    saver: HubCheckpointSaver,
    thread: str,
    parent: RunnableConfig | None = None,
    *,
    step: int = 0,
    run_id: str | None = None,
    values: dict[str, Any] | None = None,
    **metadata: Any,
) -> RunnableConfig:
    config = generate_config(thread)
    if parent is not None:
        config["configurable"]["checkpoint_id"] = parent["configurable"]["checkpoint_id"]
    values = values if values is not None else {"step": f"value {step}"}
    versions: ChannelVersions = {k: step + 1 for k in values}
    checkpoint = generate_checkpoint(channel_values=values, channel_versions=versions)
    extra = {"run_id": run_id} if run_id else {}
    md = generate_metadata(step=step, **extra, **metadata)
    return await saver.aput(config, checkpoint, md, versions)


async def _chain(saver: HubCheckpointSaver, thread: str, n: int, **kw: Any) -> list[str]:
    parent = None
    ids = []
    for step in range(n):
        parent = await _put(saver, thread, parent, step=step, **kw)
        await saver.aput_writes(parent, [("ch", f"write {step}")], f"task-{step}")
        ids.append(parent["configurable"]["checkpoint_id"])
    return ids


async def _seen(saver: HubCheckpointSaver, thread: str) -> list[tuple[str, Any, list[Any]]]:
    """Each checkpoint of the thread, newest first: its id, values and writes."""
    return [
        (
            t.checkpoint["id"],
            t.checkpoint["channel_values"],
            [(w[1], w[2]) for w in t.pending_writes or []],
        )
        async for t in saver.alist(generate_config(thread))
    ]


async def test_a_copy_keeps_what_it_saw_whatever_happens_to_its_source(
    saver: HubCheckpointSaver,
) -> None:
    source, copy, copy_of_copy = (str(uuid4()) for _ in range(3))
    await _chain(saver, source, 3)
    seen = await _seen(saver, source)
    await saver.acopy_thread(source, copy)
    await saver.acopy_thread(copy, copy_of_copy)
    assert await _seen(saver, copy) == seen == await _seen(saver, copy_of_copy)

    later = await _put(saver, source, step=7)  # the source goes on: the copies do not see it
    assert len(await _seen(saver, source)) == 4
    assert await _seen(saver, copy) == seen

    await saver.aprune([source], strategy="keep_latest")
    assert [s[0] for s in await _seen(saver, source)] == [later["configurable"]["checkpoint_id"]]
    assert await _seen(saver, copy) == seen == await _seen(saver, copy_of_copy)

    await saver.adelete_thread(source)
    assert await _seen(saver, source) == []
    assert await _seen(saver, copy) == seen == await _seen(saver, copy_of_copy)

    mine = await _put(saver, copy, step=9)  # a copy's own checkpoints are its own
    assert len(await _seen(saver, copy)) == 4
    assert await _seen(saver, copy_of_copy) == seen
    tup = await saver.aget_tuple(generate_config(copy))
    assert tup is not None and tup.config == mine


async def test_a_deleted_source_that_copies_still_see_starts_empty(
    saver: HubCheckpointSaver,
) -> None:
    source, copy = str(uuid4()), str(uuid4())
    await _chain(saver, source, 2)
    seen = await _seen(saver, source)
    await saver.acopy_thread(source, copy)
    await saver.adelete_thread(source)
    fresh = await _put(saver, source, step=5)
    assert [s[0] for s in await _seen(saver, source)] == [fresh["configurable"]["checkpoint_id"]]
    assert await _seen(saver, copy) == seen
    again = str(uuid4())  # a copy made now sees the new checkpoint only
    await saver.acopy_thread(source, again)
    assert await _seen(saver, again) == await _seen(saver, source)


async def test_deleting_a_run_reaches_the_copies_that_see_it(saver: HubCheckpointSaver) -> None:
    source, copy = str(uuid4()), str(uuid4())
    first = await _put(saver, source, step=0, run_id="run-1")
    await saver.aput_writes(first, [("ch", "w")], "task")
    kept = await _put(saver, source, first, step=1, run_id="run-2")
    await saver.acopy_thread(source, copy)
    await saver.adelete_for_runs(["run-1"])
    kept_id = kept["configurable"]["checkpoint_id"]
    first_id = first["configurable"]["checkpoint_id"]
    for thread in (source, copy):
        assert [s[0] for s in await _seen(saver, thread)] == [kept_id]
    assert await saver.aget_tuple(generate_config(copy, checkpoint_id=first_id)) is None


async def test_pruning_a_copy_leaves_its_source_alone(saver: HubCheckpointSaver) -> None:
    source, copy = str(uuid4()), str(uuid4())
    ids = await _chain(saver, source, 3)
    seen = await _seen(saver, source)
    await saver.acopy_thread(source, copy)
    await saver.aprune([copy], strategy="keep_latest")
    assert [s[0] for s in await _seen(saver, copy)] == [ids[-1]]
    assert (await _seen(saver, copy))[0] == seen[0]  # with its values and writes
    assert await _seen(saver, source) == seen


async def test_values_too_large_for_an_event_go_by_reference(saver: HubCheckpointSaver) -> None:
    thread = str(uuid4())
    big = "x" * (3 << 20)  # 3 MiB: more than an event may carry
    stored = await _put(saver, thread, values={"doc": big, "small": "s"})
    await saver.aput_writes(stored, [("doc", big + "!")], "task")
    tup = await saver.aget_tuple(stored)
    assert tup is not None
    assert tup.checkpoint["channel_values"] == {"doc": big, "small": "s"}
    assert tup.pending_writes == [("task", "doc", big + "!")]


async def test_metadata_filters_match_nested_values_exactly(saver: HubCheckpointSaver) -> None:
    thread = str(uuid4())
    await _put(saver, thread, step=0, tags=["a", "b"], who={"name": "x"})
    await _put(saver, thread, step=1, tags=["a"], who={"name": "x", "more": 1})
    await _put(saver, thread, step=2, tags=["a"], who={"name": "x"})
    found = [
        t.metadata["step"]
        async for t in saver.alist(generate_config(thread), filter={"tags": ["a"]}, limit=5)
    ]
    assert found == [2, 1]
    found = [
        t.metadata["step"]
        async for t in saver.alist(generate_config(thread), filter={"who": {"name": "x"}}, limit=1)
    ]
    assert found == [2]
    everywhere = [t.metadata["step"] async for t in saver.alist(None, filter={"step": 1})]
    assert everywhere == [1]


TABLES = ("channel_values", "writes")


async def test_a_read_looks_only_at_the_rows_its_thread_sees(saver: HubCheckpointSaver) -> None:
    """Reading a checkpoint's values and writes does index lookups in the thread and its
    sources: its cost does not grow with the other threads stored (once it scanned every
    value of the tenant)."""
    threads = [str(uuid4()) for _ in range(12)]
    for thread in threads:
        await _chain(saver, thread, 3)
    await saver.acopy_thread(threads[0], "copy-" + threads[0])
    hub = saver._runner.hub
    assert hub is not None
    await hub.wait_for_projections()
    pool, tenant = hub.context.pool, hub.context.tenant
    for thread in (threads[5], "copy-" + threads[0]):
        newest = await pool.fetch(queries.NEWEST, tenant, thread, "", None, 3)
        assert len(newest) == 3
        one = newest[0]
        nss, ids = [r["checkpoint_ns"] for r in newest], [r["checkpoint_id"] for r in newest]
        versions = [r["channel_versions"] for r in newest]
        reads: dict[str, tuple[str, list[Any]]] = {
            "VALUES": (queries.VALUES, [nss, ids, versions]),
            "VALUES_ONE": (queries.VALUES_ONE, ["", one["checkpoint_id"], one["channel_versions"]]),
            "WRITES": (queries.WRITES, [nss, ids]),
            "WRITES_ONE": (queries.WRITES_ONE, ["", one["checkpoint_id"]]),
        }
        for name, (query, args) in reads.items():
            found = await pool.fetch(query, tenant, thread, *args)
            assert found, name
            read = await rows_read(pool, query, [tenant, thread, *args], TABLES)
            assert read <= 3 * len(found), (name, thread, read, len(found))
        wholes: dict[str, tuple[str, list[Any]]] = {
            "WHOLE_NEWEST": (queries.WHOLE_NEWEST, [""]),
            "WHOLE_CHECKPOINT": (queries.WHOLE_CHECKPOINT, ["", one["checkpoint_id"]]),
        }
        for name, (query, args) in wholes.items():
            (whole,) = await pool.fetch(query, tenant, thread, *args)
            assert whole["checkpoint_id"] == one["checkpoint_id"], name
            returned = len(whole["vals"]) + len(whole["writes"])
            assert returned == 2, name  # its one channel value and its one write
            read = await rows_read(pool, query, [tenant, thread, *args], TABLES)
            assert read <= 3 * returned, (name, thread, read, returned)


async def test_a_get_is_one_query_and_returns_what_a_listing_does(
    saver: HubCheckpointSaver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``aget_tuple`` reads a checkpoint, its values and its writes in one round trip, and
    finds what ``alist`` finds: in a thread, in a copy (whose rows are its source's), by
    id and newest, with text the database cannot hold as it is (NUL, our escape)."""
    source, copy = str(uuid4()), str(uuid4())
    odd = "a\x00b\ue000c"
    ids = await _chain(saver, source, 3, values={"step": "v", odd: odd})
    await saver.aput_writes(
        {"configurable": {"thread_id": source, "checkpoint_ns": "", "checkpoint_id": ids[-1]}},
        [(odd, odd + "!")],
        odd,
    )
    await saver.acopy_thread(source, copy)
    mine = await _put(saver, copy, step=9)
    hub = saver._runner.hub
    assert hub is not None
    queried: list[str] = []
    pool = hub.context.pool
    fetch = type(pool).fetch

    async def counted(self: Any, query: str, *args: Any, **kw: Any) -> Any:
        if self is pool and "checkpoints." in query:  # not the read-your-writes wait
            queried.append(query)
        return await fetch(self, query, *args, **kw)

    monkeypatch.setattr(type(pool), "fetch", counted)
    for thread, checkpoint_id in (
        (source, None),
        (source, ids[0]),
        (copy, ids[-1]),
        (copy, None),
        (copy, mine["configurable"]["checkpoint_id"]),
    ):
        config = generate_config(thread)
        if checkpoint_id is not None:
            config["configurable"]["checkpoint_id"] = checkpoint_id
        queried.clear()
        got = await saver.aget_tuple(config)
        assert len(queried) == 1, queried
        listed = [t async for t in saver.alist(config, limit=1)]
        assert got is not None and listed and got == listed[0]
    newest = await saver.aget_tuple(generate_config(source))
    assert newest is not None
    assert newest.checkpoint["channel_values"] == {"step": "v", odd: odd}
    assert (odd, odd, odd + "!") in (newest.pending_writes or [])
    assert await saver.aget_tuple(generate_config(str(uuid4()))) is None
    missing = generate_config(source)
    missing["configurable"]["checkpoint_id"] = "no-such-checkpoint"
    assert await saver.aget_tuple(missing) is None


async def test_a_checkpoint_and_its_new_messages_are_one_append(
    saver: HubCheckpointSaver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ``messages`` mirror and the checkpoint go to the log in one durable write."""
    hub = saver._runner.hub
    assert hub is not None
    producer = hub.context.producer
    appends: list[list[str]] = []
    append = producer.log.append

    async def counted(records: Any) -> Any:
        appends.append([r.topic for r in records])
        return await append(records)

    monkeypatch.setattr(producer.log, "append", counted)
    thread = str(uuid4())
    said: list[BaseMessage] = [HumanMessage("hello", id="m1")]
    first = await _put(saver, thread, values={"messages": said})
    assert len(appends) == 2  # the hub thread started, then the message and the checkpoint
    said = [*said, AIMessage("hi there", id="m2")]
    appends.clear()
    await _put(saver, thread, first, step=1, values={"messages": said})
    assert appends == [["agenthub.sessions", "agenthub.checkpoints"]]
    texts = [m.text for m in await hub.sessions.messages(thread, limit=10)]
    assert texts == ["hello", "hi there"]
    found = await saver.aget_tuple(generate_config(thread))
    assert found is not None and found.checkpoint["channel_values"]["messages"] == said


async def test_the_sync_api_through_a_sync_hub(hub_settings: HubSettings) -> None:
    settings = hub_settings.model_copy(update={"run_projectors": "always"})

    def run() -> None:
        sync = SyncHub(settings).start()
        try:
            saver = HubCheckpointSaver(sync)
            thread = str(uuid4())
            config = generate_config(thread)
            checkpoint = generate_checkpoint(channel_values={"a": 1}, channel_versions={"a": 1})
            stored = saver.put(config, checkpoint, generate_metadata(), {"a": 1})
            saver.put_writes(stored, [("a", 2)], "task")
            tup = saver.get_tuple(generate_config(thread))
            assert tup is not None and tup.checkpoint["channel_values"] == {"a": 1}
            assert tup.pending_writes == [("task", "a", 2)]
            assert [t.config for t in saver.list(generate_config(thread))] == [stored]
            saver.copy_thread(thread, thread + "-copy")
            assert saver.get_tuple(generate_config(thread + "-copy")) is not None
            saver.delete_thread(thread)
            assert saver.get_tuple(generate_config(thread)) is None
        finally:
            sync.stop()

    await anyio.to_thread.run_sync(run)
