"""The context every feature client works in: settings, the producer, the read pool, the
blob store, and read-your-writes. The ``Hub`` client builds one and hands it to each
feature client, so feature clients never import :mod:`hub.client`."""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio
import asyncpg

from consumers.positions import partitions_of
from hub.infra.ports import BlobStore, Position, ProducerRecord, TopicPartition
from hub.infra.producer import EventProducer
from hub.runtime import Runtime
from hub.settings import HubSettings
from schemas.errors import HubError
from schemas.events import Event

__all__ = ["HubContext"]

APPLIED_FRESH_S = 1.0
"""How long positions read for read-your-writes are trusted without reading them again."""
THREADS_REMEMBERED = 100_000
"""How many threads a client remembers writing to (past that: it no longer knows)."""
_NAMES_A_THREAD: dict[type[Event], bool] = {}


def _names_a_thread(cls: type[Event]) -> bool:
    """Whether events of ``cls`` carry a thread and its root (asked once per class: a
    missing attribute of a pydantic model costs an exception)."""
    named = _NAMES_A_THREAD.get(cls)
    if named is None:
        named = _NAMES_A_THREAD[cls] = {"thread_id", "root_thread_id"} <= set(cls.model_fields)
    return named


class HubContext:
    """What a feature client needs of the hub, and nothing else."""

    def __init__(
        self, runtime: Runtime, *, tenant: str | None = None, actor: str | None = None
    ) -> None:
        self.runtime = runtime
        self._tenant = tenant or runtime.settings.tenant
        self._actor = actor or runtime.settings.actor
        self._scoped = actor is not None
        self._written_threads: dict[str, str] = {}  # thread id -> its root
        self._forgot_threads = False

    def scoped(self, tenant: str, actor: str) -> HubContext:
        """The same hub acting for another tenant and actor (the HTTP API gives each
        request the tenant and actor of its key)."""
        return HubContext(self.runtime, tenant=tenant, actor=actor)

    @property
    def settings(self) -> HubSettings:
        return self.runtime.settings

    @property
    def tenant(self) -> str:
        return self._tenant

    @property
    def actor(self) -> str:
        return self._actor

    def actor_or(self, natural: str) -> str:
        """The actor of an event whose natural actor is ``natural`` (a run's agent): that
        one, unless this context acts for a caller (a key), which is then named instead."""
        return self._actor if self._scoped else natural

    def envelope(self) -> dict[str, Any]:
        """The envelope fields of an event this client writes: its tenant and actor."""
        return {"tenant_id": self._tenant, "actor": self._actor}

    @property
    def pool(self) -> asyncpg.Pool:
        """The read models' pool."""
        return self.runtime.pool

    @property
    def producer(self) -> EventProducer:
        return self.runtime.producer

    async def blob_store(self) -> BlobStore:
        return await self.runtime.blob_store()

    async def emit(self, *events: Event) -> list[Position]:
        """Append events to the log (validated, all or nothing); returns their positions."""
        self.note_written(events)
        return await self.runtime.producer.emit(events)

    async def send_records(self, records: Sequence[ProducerRecord]) -> list[Position]:
        """Append records the producer built (:meth:`EventProducer.record`, or one pass
        encoders), all or none; returns their positions."""
        return await self.runtime.producer.send(records)

    def one_append(self) -> AbstractAsyncContextManager[None]:
        """Within the block, what this task writes goes to the log as one append when it
        ends (one durable write; all or none, nothing if the block raises)."""
        return self.runtime.producer.one_append()

    def note_written(self, events: Sequence[Event]) -> None:
        """Remember the threads ``events`` write to, and their families, for read your
        writes (called before they are sent; the HTTP API calls it for records it is sent)."""
        for event in events:
            if not _names_a_thread(type(event)):
                continue
            thread, root = getattr(event, "thread_id", None), getattr(event, "root_thread_id", None)
            if not isinstance(thread, str) or not isinstance(root, str):
                continue
            if len(self._written_threads) >= THREADS_REMEMBERED:
                self._written_threads.clear()
                self._forgot_threads = True
            self._written_threads[thread] = root

    def written_root(self, thread_id: str) -> str | None:
        """The root of ``thread_id`` if this client wrote to it; ``None`` if it did not,
        or (see :attr:`forgot_threads`) no longer knows."""
        return self._written_threads.get(thread_id)

    @property
    def forgot_threads(self) -> bool:
        """Whether this client wrote to more threads than it remembers."""
        return self._forgot_threads

    # ── read your writes ────────────────────────────────────────────────────────────────

    async def wait_for_projections(
        self, timeout: float = 30.0, *, topics: Sequence[str] | None = None
    ) -> None:
        """Wait until every projection has applied everything this client produced."""
        marks = {
            tp: offset
            for tp, offset in self.runtime.producer.high_water.items()
            if topics is None or tp.topic in topics
        }
        await self._wait_for_marks(marks, timeout)

    async def wait_for_key(self, topic: str, key: bytes, timeout: float = 30.0) -> None:
        """Wait until every projection has applied this client's events of one entity (the
        events of ``topic`` keyed ``key``), whatever else it wrote since."""
        marks = self.runtime.producer.marks_of_key(topic, key)
        if marks is None:  # not remembered: everything this client wrote to the topic
            await self.wait_for_projections(timeout, topics=[topic])
        elif marks:
            await self._wait_for_marks(marks, timeout)

    async def catch_up(self, timeout: float = 60.0) -> None:
        """Wait until every projection has applied everything in the log now."""
        topics = sorted({str(t) for p in self.runtime.projections for t in p.topics})
        partitions = await partitions_of(self.runtime.log, topics)
        ends = await self.runtime.log.end_offsets(partitions)
        await self._wait_for_marks({tp: end - 1 for tp, end in ends.items() if end > 0}, timeout)

    async def wait_for(self, marks: dict[TopicPartition, int], timeout: float = 30.0) -> None:
        """Wait until every projection reading a partition in ``marks`` has applied it up
        to and including the offset given (read-your-writes for a remote writer)."""
        await self._wait_for_marks(marks, timeout)

    def _needed(self, marks: dict[TopicPartition, int]) -> dict[tuple[str, TopicPartition], int]:
        """Each projection's offset (``consumer, partition``) that ``marks`` asks of it."""
        return {
            (p.consumer, tp): offset
            for p in self.runtime.projections
            for tp, offset in marks.items()
            if tp.topic in p.topics
        }

    def _seen_applied(self, needed: dict[tuple[str, TopicPartition], int]) -> bool:
        """Whether this process saw every projection of ``needed`` past it a moment ago
        (positions only move forward while live), without asking."""
        runtime = self.runtime
        return time.monotonic() - runtime.applied_at < APPLIED_FRESH_S and all(
            runtime.applied.get(k, 0) > v for k, v in needed.items()
        )

    async def seen_applied(self, marks: dict[TopicPartition, int]) -> bool:
        """Whether the projections are known to have applied ``marks`` already, as far as
        this process heard (from its reads and the positions' notifications, listened to
        from now on); ``False`` when it does not know. Never waits for a projection."""
        needed = self._needed(marks)
        if not needed or self._seen_applied(needed):
            return True
        named = (await self.runtime.position_watcher()).latest
        return all(named.get(k, 0) > v for k, v in needed.items())

    async def _wait_for_marks(self, marks: dict[TopicPartition, int], timeout: float) -> None:
        needed = self._needed(marks)
        if not needed or self._seen_applied(needed):
            return
        runtime = self.runtime
        with runtime.readers.waiting(consumer for consumer, _ in needed):
            await self._wait_until_applied(needed, timeout)

    async def _wait_until_applied(
        self, needed: dict[tuple[str, TopicPartition], int], timeout: float
    ) -> None:
        runtime = self.runtime
        deadline = time.monotonic() + timeout
        watcher = await runtime.position_watcher()
        reads = runtime.position_reads
        assert reads is not None
        while True:
            changed = watcher.changed()  # taken before reading: no change can slip by
            named = watcher.latest
            if all(named.get(k, 0) > v for k, v in needed.items()):
                return  # the notifications of their commits said so: no read needed
            stored = await reads.since(watcher.generation)  # a read started after it
            runtime.applied.update(stored)
            runtime.applied_at = time.monotonic()
            behind = {k: v for k, v in needed.items() if stored.get(k, 0) <= v}
            if not behind:
                return
            if time.monotonic() >= deadline:
                (consumer, tp), offset = next(iter(behind.items()))
                raise HubError(
                    f"projections did not catch up within {timeout:g}s: {consumer} is at "
                    f"{stored.get((consumer, tp), 0)} on {tp}, waiting for offset {offset} "
                    "(is a projector running? see `agent-hub status`)",
                    retriable=True,
                )
            with anyio.move_on_after(min(0.5, max(0.0, deadline - time.monotonic()))):
                await changed.wait()  # a projector stored positions (or poll again in 0.5 s)
