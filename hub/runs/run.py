"""A run in progress: ``async with hub.runs.start(agent_id, ...) as run``.

Entering emits RunStarted; leaving emits RunFinished (success, or failed with the error
when the body raised, or cancelled when it was cancelled). Metrics are validated when
recorded (bad input raises at once, nothing produced) and sent in batches; artifacts are
streamed to the blob store first and announced only once stored.
"""

from __future__ import annotations

import math
import mimetypes
import os
import re
import time
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO, Self, cast

import anyio

from hub.core.inputs import build_event
from hub.infra.blob.chunks import CHUNK_SIZE
from hub.runs.models import ArtifactInfo
from schemas.errors import ConflictError, HubError, InputError
from schemas.events import (
    ArtifactStored,
    Event,
    MetricKind,
    MetricsRecorded,
    Provenance,
    RunFinished,
    RunStarted,
    RunStatus,
    TokenUsage,
)
from schemas.ids import uuid7
from schemas.types import MAX_ID_LENGTH, METRIC_NAME_PATTERN, utcnow

if TYPE_CHECKING:
    from hub.core.context import HubContext

__all__ = ["CHUNK_SIZE", "Run", "artifact_store_key", "result_usage"]

METRIC_BATCH = 500
RUN_EXISTS = "SELECT true FROM runs.runs WHERE tenant_id = $1 AND run_id = $2"
METRIC_NAME = re.compile(METRIC_NAME_PATTERN)
ArtifactData = bytes | bytearray | memoryview | str | os.PathLike[str] | BinaryIO


def _kind(kind: str | MetricKind) -> MetricKind:
    try:
        return MetricKind(kind)
    except ValueError:
        allowed = ", ".join(k.value for k in MetricKind)
        raise InputError(f"kind: must be one of {allowed}, not {kind!r}", field="kind") from None


def _status(status: str | RunStatus) -> RunStatus:
    try:
        return RunStatus(status)
    except ValueError:
        allowed = ", ".join(s.value for s in RunStatus)
        raise InputError(
            f"status: must be one of {allowed}, not {status!r}", field="status"
        ) from None


def _artifact_name(name: Any) -> str:
    if not isinstance(name, str) or not name or name in (".", ".."):
        raise InputError("name: must be a file name such as 'report.json'", field="name")
    if "/" in name or "\\" in name:
        raise InputError(f"name: {name!r} must not contain a path separator", field="name")
    return name


def artifact_store_key(tenant: str, key: str) -> str:
    """Where an artifact's bytes live in the blob store."""
    return f"artifacts/{tenant}/{key}"


def result_usage(result: Any) -> tuple[TokenUsage, dict[str, float]]:
    """Token usage and metrics (latency, cycles, tool calls) from a Strands ``AgentResult``."""
    metrics = getattr(result, "metrics", None)
    if metrics is None:
        raise InputError(
            f"agent_result: expected a Strands AgentResult, got {type(result).__name__}",
            field="agent_result",
        )
    usage = dict(getattr(metrics, "accumulated_usage", None) or {})
    latency = dict(getattr(metrics, "accumulated_metrics", None) or {})
    tokens = TokenUsage(
        input_tokens=int(usage.get("inputTokens", 0)),
        output_tokens=int(usage.get("outputTokens", 0)),
        total_tokens=int(usage.get("totalTokens", 0)),
    )
    values: dict[str, float] = {
        "tokens.input": tokens.input_tokens,
        "tokens.output": tokens.output_tokens,
        "tokens.total": tokens.total_tokens,
        "latency_ms": float(latency.get("latencyMs", 0)),
        "cycles": float(getattr(metrics, "cycle_count", 0)),
    }
    for tool, tm in (getattr(metrics, "tool_metrics", None) or {}).items():
        values[f"tool.{tool}.calls"] = float(tm.call_count)
        values[f"tool.{tool}.errors"] = float(tm.error_count)
        values[f"tool.{tool}.time_s"] = float(tm.total_time)
    return tokens, values


async def _chunks_of_stream(stream: BinaryIO) -> AsyncIterator[bytes]:
    while chunk := await anyio.to_thread.run_sync(stream.read, CHUNK_SIZE):
        yield chunk


async def _chunks_of_bytes(data: bytes | bytearray | memoryview) -> AsyncIterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(view), CHUNK_SIZE):
        yield bytes(view[start : start + CHUNK_SIZE])


class Run:
    """One run of an agent; see the module docstring."""

    def __init__(
        self,
        ctx: HubContext,
        agent_id: str,
        run_id: str,
        *,
        input: Any = None,
        provenance: Provenance,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self._ctx = ctx
        self.agent_id = agent_id
        self.run_id = run_id
        self._start_event = build_event(
            RunStarted,
            **self._envelope(),
            input=input,
            provenance=provenance,
            metadata=dict(metadata or {}),
        )
        self._pending: list[tuple[str, float, MetricKind, str | None, dict[str, str], Any]] = []
        self._usage: TokenUsage | None = None
        self._started: float | None = None
        self.status: RunStatus | None = None

    def _envelope(self) -> dict[str, Any]:
        return {
            "tenant_id": self._ctx.tenant,
            "actor": self._ctx.actor_or(self.agent_id),
            "correlation_id": self.run_id,
            "run_id": self.run_id,
            "agent_id": self.agent_id,
        }

    @classmethod
    def attached(
        cls, ctx: HubContext, agent_id: str, run_id: str, *, started_at: datetime, status: str
    ) -> Run:
        """A handle on a run already begun (by another process or request): metrics,
        artifacts and the finish go to it; its duration counts from ``started_at``."""
        run = cls(ctx, agent_id, run_id, provenance=Provenance())
        run._started = time.monotonic() - max(0.0, (utcnow() - started_at).total_seconds())
        run.status = None if status == "running" else _status(status)
        return run

    # ── lifecycle ───────────────────────────────────────────────────────────────────────

    async def begin(self) -> Self:
        """Emit RunStarted (``async with`` does this)."""
        if self._started is None:
            await self._ctx.wait_for_projections(topics=[str(self._start_event.topic)])
            exists = await self._ctx.pool.fetchval(RUN_EXISTS, self._ctx.tenant, self.run_id)
            if exists:
                raise ConflictError(f"run {self.run_id!r} already exists: run ids must be unique")
            await self._ctx.emit(self._start_event)
            self._started = time.monotonic()
        return self

    async def __aenter__(self) -> Self:
        return await self.begin()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.status is not None:
            return
        if exc is None:
            await self.finish()
        elif isinstance(exc, anyio.get_cancelled_exc_class() | KeyboardInterrupt):
            with anyio.CancelScope(shield=True):
                await self.finish(RunStatus.CANCELLED, error=type(exc).__name__)
        else:
            await self.finish(RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")

    async def finish(
        self,
        status: str | RunStatus = RunStatus.SUCCESS,
        *,
        error: str | None = None,
        result: Any = None,
        usage: TokenUsage | Mapping[str, int] | None = None,
    ) -> None:
        """Send pending metrics and emit RunFinished (once). ``usage`` adds tokens to
        those :meth:`record_result` counted."""
        if self._started is None:
            raise HubError(f"run {self.run_id!r} has not begun")
        if self.status is not None:
            raise InputError(f"run {self.run_id!r} already finished ({self.status})")
        checked = _status(status)
        if usage is not None:
            self._add_usage(
                usage if isinstance(usage, TokenUsage) else build_event(TokenUsage, **usage)
            )
        event = build_event(
            RunFinished,
            **self._envelope(),
            status=checked,
            error=error,
            duration_s=max(0.0, time.monotonic() - self._started),
            usage=self._usage,
            result=result,
        )
        await self._ctx.emit(*self._metric_events(), event)
        self._pending.clear()
        self.status = checked

    # ── metrics ─────────────────────────────────────────────────────────────────────────

    async def metric(
        self,
        name: str,
        value: float,
        *,
        kind: str | MetricKind = MetricKind.GAUGE,
        unit: str | None = None,
        tags: Mapping[str, str] | None = None,
        at: datetime | None = None,
    ) -> None:
        """Record a metric (checked now; sent with the next batch or at the end).
        ``at``: when it was measured (default: now)."""
        if self.status is not None:
            raise InputError(f"run {self.run_id!r} already finished ({self.status})")
        if (
            not isinstance(name, str)
            or len(name) > MAX_ID_LENGTH
            or not METRIC_NAME.fullmatch(name)
        ):
            raise InputError(
                f"metric name {name!r}: must start with a letter or '_' and contain only "
                f"letters, digits and '_ . : / -' (at most {MAX_ID_LENGTH} characters)",
                field="name",
            )
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(
                f"{name}: value must be a number, got {type(value).__name__}", field="value"
            )
        if not math.isfinite(value):
            raise InputError(f"{name}: value must be a finite number, not {value}", field="value")
        if unit is not None and not isinstance(unit, str):
            raise InputError(f"{name}: unit must be a string", field="unit")
        if tags and not (
            isinstance(tags, Mapping)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items())
        ):
            raise InputError(f"{name}: tags must map strings to strings", field="tags")
        if at is not None and (not isinstance(at, datetime) or at.utcoffset() is None):
            raise InputError(f"{name}: at must be a timezone-aware datetime", field="at")
        self._pending.append(
            (name, float(value), _kind(kind), unit, dict(tags) if tags else {}, at or utcnow())
        )
        if len(self._pending) >= METRIC_BATCH:
            await self.flush()

    async def set_stats(self, name: str, value: float, *, unit: str | None = None) -> None:
        """A statistic of the run (``total_jobs``, ``success_rate``)."""
        await self.metric(name, value, kind=MetricKind.STAT, unit=unit)

    async def set_timing(self, name: str, seconds: float) -> None:
        """A duration, in seconds."""
        await self.metric(name, seconds, kind=MetricKind.TIMING, unit="s")

    async def record_result(self, agent_result: Any) -> TokenUsage:
        """Tokens, latency, cycles and tool usage from a Strands ``AgentResult``."""
        usage, values = result_usage(agent_result)
        for name, value in values.items():
            kind = MetricKind.TIMING if name.endswith(("_ms", "_s")) else MetricKind.STAT
            await self.metric(name, value, kind=kind)
        self._add_usage(usage)
        return usage

    def _add_usage(self, usage: TokenUsage) -> None:
        previous = self._usage or TokenUsage()
        self._usage = TokenUsage(
            input_tokens=previous.input_tokens + usage.input_tokens,
            output_tokens=previous.output_tokens + usage.output_tokens,
            total_tokens=previous.total_tokens + usage.total_tokens,
        )

    def _metric_events(self) -> list[Event]:
        """The pending metrics as MetricsRecorded events (one per ``METRIC_BATCH``)."""
        events: list[Event] = []
        for start in range(0, len(self._pending), METRIC_BATCH):
            rows = self._pending[start : start + METRIC_BATCH]
            names, values, kinds, units, tags, at = (list(c) for c in zip(*rows, strict=True))
            events.append(
                build_event(
                    MetricsRecorded,
                    **self._envelope(),
                    names=names,
                    values=values,
                    kinds=kinds,
                    units=units,
                    tags=tags,
                    recorded_at=at,
                )
            )
        return events

    async def flush(self) -> None:
        """Send the metrics recorded so far (kept for the next try if that fails)."""
        if self._pending:
            await self._ctx.emit(*self._metric_events())
            self._pending.clear()

    # ── artifacts ───────────────────────────────────────────────────────────────────────

    async def store_artifact(
        self,
        name: str,
        data: ArtifactData | AsyncIterable[bytes],
        *,
        content_type: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> ArtifactInfo:
        """Stream ``data`` (bytes, a path, a binary file or async chunks) to the blob store
        under ``{agent}/{run}/{uuid}/{name}``, then emit ArtifactStored."""
        name = _artifact_name(name)
        if self.status is not None:
            raise InputError(f"run {self.run_id!r} already finished ({self.status})")
        source, guessed = self._source(name, data)
        content_type = content_type or guessed or "application/octet-stream"
        artifact_id = uuid7()
        key = f"{self.agent_id}/{self.run_id}/{artifact_id}/{name}"
        fields = {
            **self._envelope(),
            "artifact_id": artifact_id,
            "name": name,
            "key": key,
            "content_type": content_type,
            "metadata": dict(meta or {}),
        }
        build_event(ArtifactStored, **fields, uri="-", size=0, sha256="-")  # checks meta first
        return await self._put_artifact(source, fields)

    async def _put_artifact(
        self, source: AsyncIterable[bytes] | Path, fields: dict[str, Any]
    ) -> ArtifactInfo:
        """Store an artifact's bytes, then announce them (remote mode uploads instead)."""
        artifact_id, name, key = fields["artifact_id"], fields["name"], fields["key"]
        content_type = fields["content_type"]
        store = await self._ctx.blob_store()
        where = artifact_store_key(self._ctx.tenant, key)
        if isinstance(source, Path):
            stored = await store.put_file(where, source, content_type=content_type)
        else:
            stored = await store.put_stream(where, source, content_type=content_type)
        event = build_event(
            ArtifactStored, **fields, uri=stored.uri, size=stored.size, sha256=stored.sha256
        )
        await self._ctx.emit(event)
        assert isinstance(event, ArtifactStored)
        return ArtifactInfo(
            artifact_id=artifact_id,
            run_id=self.run_id,
            agent_id=self.agent_id,
            name=name,
            key=key,
            uri=stored.uri,
            content_type=content_type,
            size=stored.size,
            sha256=stored.sha256,
            metadata=event.metadata,
            stored_at=event.occurred_at,
        )

    @staticmethod
    def _source(
        name: str, data: ArtifactData | AsyncIterable[bytes]
    ) -> tuple[AsyncIterable[bytes] | Path, str | None]:
        if isinstance(data, bytes | bytearray | memoryview):
            return _chunks_of_bytes(data), mimetypes.guess_type(name)[0]
        if isinstance(data, str | os.PathLike):
            path = Path(data)
            if not path.is_file():
                raise InputError(f"data: no file at {path}", field="data")
            return path, mimetypes.guess_type(path.name)[0]
        if hasattr(data, "read"):
            return _chunks_of_stream(cast(BinaryIO, data)), mimetypes.guess_type(name)[0]
        if isinstance(data, AsyncIterable):
            return data, mimetypes.guess_type(name)[0]
        raise InputError(
            f"data: expected bytes, a path, a binary file or async chunks, "
            f"got {type(data).__name__}",
            field="data",
        )
