"""LangGraph's checkpointer on the hub: ``HubCheckpointSaver``.

Every ``put`` and ``put_writes`` is an event on the log (``hub.checkpoints``), so a
thread's checkpoints survive the process, replay and rebuild like everything else.
Channel values are stored per version, as LangGraph's own savers store them; large ones
go to the blob store by reference. ``copy_thread`` is O(1), whatever the thread's length.

    from hub.integrations.langgraph import HubCheckpointSaver
    graph = builder.compile(checkpointer=HubCheckpointSaver())

A turn's first read (the thread's newest checkpoint) is answered from what the saver
wrote last while the projection has not applied it yet, for a second at most, and after
that while the projection says nobody changed the thread since
(:mod:`hub.integrations.langgraph.heads`); a write of the thread by anyone else makes it
read back. As with LangGraph's own savers, a thread has one writer at a
time: another process's write is seen once the projection applied it.

With no hub given it uses the process's shared hub (``HUB_*`` settings, embedded
defaults). Async methods run on the caller's loop when given a started :class:`Hub` on
it; sync methods need a :class:`SyncHub` (the default) or a call from another thread.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import orjson
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from hub.bridge import SyncHub
from hub.checkpoints.client import (
    CHECKPOINTS,
    CheckpointsClient,
    Serialized,
    StoredCheckpoint,
    StoredWrite,
)
from hub.client import Hub
from hub.integrations.langgraph.heads import Heads, Marks
from hub.integrations.langgraph.messages import CHANNEL, MessageMirror
from hub.integrations.langgraph.runner import HubRunner, OnHub

__all__ = ["HubCheckpointSaver"]

T = TypeVar("T")
EMPTY = "empty"  # a channel given a new version but no value (LangGraph's own tag)


class HubCheckpointSaver(BaseCheckpointSaver[str]):
    """LangGraph checkpoints as events on the hub (``BaseCheckpointSaver``, async and
    sync, with ``copy_thread``, ``prune`` and ``delete_for_runs``)."""

    def __init__(
        self,
        hub: Hub | SyncHub | None = None,
        *,
        serde: SerializerProtocol | None = None,
        messages_to_sessions: bool = True,
        agent_id: str = "langgraph",
    ) -> None:
        """``messages_to_sessions``: mirror a thread's ``messages`` channel into
        ``hub.sessions`` (the hub thread of the same id, started as ``agent_id``'s)."""
        super().__init__(serde=serde)
        self._mirror = MessageMirror(agent_id) if messages_to_sessions else None
        self._runner = HubRunner(hub, type(self).__name__)
        self._heads = Heads()  # each thread's newest checkpoint: read without waiting

    async def _on_hub(self, fn: OnHub[T]) -> T:
        return await self._runner.run(fn)

    def _blocking(self, fn: OnHub[T]) -> T:
        return self._runner.block(fn)

    # ── async API ───────────────────────────────────────────────────────────────────────

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        conf = config["configurable"]
        thread_id, ns = str(conf["thread_id"]), conf.get("checkpoint_ns", "")
        if get_checkpoint_id(config):  # one checkpoint: read back
            found = await self._on_hub(_getting(config))
            return None if found is None else self._tuple(found)

        async def newest(hub: Hub) -> tuple[StoredCheckpoint | None, Marks | None, bool]:
            mark = _mark(hub, thread_id)
            applied = bool(mark) and await hub.context.seen_applied(mark or {})
            head = self._heads.answer(thread_id, ns, mark, applied)
            if head is None and mark and self._heads.holds(thread_id, ns, mark) is not None:
                unchanged = await hub.checkpoints.changed_since(thread_id, mark) is False
                head = self._heads.answer(thread_id, ns, mark, applied, unchanged)
            if head is not None:
                return head.checkpoint, mark, True
            return await _getting(config)(hub), mark, False

        found, mark, known = await self._on_hub(newest)
        result = None if found is None else self._tuple(found)
        if not known and mark is not None:  # read once the thread's last write was applied
            versions = result.checkpoint["channel_versions"] if result is not None else {}
            self._heads.seen(thread_id, ns, found, _strings(versions), mark)
        return result

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        if self._runner.on_loop():  # on the hub's own loop: streamed
            assert self._runner.hub is not None
            hub = self._runner.hub
            async for found in _listing(hub.checkpoints, config, filter, before, limit):
                yield self._tuple(found)
            return
        for found in await self._on_hub(
            lambda h: _collect(h.checkpoints, config, filter, before, limit)
        ):
            yield self._tuple(found)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        conf = config["configurable"]
        thread_id, ns = conf["thread_id"], conf.get("checkpoint_ns", "")
        saved: dict[str, Any] = dict(checkpoint)
        values: dict[str, Any] = saved.pop("channel_values", {})
        md = get_checkpoint_metadata(config, metadata)
        dumps = self.serde.dumps_typed
        new = {
            ch: (str(v), _typed(dumps(values[ch])) if ch in values else Serialized(EMPTY, b""))
            for ch, v in new_versions.items()
        }
        mirrored = values.get(CHANNEL) if ns == "" and CHANNEL in new_versions else None
        versions = _strings(checkpoint["channel_versions"])
        written = StoredCheckpoint(  # as the projection will return it, values aside
            thread_id=str(thread_id),
            checkpoint_ns=ns,
            checkpoint_id=checkpoint["id"],
            parent_checkpoint_id=conf.get("checkpoint_id"),
            checkpoint=_typed(dumps(saved)),
            metadata=_typed(dumps(md)),
            metadata_json=_json_safe(md),
        )

        async def save(hub: Hub) -> Marks | None:
            mirror, messages = self._mirror, []
            if mirror is not None and mirrored is not None:
                messages = await mirror.new_messages(hub, thread_id, mirrored)
            async with hub.context.one_append():  # its new messages and it: one write
                if mirror is not None and messages:
                    await mirror.append(hub, thread_id, messages)
                await hub.checkpoints.save(
                    thread_id,
                    checkpoint_ns=ns,
                    checkpoint_id=checkpoint["id"],
                    parent_checkpoint_id=conf.get("checkpoint_id"),
                    checkpoint=written.checkpoint,
                    metadata=written.metadata,
                    metadata_json=written.metadata_json,
                    run_id=_run_id(md),
                    channel_versions=versions,
                    values=new,
                )
            if mirror is not None and messages:
                mirror.appended(thread_id, messages)
            return _mark(hub, written.thread_id)

        after = await self._on_hub(save)

        def current(channel: str) -> Serialized | None:
            return _typed(dumps(values[channel])) if channel in values else None

        self._heads.saved(written, versions, new, current, after)
        return {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": ns,
                "checkpoint_id": checkpoint["id"],
            }
        }

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        conf = config["configurable"]
        thread_id, ns = str(conf["thread_id"]), conf.get("checkpoint_ns", "")
        rows = [
            (WRITES_IDX_MAP.get(ch, idx), ch, _typed(self.serde.dumps_typed(value)))
            for idx, (ch, value) in enumerate(writes)
        ]

        async def save(hub: Hub) -> Marks | None:
            await hub.checkpoints.save_writes(
                conf["thread_id"],
                checkpoint_ns=ns,
                checkpoint_id=conf["checkpoint_id"],
                task_id=task_id,
                task_path=task_path,
                writes=rows,
            )
            return _mark(hub, thread_id)

        after = await self._on_hub(save)
        stored = [StoredWrite(task_id, task_path, idx, ch, v) for idx, ch, v in rows]
        self._heads.wrote(thread_id, ns, conf["checkpoint_id"], stored, after)

    async def adelete_thread(self, thread_id: str) -> None:
        self._heads.forget([str(thread_id)])
        await self._on_hub(lambda h: h.checkpoints.delete_thread(str(thread_id)))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self._heads.forget([str(target_thread_id)])
        await self._on_hub(
            lambda h: h.checkpoints.copy_thread(str(source_thread_id), str(target_thread_id))
        )

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        self._heads.forget(str(t) for t in thread_ids)
        await self._on_hub(
            lambda h: h.checkpoints.prune([str(t) for t in thread_ids], strategy=strategy)
        )

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        self._heads.forget()
        await self._on_hub(lambda h: h.checkpoints.delete_for_runs([str(r) for r in run_ids]))

    # ── sync API (the same calls, waited for) ───────────────────────────────────────────

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self._run(self.aget_tuple(config))

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        for found in self._blocking(
            lambda h: _collect(h.checkpoints, config, filter, before, limit)
        ):
            yield self._tuple(found)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self._run(self.aput(config, checkpoint, metadata, new_versions))

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self._run(self.aput_writes(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        self._run(self.adelete_thread(thread_id))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self._run(self.acopy_thread(source_thread_id, target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        self._run(self.aprune(thread_ids, strategy=strategy))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        self._run(self.adelete_for_runs(run_ids))

    def _run(self, coro: Awaitable[T]) -> T:
        async def wrapped(_: Hub) -> T:
            return await coro

        return self._blocking(wrapped)

    def get_next_version(self, current: str | None, channel: None = None) -> str:
        """As LangGraph's own savers: a zero-padded counter and a random tail."""
        if current is None:
            number = 0
        elif isinstance(current, int):
            number = current
        else:
            number = int(str(current).split(".")[0])
        return f"{number + 1:032}.{random.random():016}"

    # ── reading back ────────────────────────────────────────────────────────────────────

    def _tuple(self, found: StoredCheckpoint) -> CheckpointTuple:
        loads = self.serde.loads_typed
        checkpoint = loads((found.checkpoint.type, found.checkpoint.data))
        checkpoint["channel_values"] = {
            ch: loads((v.type, v.data)) for ch, v in found.values.items() if v.type != EMPTY
        }
        config: RunnableConfig = {
            "configurable": {
                "thread_id": found.thread_id,
                "checkpoint_ns": found.checkpoint_ns,
                "checkpoint_id": found.checkpoint_id,
            }
        }
        parent: RunnableConfig | None = None
        if found.parent_checkpoint_id:
            parent = {
                "configurable": {
                    "thread_id": found.thread_id,
                    "checkpoint_ns": found.checkpoint_ns,
                    "checkpoint_id": found.parent_checkpoint_id,
                }
            }
        return CheckpointTuple(
            config=config,
            checkpoint=checkpoint,
            metadata=loads((found.metadata.type, found.metadata.data)),
            parent_config=parent,
            pending_writes=[
                (w.task_id, w.channel, loads((w.value.type, w.value.data))) for w in found.writes
            ],
        )


def _getting(config: RunnableConfig) -> OnHub[StoredCheckpoint | None]:
    """What ``get_tuple`` asks of the hub (the checkpoint, or the thread's latest)."""
    conf = config["configurable"]
    return lambda hub: hub.checkpoints.get(
        conf["thread_id"],
        checkpoint_ns=conf.get("checkpoint_ns", ""),
        checkpoint_id=get_checkpoint_id(config),
    )


def _listing(
    client: CheckpointsClient,
    config: RunnableConfig | None,
    filter: dict[str, Any] | None,
    before: RunnableConfig | None,
    limit: int | None,
) -> AsyncIterator[StoredCheckpoint]:
    conf = (config or {}).get("configurable", {})
    return client.list(
        conf.get("thread_id"),
        checkpoint_ns=conf.get("checkpoint_ns"),
        checkpoint_id=conf.get("checkpoint_id"),
        before=get_checkpoint_id(before) if before else None,
        metadata=filter,
        limit=limit,
    )


async def _collect(
    client: CheckpointsClient,
    config: RunnableConfig | None,
    filter: dict[str, Any] | None,
    before: RunnableConfig | None,
    limit: int | None,
) -> list[StoredCheckpoint]:
    return [c async for c in _listing(client, config, filter, before, limit)]


def _mark(hub: Hub, thread_id: str) -> Marks | None:
    """Where the hub last wrote checkpoint events of the thread (``{}``: never; ``None``:
    it does not know)."""
    ctx = hub.context
    return ctx.producer.marks_of_part(CHECKPOINTS, ctx.tenant.encode(), thread_id)


def _strings(versions: Mapping[str, Any]) -> dict[str, str]:
    """Channel versions as the hub stores them."""
    return {str(k): str(v) for k, v in versions.items()}


def _typed(value: tuple[str, bytes]) -> Serialized:
    return Serialized(value[0], value[1])


def _run_id(metadata: CheckpointMetadata) -> str | None:
    run_id = metadata.get("run_id")
    return None if run_id is None else str(run_id)


def _json_safe(metadata: CheckpointMetadata) -> dict[str, Any]:
    """The metadata as JSON (what ``alist``'s filter is matched against)."""
    data = orjson.dumps(metadata, default=repr, option=orjson.OPT_NON_STR_KEYS)
    found: dict[str, Any] = orjson.loads(data)
    return found
