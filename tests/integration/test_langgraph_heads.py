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
) -> str:
    checkpoint = generate_checkpoint(channel_values=values, channel_versions=dict(versions))
    if checkpoint_id is not None:
        checkpoint["id"] = checkpoint_id
    new_versions: ChannelVersions = {ch: versions[ch] for ch in new}
    md = generate_metadata(step=len(values))
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
