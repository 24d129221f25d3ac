"""``HubCheckpointSaver`` answers the read at the start of a turn from the checkpoint it
wrote last (:mod:`hub.integrations.langgraph.heads`) without waiting for the projection:
every answer must be the one the projection gives once it applied the writes, and a
write by another saver of the thread is read back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, CheckpointTuple
from langgraph.checkpoint.conformance.test_utils import (
    generate_checkpoint,
    generate_config,
    generate_metadata,
)

from hub import Hub
from hub.integrations.langgraph import HubCheckpointSaver
from hub.integrations.langgraph.heads import Heads
from hub.settings import HubSettings
from projections.checkpoints.tables import CheckpointsProjection

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("backend", ["postgres", "kafka"])]


@pytest.fixture
async def hub(hub_settings: HubSettings) -> AsyncIterator[Hub]:
    settings = hub_settings.model_copy(update={"run_projectors": "always"})
    async with Hub(settings) as hub:
        yield hub


@pytest.fixture
def answered(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The threads a head answered for (the test must not pass without any)."""
    threads: list[str] = []
    answer = Heads.answer

    def counted(self: Heads, thread: str, *args: Any) -> Any:
        head = answer(self, thread, *args)
        if head is not None:
            threads.append(thread)
        return head

    monkeypatch.setattr(Heads, "answer", counted)
    return threads


def _config(thread: str, ns: str = "", parent: str | None = None) -> RunnableConfig:
    config = generate_config(thread, checkpoint_ns=ns)
    if parent is not None:
        config["configurable"]["checkpoint_id"] = parent
    return config


async def _put(
    saver: HubCheckpointSaver,
    thread: str,
    values: dict[str, Any],
    versions: ChannelVersions,
    new: list[str],
    *,
    ns: str = "",
    parent: str | None = None,
    checkpoint_id: str | None = None,
    run_id: str | None = None,
) -> str:
    checkpoint = generate_checkpoint(channel_values=values, channel_versions=dict(versions))
    if checkpoint_id is not None:
        checkpoint["id"] = checkpoint_id
    new_versions: ChannelVersions = {ch: versions[ch] for ch in new}
    md = generate_metadata(step=len(values), **({"run_id": run_id} if run_id else {}))
    config = await saver.aput(_config(thread, ns, parent), checkpoint, md, new_versions)
    return str(config["configurable"]["checkpoint_id"])


def _shown(found: CheckpointTuple | None) -> Any:
    if found is None:
        return None
    checkpoint = {k: v for k, v in found.checkpoint.items()}
    return (found.config, checkpoint, found.metadata, found.parent_config, found.pending_writes)


async def _same_as_projected(
    writer: HubCheckpointSaver, reader: HubCheckpointSaver, thread: str, ns: str = ""
) -> None:
    """The writer's answer now equals a saver's with nothing kept, which reads the
    projection once it applied the writer's writes."""
    ours = await writer.aget_tuple(_config(thread, ns))
    projected = await reader.aget_tuple(_config(thread, ns))
    assert _shown(ours) == _shown(projected)


async def test_every_answer_from_the_kept_head_is_the_projections(
    hub: Hub, answered: list[str]
) -> None:
    writer, reader = HubCheckpointSaver(hub), HubCheckpointSaver(hub)
    for ns in ("", "inner"):
        thread = f"t-{ns or 'root'}"
        assert await writer.aget_tuple(_config(thread, ns)) is None  # a known start
        c1 = await _put(writer, thread, {"a": 1, "b": [1]}, {"a": 1, "b": 1}, ["a", "b"], ns=ns)
        await _same_as_projected(writer, reader, thread, ns)
        conf = _config(thread, ns, c1)
        await writer.aput_writes(conf, [("a", 10), ("b", [2])], "task-1")
        await writer.aput_writes(conf, [("a", 99)], "task-1")  # index 0 again: first counts
        await writer.aput_writes(conf, [("__error__", "first")], "task-2")
        await writer.aput_writes(conf, [("__error__", "last")], "task-2")  # special: last counts
        await _same_as_projected(writer, reader, thread, ns)
        # b keeps version 1: its value comes from before, not from this put
        kept_b: ChannelVersions = {"a": 2, "b": 1}
        c2 = await _put(writer, thread, {"a": 2, "b": [1]}, kept_b, ["a"], ns=ns, parent=c1)
        await _same_as_projected(writer, reader, thread, ns)
        # a newer checkpoint's writes appended before the checkpoint itself
        c3 = generate_checkpoint()["id"]
        await writer.aput_writes(_config(thread, ns, c3), [("a", 30)], "task-3")
        await _put(
            writer, thread, {"a": 3, "b": [3]}, {"a": 3, "b": 3}, ["a", "b"],
            ns=ns, parent=c2, checkpoint_id=c3,
        )  # fmt: skip
        await _same_as_projected(writer, reader, thread, ns)
        # an older checkpoint written last: the newest stays the newest
        await _put(writer, thread, {"a": 0}, {"a": 1}, ["a"], ns=ns, checkpoint_id="0" * 36)
        await _same_as_projected(writer, reader, thread, ns)
        # a channel given a new version and no value
        await _put(writer, thread, {"a": 4}, {"a": 4, "b": 4}, ["a", "b"], ns=ns, parent=c3)
        await _same_as_projected(writer, reader, thread, ns)
    assert answered, "no answer came from a kept head"


async def test_copies_deletes_and_prunes_are_read_back(hub: Hub, answered: list[str]) -> None:
    writer, reader = HubCheckpointSaver(hub), HubCheckpointSaver(hub)
    assert await writer.aget_tuple(_config("source")) is None
    c1 = await _put(writer, "source", {"a": 1}, {"a": 1}, ["a"])
    await writer.aput_writes(_config("source", parent=c1), [("a", 5)], "task")
    assert await writer.aget_tuple(_config("target")) is None
    await writer.acopy_thread("source", "target")
    await _same_as_projected(writer, reader, "target")
    await _put(writer, "source", {"a": 2}, {"a": 2}, ["a"], parent=c1)
    await writer.aprune(["source"], strategy="delete")
    assert await writer.aget_tuple(_config("source")) is None
    await _same_as_projected(writer, reader, "target")
    await writer.adelete_thread("target")
    assert await writer.aget_tuple(_config("target")) is None


async def test_a_write_by_another_saver_is_read_back(hub: Hub, answered: list[str]) -> None:
    first, second = HubCheckpointSaver(hub), HubCheckpointSaver(hub)
    assert await first.aget_tuple(_config("shared")) is None
    c1 = await _put(first, "shared", {"a": 1}, {"a": 1}, ["a"])
    assert (await first.aget_tuple(_config("shared"))) is not None
    assert answered == ["shared"]
    c2 = await _put(second, "shared", {"a": 2}, {"a": 2}, ["a"], parent=c1)
    found = await first.aget_tuple(_config("shared"))
    assert found is not None and found.config["configurable"]["checkpoint_id"] == c2
    assert found.checkpoint["channel_values"] == {"a": 2}
    assert answered == ["shared"]  # read back, not answered from the head


async def test_once_applied_the_head_answers_while_nobody_changed_the_thread(
    hub: Hub, answered: list[str]
) -> None:
    """After the projection applied the writer's last write, the head answers only when
    the projection says the thread was not changed since (projectors apart from the
    agent apply writes before the next turn)."""
    writer, reader = HubCheckpointSaver(hub), HubCheckpointSaver(hub)
    assert await writer.aget_tuple(_config("applied")) is None
    c1 = await _put(writer, "applied", {"a": 1, "b": [1]}, {"a": 1, "b": 1}, ["a", "b"])
    await writer.aput_writes(_config("applied", parent=c1), [("a", 7)], "task-1")
    await hub.wait_for_projections()
    await _same_as_projected(writer, reader, "applied")
    assert answered == ["applied"]  # answered from the head, confirmed


async def test_a_write_by_another_process_is_read_back_once_applied(
    hub: Hub, hub_settings: HubSettings, answered: list[str]
) -> None:
    """Another hub (another process: another producer) writes the thread after this
    one: once the projection applied that write, this saver reads it back."""
    writer = HubCheckpointSaver(hub)
    assert await writer.aget_tuple(_config("two-writers")) is None
    c1 = await _put(writer, "two-writers", {"a": 1}, {"a": 1}, ["a"])
    async with Hub(hub_settings.model_copy(update={"run_projectors": "never"})) as other:
        c2 = await _put(
            HubCheckpointSaver(other), "two-writers", {"a": 2}, {"a": 2}, ["a"], parent=c1
        )
        await other.flush()
    await hub.catch_up()  # the other hub's write applied too
    found = await writer.aget_tuple(_config("two-writers"))
    assert found is not None and found.config["configurable"]["checkpoint_id"] == c2
    assert found.checkpoint["channel_values"] == {"a": 2}
    assert answered == []  # read back, not answered from the head
    again = await writer.aget_tuple(_config("two-writers"))  # now known from the read
    assert again is not None and again.checkpoint["channel_values"] == {"a": 2}


async def test_a_thread_changed_before_positions_were_kept_is_read_back(
    hub: Hub, answered: list[str]
) -> None:
    """No row in ``thread_positions`` (a thread last changed before the table existed):
    not known, so the head does not answer once its write is applied."""
    writer = HubCheckpointSaver(hub)
    assert await writer.aget_tuple(_config("old")) is None
    await _put(writer, "old", {"a": 1}, {"a": 1}, ["a"])
    await hub.wait_for_projections()
    schema = CheckpointsProjection().schema
    await hub.context.pool.execute(f"DELETE FROM {schema}.thread_positions")
    found = await writer.aget_tuple(_config("old"))
    assert found is not None and found.checkpoint["channel_values"] == {"a": 1}
    assert answered == []


REWRITES: dict[str, Any] = {
    "copy": lambda hub: hub.checkpoints.copy_thread("elsewhere", "rewritten"),
    "delete": lambda hub: hub.checkpoints.delete_thread("rewritten"),
    "prune": lambda hub: hub.checkpoints.prune(["rewritten"], strategy="keep_latest"),
    "runs": lambda hub: hub.checkpoints.delete_for_runs(["run-1"]),
}
NEWEST_AFTER = {"copy": {"b": 9}, "delete": None, "prune": {"a": 1}, "runs": None}


@pytest.mark.parametrize("rewrite", sorted(REWRITES))
async def test_a_rewrite_by_another_process_is_read_back_once_applied(
    hub: Hub, hub_settings: HubSettings, answered: list[str], rewrite: str
) -> None:
    """A copy into the thread, its deletion, a prune or the deletion of its runs by
    another hub changes what the thread's reads return: read back once applied."""
    writer = HubCheckpointSaver(hub)
    assert await writer.aget_tuple(_config("rewritten")) is None
    await _put(writer, "rewritten", {"a": 1}, {"a": 1}, ["a"], run_id="run-1")
    async with Hub(hub_settings.model_copy(update={"run_projectors": "never"})) as other:
        await _put(HubCheckpointSaver(other), "elsewhere", {"b": 9}, {"b": 1}, ["b"])
        await hub.catch_up()  # delete_for_runs reads which threads hold the run
        await REWRITES[rewrite](other)
        await other.flush()
    await hub.catch_up()
    found = await writer.aget_tuple(_config("rewritten"))
    assert (found and found.checkpoint["channel_values"]) == NEWEST_AFTER[rewrite]
    assert answered == []
