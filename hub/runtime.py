"""Wiring: the one place that turns settings into connected components.

Nothing connects at import time; :class:`Runtime` opens the database (embedded or not),
the log (Kafka or Postgres) and the codec when started, and closes them when stopped.
"""

from __future__ import annotations

from typing import Any

import anyio
import asyncpg
import structlog

from consumers.archive.archiver import Archiver, ArchiverSettings
from consumers.archive.reader import ArchiveReader
from consumers.bookkeeping import ensure_bookkeeping
from consumers.migrations import migrate
from consumers.positions import PositionWatcher, PostgresPositionStore, SharedPositionReads
from consumers.projector import Projector
from consumers.projector_types import ProjectorSettings
from consumers.readers import WaitingReaders
from hub.infra.blob import open_blob_store
from hub.infra.db import create_pool
from hub.infra.embedded import EmbeddedPostgres
from hub.infra.lifecycle import Lifecycle
from hub.infra.log import open_log
from hub.infra.ports import BlobStore, EventLog, PositionStore, TopicPartition
from hub.infra.producer import EventProducer
from hub.infra.spool import Spool
from hub.settings import HubSettings
from projections import all_projections
from projections.base import Projection
from schemas.codec import Codec

__all__ = ["Runtime"]

log = structlog.get_logger(__name__)

POOL_SIZE = 10  # connections for reads, projectors' first lanes and bookkeeping


class Runtime(Lifecycle):
    """Database pool, event log, codec and producer for one hub process."""

    def __init__(self, settings: HubSettings) -> None:
        self.settings = settings
        self.codec = Codec()
        self.projections: list[Projection[Any]] = all_projections()
        self.embedded: EmbeddedPostgres | None = None
        self.database_url: str | None = settings.database_url
        self._pool: asyncpg.Pool | None = None
        self._log: EventLog | None = None
        self._producer: EventProducer | None = None
        self._blobs: BlobStore | None = None
        self._watcher: PositionWatcher | None = None
        self.position_reads: SharedPositionReads | None = None
        """The projections' positions, read once per change for every waiting reader."""
        self._positions: PositionStore | None = None
        self.spool = Spool.of_home(
            settings.home, dedupe_window_s=settings.dedupe_window_days * 86_400 or None
        )
        self.applied: dict[tuple[str, TopicPartition], int] = {}
        """Positions last read for read-your-writes, and when (``applied_at``)."""
        self.applied_at = 0.0
        self.readers = WaitingReaders()
        """The readers of this process waiting for projections (in-process projectors
        do not linger while one waits)."""

    async def start(self) -> None:
        if self._pool is not None:
            return
        s = self.settings
        try:
            if s.embedded_database:
                self.embedded = EmbeddedPostgres(s.home)
                self.database_url = await self.embedded.start()
            assert self.database_url is not None
            # a projector's lanes beyond the first may each hold one more connection
            extra = (s.projector_lanes - 1) * len(self.projections)
            self._pool = await create_pool(self.database_url, max_size=POOL_SIZE + extra)
            self._positions = PostgresPositionStore(self._pool)
            async with self._pool.acquire() as conn:
                await ensure_bookkeeping(conn)
                for projection in self.projections:  # readers need the views at once
                    await migrate(conn, projection)
            self._log = open_log(s.log_url or self.database_url, **self._log_options())
            await self._log.start()
            await self._log.ensure_topics(s.topic_partitions())
            self._producer = EventProducer(
                self._log, self.codec, max_event_bytes=s.max_event_bytes, spool=self.spool
            )
        except BaseException:
            await self.stop()
            raise
        log.debug("runtime.started", log=self._log.name, embedded=s.embedded_database)

    def _log_options(self) -> dict[str, Any]:
        s = self.settings
        if (s.log_url or "").startswith("kafka://"):
            return {
                "client_id": s.kafka_client_id,
                "replication_factor": s.kafka_replication_factor,
                "linger_ms": s.kafka_linger_ms,
                "request_timeout_ms": s.kafka_request_timeout_ms,
                "session_timeout_ms": s.kafka_session_timeout_ms,
            }
        return {}

    async def stop(self) -> None:
        """Close everything (idempotent; completes even while being cancelled)."""
        log_, self._log = self._log, None
        pool, self._pool = self._pool, None
        embedded, self.embedded = self.embedded, None
        self._producer = None
        blobs, self._blobs = self._blobs, None
        watcher, self._watcher = self._watcher, None
        self.position_reads = None
        with anyio.CancelScope(shield=True):
            if watcher is not None:
                await watcher.stop()
            if blobs is not None:
                await blobs.stop()
            if log_ is not None:
                await log_.stop()
            if pool is not None:
                await pool.close()
            if embedded is not None:
                await embedded.stop()

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "runtime not started"
        return self._pool

    @property
    def positions(self) -> PositionStore:
        """Where each consumer has got to (``hub.positions``)."""
        assert self._positions is not None, "runtime not started"
        return self._positions

    @property
    def log(self) -> EventLog:
        assert self._log is not None, "runtime not started"
        return self._log

    @property
    def producer(self) -> EventProducer:
        assert self._producer is not None, "runtime not started"
        return self._producer

    async def position_watcher(self) -> PositionWatcher:
        """Notifications of stored positions (for read-your-writes), started on first use."""
        if self._watcher is None:
            assert self.database_url is not None, "runtime not started"
            watcher = PositionWatcher(self.database_url)
            await watcher.start()
            self._watcher = watcher
            consumers = [p.consumer for p in self.projections]
            self.position_reads = SharedPositionReads(self.positions, watcher, consumers)
        return self._watcher

    async def blob_store(self) -> BlobStore:
        """The store for binary message content and artifacts (``HUB_ARCHIVE_URL``),
        started on first use."""
        if self._blobs is None:
            s = self.settings
            store = open_blob_store(s.archive, endpoint_url=s.s3_endpoint_url, region=s.s3_region)
            await store.start()
            self._blobs = store
        return self._blobs

    def archiver(self) -> Archiver:
        """The archiver of every topic into the archive store (``HUB_ARCHIVE_URL``)."""
        s = self.settings
        store = open_blob_store(s.archive, endpoint_url=s.s3_endpoint_url, region=s.s3_region)
        return Archiver(
            log=self.log,
            pool=self.pool,
            store=store,
            topics=list(s.topic_partitions()),
            settings=ArchiverSettings(
                max_records=s.archive_max_records,
                max_bytes=s.archive_max_bytes,
                max_age=s.archive_max_age_s,
                batch_size=s.batch_size,
                compression_level=s.archive_compression_level,
                retry_max=s.retry_max_s,
            ),
        )

    def archive_reader(self) -> ArchiveReader:
        """Reads what the archiver stored (``HUB_ARCHIVE_URL``)."""
        s = self.settings
        store = open_blob_store(s.archive, endpoint_url=s.s3_endpoint_url, region=s.s3_region)
        return ArchiveReader(self.pool, store)

    def projector(self, projection: Projection[Any]) -> Projector:
        s = self.settings
        return Projector(
            projection,
            log=self.log,
            pool=self.pool,
            positions=self.positions,
            codec=self.codec,
            archive=self.archive_reader(),
            readers=self.readers,
            settings=ProjectorSettings(
                batch_size=s.batch_size,
                batch_linger=s.batch_linger_ms / 1000,
                idle_linger=s.embedded_projector_linger_ms / 1000,
                lanes=s.projector_lanes,
                retry_max=s.retry_max_s,
                retired_grace=s.retired_grace_s,
                dedupe_window=s.dedupe_window_days * 86_400 or None,
            ),
        )
