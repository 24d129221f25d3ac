"""The floor for a durable LangGraph checkpointer on Postgres, for ``tests.bench.langgraph``.

:class:`FloorSaver` is LangGraph's ``InMemorySaver`` (every read answered from memory)
that also makes each ``aput`` and ``aput_writes`` durable before returning: the
serialized checkpoint, its metadata and its new channel values (or the writes) go in one
row, and the rows of every call waiting at that moment are committed together in one
``INSERT`` (a group commit, as the hub's Postgres log commits its appends). It keeps no
tables to query, forks nothing and projects nothing: it is the least a saver can do that
acknowledges each checkpoint only once it is committed. A saver that does more (the hub
also keeps its read models, the ``messages`` mirror and the log's events) costs more.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
import asyncpg
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata
from langgraph.checkpoint.memory import InMemorySaver

__all__ = ["FloorSaver", "GroupInsert", "create_floor_table"]

CREATE = """
CREATE TABLE IF NOT EXISTS floor_checkpoints (
    thread_id     text NOT NULL,
    checkpoint_id text NOT NULL,
    kind          text NOT NULL,  -- 'checkpoint', or the task id of a call's writes
    data          bytea NOT NULL
)
"""
INSERT = """
INSERT INTO floor_checkpoints
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[])
"""

Row = tuple[str, str, str, bytes]


class Done:
    """A row's end: committed, or ``error``."""

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.error: Exception | None = None


class GroupInsert:
    """Rows committed in one ``INSERT`` per group: whoever arrives while a group is being
    committed goes in the next one. ``add`` returns once its row is committed (or raises
    the group's error)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._waiting: list[tuple[Row, Done]] = []
        self._lock = anyio.Lock()

    async def add(self, row: Row) -> None:
        done = Done()
        self._waiting.append((row, done))
        async with self._lock:  # the group before ours is committed: commit what waits
            if not done.event.is_set():
                group, self._waiting = self._waiting, []
                columns = [list(column) for column in zip(*(r for r, _ in group), strict=True)]
                try:
                    await self._pool.execute(INSERT, *columns)
                except BaseException as exc:  # every caller of the group gets the error
                    error = exc if isinstance(exc, Exception) else RuntimeError("cancelled")
                    for _, failed in group:
                        failed.error = error
                    raise
                finally:
                    for _, ended in group:
                        ended.event.set()
        if done.error is not None:
            raise done.error


def _bytes(value: tuple[str, bytes]) -> bytes:
    return value[1]


class FloorSaver(InMemorySaver):
    """``InMemorySaver`` whose puts return once a row of them is committed."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__()
        self._rows = GroupInsert(pool)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        saved = self.put(config, checkpoint, metadata, new_versions)
        values = checkpoint["channel_values"]
        dumps = self.serde.dumps_typed
        rest = {k: v for k, v in checkpoint.items() if k != "channel_values"}
        data = b"".join(
            [_bytes(dumps(rest)), _bytes(dumps(metadata))]
            + [_bytes(dumps(values[ch])) for ch in new_versions if ch in values]
        )
        conf = config["configurable"]
        await self._rows.add((str(conf["thread_id"]), checkpoint["id"], "checkpoint", data))
        return saved

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self.put_writes(config, writes, task_id, task_path)
        data = b"".join(_bytes(self.serde.dumps_typed(value)) for _, value in writes)
        conf = config["configurable"]
        await self._rows.add((str(conf["thread_id"]), conf["checkpoint_id"], task_id, data))


async def create_floor_table(pool: asyncpg.Pool) -> None:
    await pool.execute(CREATE)
