"""The ``Hub`` client: ``async with Hub.connect() as hub: ...``.

With embedded defaults and no ``agent-hub up`` serving the home directory, the client
runs every projector inside its own process (as SQLite needs no server); otherwise it only
produces and reads. ``wait_for_projections()`` gives read-your-writes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import Any

import anyio
import structlog

from consumers.archiver import Archiver
from consumers.positions import partitions_of
from consumers.runner import Projector
from hub.embedded import ServerLock
from hub.lifecycle import Lifecycle
from hub.ports import Position, TopicPartition
from hub.prompts.client import PromptsClient
from hub.registry import RegistryClient
from hub.runs.client import RunsClient
from hub.runtime import Runtime
from hub.settings import HubSettings, load_settings
from hub.threads.client import SessionsClient
from schemas.errors import HubError
from schemas.events import Event

__all__ = ["Hub"]

log = structlog.get_logger(__name__)

POSITIONS = """
SELECT consumer, topic, partition, next_offset FROM hub.positions
WHERE consumer = ANY($1::text[])
"""


class Hub(Lifecycle):
    """A connection to Agent Hub: ``hub.registry``, ``hub.emit``, ``hub.wait_for_projections``."""

    def __init__(self, settings: HubSettings, *, archive: bool = False) -> None:
        self.settings = settings
        self.runtime = Runtime(settings)
        self.registry = RegistryClient(self)
        self.sessions = SessionsClient(self)
        self.runs = RunsClient(self)
        self.prompts = PromptsClient(self)
        self.projectors: list[Projector] = []
        self.archiver: Archiver | None = None
        self._archive = archive
        self._stack: AsyncExitStack | None = None

    @classmethod
    def connect(cls, settings: HubSettings | None = None, **overrides: Any) -> Hub:
        """A hub client from ``settings`` (default: environment and ``.env``).

        Use it as ``async with Hub.connect() as hub``.
        """
        return cls(settings or load_settings(**overrides))

    # ── lifecycle ───────────────────────────────────────────────────────────────────────

    async def start(self) -> None:
        if self._stack is not None:
            return
        stack = AsyncExitStack()
        try:
            await self.runtime.start()
            stack.push_async_callback(self.runtime.stop)
            if self._runs_projectors():
                tg = await stack.enter_async_context(anyio.create_task_group())
                stack.callback(self.stop_projectors)  # runs before the task group exits
                for projection in self.runtime.projections:
                    projector = self.runtime.projector(projection)
                    await tg.start(projector.run)
                    self.projectors.append(projector)
                log.debug("hub.projectors_in_process", count=len(self.projectors))
                try:
                    await self.catch_up()
                except HubError as exc:  # reads may lag; the projectors keep going
                    log.warning("hub.catch_up_incomplete", error=str(exc))
            tg = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(tg.cancel_scope.cancel)
            tg.start_soon(self._forward_spool_forever)
            if self._archive:
                tg = await stack.enter_async_context(anyio.create_task_group())
                stack.callback(self.stop_projectors)
                self.archiver = self.runtime.archiver()
                await tg.start(self.archiver.run)
        except BaseException:
            await stack.aclose()  # Runtime.stop shields its own clean-up
            raise
        self._stack = stack

    def _runs_projectors(self) -> bool:
        mode = self.settings.run_projectors
        if mode != "auto":
            return mode == "always"
        return self.settings.embedded_database and not ServerLock.held(self.settings.home)

    def stop_projectors(self) -> None:
        """Ask in-process projectors (and the archiver) to finish their batch and stop."""
        for projector in self.projectors:
            projector.stop_soon()
        if self.archiver is not None:
            self.archiver.stop_soon()

    async def stop(self) -> None:
        """Stop in-process projectors (after their batch in hand) and disconnect."""
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()  # not shielded: it exits the projectors' task group
        self.projectors = []

    # ── producing ───────────────────────────────────────────────────────────────────────

    async def emit(self, *events: Event) -> list[Position]:
        """Append events to the log (validated, all or nothing); returns their positions."""
        return await self.runtime.producer.emit(events)

    # ── the offline spool ───────────────────────────────────────────────────────────────

    async def sync(self) -> int:
        """Forward what the offline spool holds to the log (in order); returns how many
        events were sent. Raises :class:`LogError` while the log is still unreachable."""
        return await self.runtime.producer.forward_spool()

    async def _forward_spool_forever(self) -> None:
        spool = self.runtime.spool
        while True:
            # First wait: a caller syncing right after start (``agent-hub sync``, the
            # seeds' ``sync_pending()``) forwards the spool itself and gets the count.
            await anyio.sleep(self.settings.spool_retry_s)
            if spool.has_pending():
                try:
                    sent = await self.sync()
                    if sent:
                        log.info("hub.spool_forwarded", events=sent)
                except HubError as exc:
                    if not exc.retriable:
                        raise
                    log.debug("hub.spool_waiting_for_log", error=str(exc))

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

    async def catch_up(self, timeout: float = 60.0) -> None:
        """Wait until every projection has applied everything in the log now (used at
        start when projectors run in this process, so reads see earlier processes' work)."""
        topics = sorted({str(t) for p in self.runtime.projections for t in p.topics})
        partitions = await partitions_of(self.runtime.log, topics)
        ends = await self.runtime.log.end_offsets(partitions)
        await self._wait_for_marks({tp: end - 1 for tp, end in ends.items() if end > 0}, timeout)

    async def _wait_for_marks(self, marks: dict[TopicPartition, int], timeout: float) -> None:
        if not marks:
            return
        needed = {
            (p.consumer, tp): offset
            for p in self.runtime.projections
            for tp, offset in marks.items()
            if tp.topic in p.topics
        }
        if not needed:
            return
        consumers = sorted({c for c, _ in needed})
        deadline = time.monotonic() + timeout
        watcher = await self.runtime.position_watcher()
        while True:
            changed = watcher.changed()  # taken before reading: no change can slip by
            rows = await self.runtime.pool.fetch(POSITIONS, consumers)
            stored = {(r[0], TopicPartition(r[1], r[2])): r[3] for r in rows}
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
