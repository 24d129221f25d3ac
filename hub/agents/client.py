"""``hub.registry``: register, retire and look up agents.

``register`` emits ``AgentRegistered`` for a new (or retired) agent, ``AgentUpdated`` when
something changed, and nothing when nothing changed. Reads come from the ``registry``
projection, after waiting for this client's own writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, computed_field

from hub.core.cursor import CursorList, decode_cursor, encode_cursor
from hub.core.inputs import as_of_point, build_event, check_id, reject_unknown
from projections.registry.queries import AS_OF, GET, LIST, RUN_STATUS, fold_history
from projections.text import load_texts
from schemas.errors import ConflictError, InputError, NotFoundError
from schemas.events import (
    AgentRegistered,
    AgentRetired,
    AgentUpdated,
    Event,
    Provenance,
    RunFinished,
    RunStarted,
    Topic,
)
from schemas.types import utcnow

if TYPE_CHECKING:
    from hub.core.context import HubContext

__all__ = ["Agent", "RegisterResult", "RegistryClient"]


class Agent(BaseModel):
    """An agent as the registry shows it."""

    model_config = ConfigDict(frozen=True)

    agent_id: str
    description: str
    tags: tuple[str, ...]
    metadata: dict[str, Any]
    status: str
    registered_at: datetime
    updated_at: datetime
    retired_at: datetime | None = None
    retired_reason: str | None = None
    revision: int
    run_count: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    last_run_id: str | None = None
    last_run_at: datetime | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def success_rate(self) -> float | None:
        """Succeeded over finished runs (None before any run finished)."""
        finished = self.succeeded + self.failed + self.cancelled
        return self.succeeded / finished if finished else None


def _agent(row: Mapping[str, Any]) -> Agent:
    fields = dict(row)
    fields["tags"] = tuple(load_texts(fields["tags"]))  # text[]: see projections.text
    return Agent(**fields)


class RegisterResult(StrEnum):
    REGISTERED = "registered"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


class RegistryClient:
    """The agent registry, as ``hub.registry``."""

    def __init__(self, ctx: HubContext) -> None:
        self._ctx = ctx

    async def register(
        self,
        agent_id: str,
        *,
        description: str | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        **unknown: Any,
    ) -> RegisterResult:
        """Register an agent, or update what changed. Safe to call on every start.

        ``None`` leaves a field as it is for a known agent (empty for a new one).
        """
        reject_unknown(unknown)
        if isinstance(tags, str):
            raise InputError("tags: expected a list of strings, got a string", field="tags")
        proposed = {
            "agent_id": agent_id,
            "description": "" if description is None else description,
            "tags": () if tags is None else tags,
            "metadata": {} if metadata is None else metadata,
        }
        probe = build_event(AgentRegistered, **self._ctx.envelope(), **proposed)  # validates all
        assert isinstance(probe, AgentRegistered)
        current = await self.get(agent_id)
        fields = {
            "agent_id": probe.agent_id,
            "description": probe.description,
            "tags": probe.tags,
            "metadata": probe.metadata,
        }
        if current is not None:  # None means "leave as it is"
            if description is None:
                fields["description"] = current.description
            if tags is None:
                fields["tags"] = current.tags
            if metadata is None:
                fields["metadata"] = current.metadata
        if current is None or current.status == "retired":
            await self._ctx.emit(build_event(AgentRegistered, **self._ctx.envelope(), **fields))
            return RegisterResult.REGISTERED
        if (fields["description"], fields["tags"], fields["metadata"]) == (
            current.description,
            current.tags,
            current.metadata,
        ):
            return RegisterResult.UNCHANGED
        await self._ctx.emit(build_event(AgentUpdated, **self._ctx.envelope(), **fields))
        return RegisterResult.UPDATED

    async def retire(self, agent_id: str, *, reason: str | None = None, **unknown: Any) -> bool:
        """Retire an agent; False if it is unknown or already retired."""
        reject_unknown(unknown)
        event = build_event(AgentRetired, **self._ctx.envelope(), agent_id=agent_id, reason=reason)
        current = await self.get(agent_id)
        if current is None or current.status == "retired":
            return False
        await self._ctx.emit(event)
        return True

    async def add_tags(self, agent_id: str, *tags: str) -> RegisterResult:
        """Add tags to a registered agent (others are kept)."""
        current = await self._require(agent_id)
        merged = list(current.tags) + [t for t in tags if t not in current.tags]
        return await self.register(agent_id, tags=merged)

    async def remove_tags(self, agent_id: str, *tags: str) -> RegisterResult:
        """Remove tags from a registered agent."""
        current = await self._require(agent_id)
        return await self.register(agent_id, tags=[t for t in current.tags if t not in tags])

    async def _require(self, agent_id: str) -> Agent:
        current = await self.get(agent_id)
        if current is None:
            raise NotFoundError(f"no agent {agent_id!r}")
        return current

    async def record_run(
        self,
        agent_id: str,
        run_id: str,
        *,
        success: bool = True,
        status: str | None = None,
        error: str | None = None,
        duration_s: float = 0.0,
        metadata: Mapping[str, Any] | None = None,
    ) -> bool:
        """Record that ``run_id`` of ``agent_id`` ended (the seed's ``record_run``).

        A run not seen before is recorded whole (RunStarted and RunFinished); a running
        one is finished. False if the run had already finished (nothing is produced)."""
        check_id(agent_id)
        final = status or ("success" if success else "failed")
        if final not in ("success", "failed", "cancelled"):
            raise InputError(
                f"status: must be success, failed or cancelled, not {final!r}", field="status"
            )
        envelope = {
            **self._ctx.envelope(),
            "actor": self._ctx.actor_or(agent_id),
            "correlation_id": run_id,
            "agent_id": agent_id,
            "run_id": run_id,
        }
        ended = utcnow()
        finished = build_event(
            RunFinished,
            **envelope,
            status=final,
            error=error,
            duration_s=duration_s,
            occurred_at=ended,
        )
        await self._ctx.wait_for_projections(topics=[str(Topic.RUNS)])
        row = await self._ctx.pool.fetchrow(RUN_STATUS, self._ctx.tenant, run_id)
        if row is not None and row["agent_id"] != agent_id:
            raise ConflictError(f"run {run_id!r} belongs to agent {row['agent_id']!r}")
        if row is not None and row["status"] != "running":
            return False
        events: list[Event] = []
        if row is None:
            events.append(
                build_event(
                    RunStarted,
                    **envelope,
                    provenance=Provenance(),
                    metadata=dict(metadata or {}),
                    # recorded whole: it started ``duration_s`` before it ended
                    occurred_at=ended - timedelta(seconds=finished.duration_s),
                )
            )
        await self._ctx.emit(*events, finished)
        return True

    async def as_of(self, agent_id: str, at: datetime | int) -> Agent | None:
        """The agent as it was at a time, or before a log offset of its partition (None
        if it was not registered yet). Run statistics are today's."""
        check_id(agent_id)
        when, offset = as_of_point(at)
        await self._ctx.wait_for_projections(topics=[str(Topic.REGISTRY)])
        rows = await self._ctx.pool.fetch(AS_OF, self._ctx.tenant, agent_id, when, offset)
        state = fold_history(agent_id, rows)
        return Agent(**state) if state else None

    async def get(self, agent_id: str) -> Agent | None:
        """The agent, or None; reflects this client's own earlier writes."""
        check_id(agent_id)
        await self._ctx.wait_for_projections(topics=[str(Topic.REGISTRY), str(Topic.RUNS)])
        row = await self._ctx.pool.fetchrow(GET, self._ctx.tenant, agent_id)
        return _agent(row) if row else None

    async def list(
        self,
        *,
        tag: str | None = None,
        status: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        after: str | None = None,
    ) -> CursorList[Agent]:
        """Agents ordered by id, optionally with ``tag`` or ``status``. Pass the result's
        ``next_cursor`` back as ``cursor`` for the next page (``after``, an agent id, is the
        older way to page and is kept for one release)."""
        if status not in (None, "active", "retired"):
            raise InputError(
                f"status: must be 'active' or 'retired', not {status!r}", field="status"
            )
        if not 1 <= limit <= 1000:
            raise InputError("limit: must be between 1 and 1000", field="limit")
        await self._ctx.wait_for_projections(topics=[str(Topic.REGISTRY), str(Topic.RUNS)])
        if cursor is not None:
            (after,) = decode_cursor(cursor, "agents")
        rows = await self._ctx.pool.fetch(LIST, self._ctx.tenant, tag, status, after, limit)
        agents = [_agent(r) for r in rows]
        last = agents[-1].agent_id if len(agents) == limit else None
        return CursorList(agents, encode_cursor("agents", last) if last else None)
