"""The context remote feature clients work in: the same ``HubContext`` API, with writes
going to a hub's HTTP API through the :class:`~hub.remote.outbox.Outbox` (and the offline
spool when the hub is away) and no database of its own."""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, nullcontext
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import structlog

from hub.access.local import is_loopback, read_local_key
from hub.core.context import HubContext
from hub.infra.files import make_dirs, write_atomic
from hub.infra.ports import BlobStore, Position, ProducerRecord, TopicPartition
from hub.infra.producer import EventProducer
from hub.remote.api import HubApi
from hub.remote.outbox import HttpSink, Outbox
from hub.runtime import Runtime
from schemas.errors import ConfigError, HubError
from schemas.events import Event

__all__ = ["RemoteContext"]

log = structlog.get_logger(__name__)


def _token(runtime: Runtime) -> str:
    s = runtime.settings
    assert s.url is not None
    token = s.api_key
    if token is None and is_loopback(_host(s.url)):
        token = read_local_key(s.home)  # the key `agent-hub up` made on this machine
    if not token:
        raise ConfigError(
            f"HUB_URL is {s.url} but no HUB_API_KEY is set (make one with `agent-hub keys create`)"
        )
    return token


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname or ""


class RemoteContext(HubContext):
    """A hub reached over HTTP with one API key: its tenant and actor are the key's."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime, tenant="-", actor="-")
        s = runtime.settings
        self._token = _token(runtime)
        self.api = HubApi(s.url or "", self._token, timeout=s.remote_timeout_s)
        self._producer = EventProducer(
            HttpSink(self.api),
            runtime.codec,
            max_event_bytes=s.max_event_bytes,
            spool=runtime.spool,
        )
        self.outbox = Outbox(
            self._producer, linger=s.remote_linger_ms / 1000, max_bytes=s.remote_batch_bytes
        )
        self.key_id = self._token.split("_")[1] if self._token.count("_") >= 2 else "?"
        self.role = "?"

    # ── connecting ──────────────────────────────────────────────────────────────────────

    async def connect(self, stack: AsyncExitStack) -> None:
        """Learn who the key is (or remember it from last time, when the hub is away),
        and start sending."""
        stack.push_async_callback(self.api.close)
        try:
            me = await self.api.get("/v1/whoami")
            self._remember_identity(me)
        except HubError as exc:
            if not exc.retriable:
                raise
            me = self._remembered_identity()
            if me is None:
                raise
            log.warning("remote.hub_unreachable_writes_spool", url=self.api.url, error=str(exc))
        self._tenant, self._actor, self.role = me["tenant"], me["actor"], me["role"]
        self._producer.max_event_bytes = int(
            me.get("max_event_bytes", self._producer.max_event_bytes)
        )
        tg = await stack.enter_async_context(anyio.create_task_group())
        stack.push_async_callback(self._drain)
        self.outbox.attach(tg)

    async def _drain(self) -> None:
        with anyio.CancelScope(shield=True):
            await self.outbox.flush()

    def _identity_file(self) -> Path:
        return self.runtime.settings.home / "remote" / f"{self.key_id}.json"

    def _remember_identity(self, me: dict[str, Any]) -> None:
        try:
            make_dirs(self._identity_file().parent)
            write_atomic(self._identity_file(), json.dumps(me).encode(), durable_name=False)
        except OSError as exc:  # a convenience for offline starts, not a requirement
            log.warning("remote.identity_not_kept", error=str(exc))

    def _remembered_identity(self) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = json.loads(self._identity_file().read_text())
            return found
        except (OSError, ValueError):
            return None

    # ── what differs from direct mode ───────────────────────────────────────────────────

    @property
    def pool(self) -> asyncpg.Pool:
        raise HubError("remote mode (HUB_URL) has no database connection of its own")

    @property
    def producer(self) -> EventProducer:
        return self._producer

    async def blob_store(self) -> BlobStore:
        raise HubError("remote mode (HUB_URL) stores blobs through the hub's API")

    def one_append(self) -> AbstractAsyncContextManager[None]:
        """Remote mode: the writes in the block are sent as they come (the outbox batches
        them with whatever else is queued)."""
        return nullcontext()

    async def emit(self, *events: Event) -> list[Position]:
        """Append events (after everything queued before), all or none; their positions
        (none if the hub was away and they were spooled)."""
        records = [self._producer.record(e) for e in events]
        return await self.outbox.send(records)

    async def send_records(self, records: Sequence[ProducerRecord]) -> list[Position]:
        """Append records (after everything queued before), all or none."""
        return await self.outbox.send(records)

    async def wait_for_projections(
        self, timeout: float = 30.0, *, topics: Sequence[str] | None = None
    ) -> None:
        """Send what is queued; the hub waits for the projections on every read."""
        await self.outbox.flush()

    async def wait_for_key(self, topic: str, key: bytes, timeout: float = 30.0) -> None:
        await self.outbox.flush()

    async def catch_up(self, timeout: float = 60.0) -> None:
        await self.outbox.flush()

    async def wait_for(self, marks: dict[TopicPartition, int], timeout: float = 30.0) -> None:
        await self.outbox.flush()

    async def seen_applied(self, marks: dict[TopicPartition, int]) -> bool:
        """Remote mode: the hub waits for its projections on every read, so a read is
        never answered from what this process wrote (taken as applied: read it back)."""
        return True
