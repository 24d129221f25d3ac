"""``hub.checkpoints``: a framework's checkpoints (LangGraph's), as events on the log.

Values are opaque: the framework serializes them and gets them back byte for byte with
their type tags (:class:`Serialized`). A value too large to travel inline goes to the blob
store (:mod:`hub.checkpoints.records` builds the events). Reads wait until the
projection holds this client's writes to the thread (read your writes).

Thread copies are O(1) (a lineage entry, see :mod:`projections.checkpoints.tables`);
deleting, pruning and deleting runs are events too, so a rebuild does them again.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hub.checkpoints.records import CheckpointRecords, Serialized
from hub.core.inputs import build_event, check_id
from hub.infra.ports import ProducerRecord, TopicPartition
from projections.checkpoints import queries
from schemas.checkpoints import (
    CheckpointRunsDeleted,
    CheckpointsPruned,
    CheckpointThreadCopied,
    CheckpointThreadDeleted,
)
from schemas.errors import InputError
from schemas.events import Topic

if TYPE_CHECKING:
    from hub.core.context import HubContext

__all__ = ["PAGE", "CheckpointsClient", "Serialized", "StoredCheckpoint", "StoredWrite"]

CHECKPOINTS = str(Topic.CHECKPOINTS)
PAGE = 200
"""Checkpoints read per query while listing (memory stays flat on long threads)."""
STRATEGIES = ("keep_latest", "delete")
_SCALARS = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class StoredWrite:
    task_id: str
    task_path: str
    idx: int
    channel: str
    value: Serialized


@dataclass(frozen=True)
class StoredCheckpoint:
    """A checkpoint as stored: its values by channel and its pending writes, in the order
    a framework applies them (task path, task id, index)."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    checkpoint: Serialized
    metadata: Serialized
    metadata_json: dict[str, Any]
    values: dict[str, Serialized] = field(default_factory=dict)
    writes: list[StoredWrite] = field(default_factory=list)


class CheckpointsClient:
    """Checkpoints of framework threads, as ``hub.checkpoints``."""

    def __init__(self, ctx: HubContext) -> None:
        self._ctx = ctx
        self._records = CheckpointRecords(ctx)

    # ── writing ─────────────────────────────────────────────────────────────────────────

    async def save(
        self,
        thread_id: str,
        *,
        checkpoint_id: str,
        checkpoint: Serialized,
        metadata: Serialized,
        checkpoint_ns: str = "",
        parent_checkpoint_id: str | None = None,
        metadata_json: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        channel_versions: Mapping[str, str] | None = None,
        values: Mapping[str, tuple[str, Serialized]] | None = None,
    ) -> None:
        """Store a checkpoint; ``values``: the channels it changed, ``{channel: (version,
        value)}``; ``channel_versions``: every channel's version in it."""
        record = await self._records.saved(
            thread_id,
            checkpoint_id=checkpoint_id,
            checkpoint=checkpoint,
            metadata=metadata,
            checkpoint_ns=checkpoint_ns,
            parent_checkpoint_id=parent_checkpoint_id,
            metadata_json=metadata_json,
            run_id=run_id,
            channel_versions=channel_versions,
            values=values,
        )
        await self._send(record, thread_id)

    async def save_writes(
        self,
        thread_id: str,
        *,
        checkpoint_id: str,
        task_id: str,
        writes: Sequence[tuple[int, str, Serialized]],
        checkpoint_ns: str = "",
        task_path: str = "",
    ) -> None:
        """Store a task's pending writes ``(index, channel, value)``. Per task and index
        the first write stored counts; negative indexes (special channels) are replaced."""
        if not writes:
            return
        record = await self._records.writes(
            thread_id,
            checkpoint_id=checkpoint_id,
            task_id=task_id,
            writes=writes,
            checkpoint_ns=checkpoint_ns,
            task_path=task_path,
        )
        await self._send(record, thread_id)

    async def delete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint and write of a thread (copies made before keep theirs)."""
        await self._emit(self._event(CheckpointThreadDeleted, thread_id))

    async def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy a thread's checkpoints and writes, as they are now, to another thread: one
        event, whatever the thread's length (the copy shares the rows until either
        changes them)."""
        event = self._event(
            CheckpointThreadCopied, source_thread_id, target_thread_id=target_thread_id
        )
        await self._emit(event)

    async def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Keep each thread's latest checkpoint per namespace (``keep_latest``) or none
        (``delete``)."""
        if strategy not in STRATEGIES:
            raise InputError(
                f"strategy: expected one of {', '.join(STRATEGIES)}, got {strategy!r}",
                field="strategy",
            )
        events = [self._event(CheckpointsPruned, t, strategy=strategy) for t in thread_ids]
        if events:
            await self._emit(*events)

    async def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) of these runs, in every thread that
        holds or sees them."""
        runs = [check_id(r, "run_ids") for r in run_ids]
        if not runs:
            return
        await self._settled()
        rows = await self._ctx.pool.fetch(queries.THREADS_OF_RUNS, self._ctx.tenant, runs)
        events = [self._event(CheckpointRunsDeleted, r[0], run_ids=runs) for r in rows]
        if events:
            await self._emit(*events)

    def _event(self, cls: type[Any], thread_id: str, **fields: Any) -> Any:
        return build_event(cls, **self._ctx.envelope(), thread_id=thread_id, **fields)

    async def _emit(self, *events: Any) -> None:
        """Append ``events``; once they are in the log, this hub's reads of their threads
        wait for them (and for nothing written after)."""
        await self._ctx.emit(*events)
        self._written(sorted({t for e in events for t in _threads_of(e)}))

    async def _send(self, record: ProducerRecord, thread_id: str) -> None:
        """Append the record of a thread's event (as :meth:`_emit` does)."""
        await self._ctx.send_records([record])
        self._written([thread_id])

    def _written(self, threads: Sequence[str]) -> None:
        producer, key = self._ctx.producer, self._ctx.tenant.encode()
        producer.after_send(lambda: producer.note_parts(CHECKPOINTS, key, threads))

    async def _settled(self, thread_id: str | None = None) -> None:
        """Read your writes: this hub's checkpoint events of ``thread_id`` (of the whole
        tenant if ``None``, or if the thread's are not known) are applied. A tenant's
        checkpoint events share one partition, in order, so a thread's last write
        applied means its earlier ones are too; other threads' later writes are not
        waited for."""
        key = self._ctx.tenant.encode()
        if thread_id is not None:
            marks = self._ctx.producer.marks_of_part(CHECKPOINTS, key, thread_id)
            if marks is not None:
                if marks:
                    await self._ctx.wait_for(marks)
                return
        await self._ctx.wait_for_key(CHECKPOINTS, key)

    # ── reading ─────────────────────────────────────────────────────────────────────────

    async def changed_since(
        self, thread_id: str, marks: Mapping[TopicPartition, int]
    ) -> bool | None:
        """Whether anyone changed the thread after this hub's write of it that ended at
        ``marks`` (its last, :meth:`EventProducer.marks_of_part`), once the projection
        applied that write; ``None``: not known (read the thread back)."""
        if len(marks) != 1:
            return None
        await self._settled(thread_id)
        pos = await self._ctx.pool.fetchval(queries.LAST_CHANGE, self._ctx.tenant, thread_id)
        if pos is None:
            return None
        (offset,) = marks.values()
        return bool(pos != 2 * offset)

    async def get(
        self, thread_id: str, *, checkpoint_ns: str = "", checkpoint_id: str | None = None
    ) -> StoredCheckpoint | None:
        """A checkpoint (the thread's latest in the namespace if no id is given), with its
        values and pending writes read in one query."""
        await self._settled(thread_id)
        fetch, tenant = self._ctx.pool.fetch, self._ctx.tenant
        if checkpoint_id is None:
            rows = await fetch(queries.WHOLE_NEWEST, tenant, thread_id, checkpoint_ns)
        else:
            rows = await fetch(
                queries.WHOLE_CHECKPOINT, tenant, thread_id, checkpoint_ns, checkpoint_id
            )
        if not rows:
            return None
        row = rows[0]
        values = {
            channel: await self._loaded(type_, data, blob_key)
            for channel, type_, data, blob_key in row["vals"]
        }
        writes = [
            StoredWrite(task_id, task_path, idx, channel, await self._loaded(t, data, blob_key))
            for task_id, task_path, idx, channel, t, data, blob_key in row["writes"]
        ]
        return await self._assembled(thread_id, row, values, writes)

    async def list(
        self,
        thread_id: str | None,
        *,
        checkpoint_ns: str | None = None,
        checkpoint_id: str | None = None,
        before: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[StoredCheckpoint]:
        """Checkpoints newest first: of one thread (every thread if ``None``), one
        namespace (all if ``None``), older than ``before``, whose metadata holds every
        key of ``metadata`` with an equal value; at most ``limit``."""
        if limit is not None and limit <= 0:
            return
        await self._settled(thread_id)
        if thread_id is None:
            threads = [r[0] for r in await self._ctx.pool.fetch(queries.THREADS, self._ctx.tenant)]
        else:
            threads = [thread_id]
        wanted = dict(metadata or {})
        left = limit
        for thread in threads:
            async for found in self._list_thread(
                thread, checkpoint_ns, checkpoint_id, before, wanted, left
            ):
                yield found
                if left is not None:
                    left -= 1
                    if left == 0:
                        return

    async def _list_thread(
        self,
        thread: str,
        ns: str | None,
        checkpoint_id: str | None,
        before: str | None,
        wanted: dict[str, Any],
        limit: int | None,
    ) -> AsyncIterator[StoredCheckpoint]:
        """Page by page (newest first) until a page comes back empty: a page may hold
        fewer checkpoints than asked where copies see the same one twice."""
        exact = all(isinstance(v, _SCALARS) for v in wanted.values())  # jsonb @> is equality
        contains = wanted if wanted and exact else None
        page = PAGE if limit is None or not exact else min(PAGE, limit)
        cursor: tuple[str, str] | None = None
        while True:
            rows = await self._page(thread, ns, checkpoint_id, before, contains, page, cursor)
            if not rows:
                return
            found = [
                r for r in rows if all(_equal(r["metadata_json"], k, v) for k, v in wanted.items())
            ]
            for checkpoint in await self._complete(thread, found):
                yield checkpoint
            if checkpoint_id is not None and ns is not None:
                return  # one checkpoint
            cursor = (rows[-1]["checkpoint_id"], rows[-1]["checkpoint_ns"])

    async def _page(
        self,
        thread: str,
        ns: str | None,
        checkpoint_id: str | None,
        before: str | None,
        contains: dict[str, Any] | None,
        page: int,
        cursor: tuple[str, str] | None,
    ) -> builtins.list[Any]:
        fetch, tenant = self._ctx.pool.fetch, self._ctx.tenant
        rows: builtins.list[Any]
        if ns is None:
            after = cursor or (None, None)
            query = queries.EVERY_NAMESPACE
            rows = await fetch(query, tenant, thread, contains, page, checkpoint_id, before, *after)
        elif checkpoint_id is not None:
            if before is not None and checkpoint_id >= before:
                return []
            rows = await fetch(queries.CHECKPOINT, tenant, thread, ns, checkpoint_id, contains)
        else:
            bounds = [b for b in (before, cursor[0] if cursor else None) if b is not None]
            if bounds:
                rows = await fetch(queries.OLDER, tenant, thread, ns, contains, page, min(bounds))
            else:
                rows = await fetch(queries.NEWEST, tenant, thread, ns, contains, page)
        return rows

    async def _complete(
        self, thread: str, rows: builtins.list[Any]
    ) -> builtins.list[StoredCheckpoint]:
        if not rows:
            return []
        tenant, pool = self._ctx.tenant, self._ctx.pool
        nss, ids = [r["checkpoint_ns"] for r in rows], [r["checkpoint_id"] for r in rows]
        versions = [r["channel_versions"] for r in rows]
        if len(rows) == 1:  # one checkpoint: the queries Postgres keeps one plan for
            value_rows = await pool.fetch(
                queries.VALUES_ONE, tenant, thread, nss[0], ids[0], versions[0]
            )
            write_rows = await pool.fetch(queries.WRITES_ONE, tenant, thread, nss[0], ids[0])
        else:
            value_rows = await pool.fetch(queries.VALUES, tenant, thread, nss, ids, versions)
            write_rows = await pool.fetch(queries.WRITES, tenant, thread, nss, ids)
        values: dict[tuple[str, str], dict[str, Serialized]] = {}
        for v in value_rows:
            value = await self._loaded(v["type"], v["data"], v["blob_key"])
            values.setdefault((v["ns"], v["id"]), {})[v["channel"]] = value
        writes: dict[tuple[str, str], builtins.list[StoredWrite]] = {}
        for w in write_rows:
            value = await self._loaded(w["type"], w["data"], w["blob_key"])
            writes.setdefault((w["checkpoint_ns"], w["checkpoint_id"]), []).append(
                StoredWrite(w["task_id"], w["task_path"], w["idx"], w["channel"], value)
            )
        out = []
        for r in rows:
            key = (r["checkpoint_ns"], r["checkpoint_id"])
            out.append(await self._assembled(thread, r, values.get(key, {}), writes.get(key, [])))
        return out

    async def _assembled(
        self,
        thread: str,
        row: Any,
        values: dict[str, Serialized],
        writes: builtins.list[StoredWrite],
    ) -> StoredCheckpoint:
        """A checkpoint from its row, its values and its writes (in any order)."""
        return StoredCheckpoint(
            thread_id=thread,
            checkpoint_ns=row["checkpoint_ns"],
            checkpoint_id=row["checkpoint_id"],
            parent_checkpoint_id=row["parent_checkpoint_id"],
            checkpoint=await self._loaded(
                row["checkpoint_type"], row["checkpoint"], row["checkpoint_key"]
            ),
            metadata=await self._loaded(row["metadata_type"], row["metadata"], row["metadata_key"]),
            metadata_json=row["metadata_json"],
            values=values,
            writes=sorted(writes, key=lambda w: (w.task_path, w.task_id, w.idx)),
        )

    async def _loaded(self, type_: str, data: bytes | None, blob_key: str | None) -> Serialized:
        if data is None and blob_key is not None:
            data = await (await self._ctx.blob_store()).get(blob_key)
        return Serialized(type_, data or b"")


def _equal(metadata: Mapping[str, Any], key: str, value: Any) -> bool:
    return bool(metadata.get(key) == value)


def _threads_of(event: Any) -> tuple[str, ...]:
    """The threads whose reads an event changes: its own, and a copy's target."""
    target = event.__dict__.get("target_thread_id")  # (getattr: pydantic's slow miss)
    return (event.thread_id,) if target is None else (event.thread_id, target)
