"""``hub.checkpoints`` writes: what it takes reads back the same whichever way its event
was encoded (in one pass, or built as a model), and bad input gets an error naming the
field with nothing stored."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hub import Hub
from hub.checkpoints.client import Serialized, StoredWrite
from hub.settings import HubSettings
from schemas.errors import InputError

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("backend", ["postgres"])]

VALUE = Serialized("msgpack", b"\x81\xa1a\x01")


@pytest.fixture
async def hub(hub_settings: HubSettings) -> AsyncIterator[Hub]:
    async with Hub(hub_settings.model_copy(update={"run_projectors": "always"})) as hub:
        yield hub


def _checkpoint(**changed: Any) -> dict[str, Any]:
    return {
        "checkpoint_id": "1f0c-0001",
        "checkpoint": Serialized("msgpack", b"checkpoint"),
        "metadata": Serialized("msgpack", b"metadata"),
        "metadata_json": {"source": "loop", "step": 1, "parents": {}, "note": None},
        "channel_versions": {"messages": "0002.0.5", "other": "0001.0.1"},
        "values": {"messages": ("0002.0.5", VALUE)},
    } | changed


@pytest.mark.parametrize(
    ("thread", "ns"),
    [
        ("thread-plain", ""),  # the one pass encoder's shape
        ("thread-été", "ns\twith a tab"),  # the model's
    ],
)
async def test_a_checkpoint_reads_back_as_saved(hub: Hub, thread: str, ns: str) -> None:
    await hub.checkpoints.save(thread, checkpoint_ns=ns, run_id="run-ü", **_checkpoint())
    await hub.checkpoints.save_writes(
        thread,
        checkpoint_ns=ns,
        checkpoint_id="1f0c-0001",
        task_id="task-1",
        task_path="~pull, agent",
        writes=[(0, "messages", VALUE), (-1, "__error__", Serialized("json", b"{}"))],
    )
    found = await hub.checkpoints.get(thread, checkpoint_ns=ns)
    assert found is not None
    assert (found.checkpoint_id, found.checkpoint_ns) == ("1f0c-0001", ns)
    assert found.checkpoint == Serialized("msgpack", b"checkpoint")
    assert found.metadata == Serialized("msgpack", b"metadata")
    assert found.metadata_json == {"source": "loop", "step": 1, "parents": {}, "note": None}
    assert found.values == {"messages": VALUE}
    assert found.writes == [
        StoredWrite("task-1", "~pull, agent", -1, "__error__", Serialized("json", b"{}")),
        StoredWrite("task-1", "~pull, agent", 0, "messages", VALUE),
    ]


@pytest.mark.parametrize(
    ("changed", "field"),
    [
        ({"checkpoint_id": "bell\x07"}, "checkpoint_id"),
        ({"checkpoint_id": " padded"}, "checkpoint_id"),
        ({"parent_checkpoint_id": "x" * 201}, "parent_checkpoint_id"),
        ({"checkpoint_ns": "nul\x00"}, "checkpoint_ns"),
        ({"metadata_json": {"score": math.nan}}, "metadata_json"),
        ({"channel_versions": {"messages": 5}}, "channel_versions.messages"),
        ({"values": {5: ("1", VALUE)}}, "values.0.channel"),
    ],
)
async def test_a_bad_checkpoint_is_refused_by_name(
    hub: Hub, changed: dict[str, Any], field: str
) -> None:
    with pytest.raises(InputError) as refused:
        await hub.checkpoints.save("thread-bad", **_checkpoint(**changed))
    assert refused.value.field == field
    assert await hub.checkpoints.get("thread-bad") is None


@pytest.mark.parametrize(
    ("changed", "field"),
    [
        ({"task_path": "nul\x00"}, "task_path"),
        ({"writes": [(2**31, "messages", VALUE)]}, "writes.0.idx"),
        ({"writes": [(0, None, VALUE)]}, "writes.0.channel"),
    ],
)
async def test_bad_pending_writes_are_refused_by_name(
    hub: Hub, changed: dict[str, Any], field: str
) -> None:
    await hub.checkpoints.save("thread-w", **_checkpoint())
    fields = {"checkpoint_id": "1f0c-0001", "task_id": "t", "writes": [(0, "messages", VALUE)]}
    with pytest.raises(InputError) as refused:
        await hub.checkpoints.save_writes("thread-w", **(fields | changed))
    assert refused.value.field == field
    found = await hub.checkpoints.get("thread-w")
    assert found is not None and found.writes == []
