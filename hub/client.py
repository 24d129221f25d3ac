"""The ``Hub`` client: ``async with Hub.connect() as hub: ...``.

With embedded defaults and no ``agent-hub up`` serving the home directory, the client
runs every projector inside its own process (as SQLite needs no server), or in a child
process of its own with ``run_projectors="process"`` (the agent's process keeps its core
to itself); otherwise it only produces and reads. ``wait_for_projections()`` gives
read-your-writes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import Any

import anyio
import structlog

from consumers.archive.archiver import Archiver
from consumers.projector import Projector
from hub.access.keys import KeysClient, Principal
from hub.agents.client import RegistryClient
from hub.checkpoints.client import CheckpointsClient
from hub.core.context import HubContext
from hub.infra.child import ChildProcess
from hub.infra.embedded import EmbeddedPostgres, ServerLock
from hub.infra.lifecycle import Lifecycle
from hub.infra.ports import Position
from hub.memory.client import MemoryClient
from hub.prompts.client import PromptsClient
from hub.remote.agents import RemoteRegistry
from hub.remote.checkpoints import RemoteCheckpoints
from hub.remote.context import RemoteContext
from hub.remote.keys import RemoteKeys
from hub.remote.memory import RemoteMemory
from hub.remote.prompts import RemotePrompts
from hub.remote.runs import RemoteRuns
from hub.remote.sessions import RemoteSessions
from hub.runs.client import RunsClient
from hub.runtime import Runtime
from hub.sessions.client import SessionsClient
from hub.settings import HubSettings, load_settings
from schemas.errors import HubError
from schemas.events import Event

__all__ = ["Hub", "HubScope"]

log = structlog.get_logger(__name__)

EMBEDDED_CHECK_S = 2.0  # how often a hub looks whether its embedded Postgres still runs
MAX_SCOPES = 1024  # per-caller clients a hub keeps (each holds small caches)


class HubScope:
    """The feature clients of one hub acting for one caller: its tenant, its actor."""

    def __init__(self, context: HubContext) -> None:
        self.context = context
        self.registry = RegistryClient(context)
        self.sessions = SessionsClient(context)
        self.runs = RunsClient(context)
        self.prompts = PromptsClient(context)
        self.checkpoints = CheckpointsClient(context)
        self.memory = MemoryClient(context)


class Hub(Lifecycle):
    """A connection to Agent Hub: ``hub.registry``, ``hub.emit``, ``hub.wait_for_projections``."""

    def __init__(self, settings: HubSettings, *, archive: bool = False) -> None:
        self.settings = settings
        self.runtime = Runtime(settings)
        self.remote = settings.url is not None
        """Remote mode (``HUB_URL``): every call goes through that hub's HTTP API."""
        self.context: HubContext
        self.registry: RegistryClient
        self.sessions: SessionsClient
        self.runs: RunsClient
        self.prompts: PromptsClient
        self.keys: KeysClient
        self.checkpoints: CheckpointsClient
        self.memory: MemoryClient
        if self.remote:
            remote = RemoteContext(self.runtime)
            self.context = remote
            self.registry = RemoteRegistry(remote)
            self.sessions = RemoteSessions(remote)
            self.runs = RemoteRuns(remote)
            self.prompts = RemotePrompts(remote)
            self.keys = RemoteKeys(remote)
            self.checkpoints = RemoteCheckpoints(remote)
            self.memory = RemoteMemory(remote)
        else:
            self.context = HubContext(self.runtime)
            self.registry = RegistryClient(self.context)
            self.sessions = SessionsClient(self.context)
            self.runs = RunsClient(self.context)
            self.prompts = PromptsClient(self.context)
            self.keys = KeysClient(self.context, cache_s=settings.api_key_cache_s)
            self.checkpoints = CheckpointsClient(self.context)
            self.memory = MemoryClient(self.context)
        self._scopes: dict[tuple[str, str], HubScope] = {}
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

    def scope(self, principal: Principal) -> HubScope:
        """The feature clients acting for ``principal``: its key's tenant and actor (what
        the HTTP API serves each request with; direct mode only)."""
        if self.remote:
            raise HubError("scope() serves HTTP requests, in direct mode only")
        key = (principal.tenant, principal.actor)
        found = self._scopes.get(key)
        if found is None:
            if len(self._scopes) >= MAX_SCOPES:
                self._scopes.pop(next(iter(self._scopes)))
            found = HubScope(self.context.scoped(principal.tenant, principal.actor))
            self._scopes[key] = found
        return found

    # ── lifecycle ───────────────────────────────────────────────────────────────────────

    async def start(self) -> None:
        if self._stack is not None:
            return
        if self.remote:
            await self._start_remote()
            return
        stack = AsyncExitStack()
        try:
            await self.runtime.start()
            stack.push_async_callback(self.runtime.stop)
            where = self._projectors_where()
            if where == "here":
                tg = await stack.enter_async_context(anyio.create_task_group())
                stack.callback(self.stop_projectors)  # runs before the task group exits
                for projection in self.runtime.projections:
                    projector = self.runtime.projector(projection)
                    await tg.start(projector.run)
                    self.projectors.append(projector)
                log.debug("hub.projectors_in_process", count=len(self.projectors))
            elif where == "process":
                await self._start_projector_process(stack)
            if where is not None:
                try:
                    await self.catch_up()
                except HubError as exc:  # reads may lag; the projectors keep going
                    log.warning("hub.catch_up_incomplete", error=str(exc))
            tg = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(tg.cancel_scope.cancel)
            tg.start_soon(self._forward_spool_forever)
            if self.runtime.embedded is not None:
                tg.start_soon(self._keep_embedded_alive, self.runtime.embedded)
            if self._archive:
                tg = await stack.enter_async_context(anyio.create_task_group())
                stack.callback(self.stop_projectors)
                self.archiver = self.runtime.archiver()
                await tg.start(self.archiver.run)
        except BaseException:
            await stack.aclose()  # Runtime.stop shields its own clean-up
            raise
        self._stack = stack

    async def _start_remote(self) -> None:
        assert isinstance(self.context, RemoteContext)
        stack = AsyncExitStack()
        try:
            await self.context.connect(stack)
            tg = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(tg.cancel_scope.cancel)
            tg.start_soon(self._forward_spool_forever)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack

    def _projectors_where(self) -> str | None:
        """Where this hub's projectors run: ``here`` (in this process), ``process`` (a
        child process it owns) or ``None`` (elsewhere: a server, ``agent-hub project``)."""
        mode = self.settings.run_projectors
        if mode == "auto":
            embedded = self.settings.embedded_database
            return "here" if embedded and not ServerLock.held(self.settings.home) else None
        return {"always": "here", "process": "process", "never": None}[mode]

    def child_env(self) -> dict[str, str]:
        """The environment of a helper process of this hub: its settings and its
        database (the embedded one too)."""
        return self.settings.child_env() | {"HUB_DATABASE_URL": self.runtime.database_url or ""}

    async def _start_projector_process(self, stack: AsyncExitStack) -> None:
        """``agent-hub project`` as a child process of this hub (same settings, same
        database), stopped with it; if it exits on its own, the hub fails."""
        env = self.child_env() | {"PYTHONPATH": _import_path()}
        if "log_level" not in self.settings.model_fields_set:  # the application's output
            env["HUB_LOG_LEVEL"] = "warning"  # is not the place for a helper's routine
        argv = [sys.executable, "-m", "hub.cli", "project", "--lifeline"]
        child = ChildProcess(argv, env, "the projector process")
        tg = await stack.enter_async_context(anyio.create_task_group())
        await child.start()
        stack.push_async_callback(child.stop)  # runs before the task group exits
        tg.start_soon(child.watch)
        log.debug("hub.projectors_in_child_process", pid=child.pid)

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
        return await self.context.emit(*events)

    # ── the offline spool ───────────────────────────────────────────────────────────────

    async def sync(self) -> int:
        """Forward what the offline spool holds to the log (in order); returns how many
        events were sent. Raises :class:`LogError` while the log is still unreachable."""
        await self.flush()
        return await self.context.producer.forward_spool()

    async def flush(self) -> None:
        """Send the writes remote mode has queued (direct mode sends at once)."""
        if isinstance(self.context, RemoteContext):
            await self.context.outbox.flush()

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

    async def _keep_embedded_alive(self, embedded: EmbeddedPostgres) -> None:
        """The embedded Postgres is this process's to run: start it again if it dies."""
        while True:
            await anyio.sleep(EMBEDDED_CHECK_S)
            try:
                await embedded.revive()
            except HubError as exc:  # tried again at the next check
                log.error("hub.embedded_postgres_down", error=str(exc))

    # ── read your writes ────────────────────────────────────────────────────────────────

    async def wait_for_projections(
        self, timeout: float = 30.0, *, topics: Sequence[str] | None = None
    ) -> None:
        """Wait until every projection has applied everything this client produced."""
        await self.context.wait_for_projections(timeout, topics=topics)

    async def catch_up(self, timeout: float = 60.0) -> None:
        """Wait until every projection has applied everything in the log now (used at
        start when projectors run in this process, so reads see earlier processes' work)."""
        await self.context.catch_up(timeout)


def _import_path() -> str:
    """This process's import path, for a child that must import what it can."""
    cwd = os.getcwd()
    return os.pathsep.join(p if os.path.isabs(p) else os.path.join(cwd, p) for p in sys.path)
