"""``hub.registry``: register, retire and look up agents.

``register`` emits ``AgentRegistered`` for a new (or retired) agent, ``AgentUpdated`` when
something changed, and nothing when nothing changed. Reads come from the ``registry``
projection, after waiting for this client's own writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, computed_field
from pydantic import ValidationError as PydanticValidationError

from schemas.codec import pydantic_error_field
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
from schemas.types import MAX_ID_LENGTH

if TYPE_CHECKING:
    from hub.client import Hub

__all__ = [
    "Agent",
    "AgentRegistry",
    "RegisterResult",
    "RegistryClient",
    "as_of_point",
    "build_event",
]

_AGENT = """
SELECT a.agent_id, a.description, a.tags, a.metadata, a.status, a.registered_at, a.updated_at,
       a.retired_at, a.retired_reason, a.revision,
       COALESCE(s.runs, 0) AS run_count, COALESCE(s.succeeded, 0) AS succeeded,
       COALESCE(s.failed, 0) AS failed, COALESCE(s.cancelled, 0) AS cancelled,
       s.last_run_id, s.last_run_at
FROM registry.agents a
LEFT JOIN runs.agent_stats s ON s.tenant_id = a.tenant_id AND s.agent_id = a.agent_id
"""
GET = _AGENT + "WHERE a.tenant_id = $1 AND a.agent_id = $2"
LIST = (
    _AGENT
    + """
WHERE a.tenant_id = $1
  AND ($2::text IS NULL OR a.tags @> ARRAY[$2::text])
  AND ($3::text IS NULL OR a.status = $3)
  AND ($4::text IS NULL OR a.agent_id > $4)
ORDER BY a.agent_id
LIMIT $5
"""
)
AS_OF = """
SELECT kind, description, tags, metadata, reason, changed_at FROM registry.agent_history
WHERE tenant_id = $1 AND agent_id = $2
  AND ($3::timestamptz IS NULL OR changed_at <= $3)
  AND ($4::bigint IS NULL OR log_offset < $4)
ORDER BY log_offset
"""
RUN_STATUS = "SELECT agent_id, status FROM runs.runs WHERE tenant_id = $1 AND run_id = $2"


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


class RegisterResult(StrEnum):
    REGISTERED = "registered"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


def build_event(cls: type[Event], **fields: Any) -> Event:
    """Build an event from caller input; bad input raises :class:`InputError` naming the field."""
    try:
        return cls(**fields)
    except PydanticValidationError as exc:
        field, msg = pydantic_error_field(exc)
        if exc.errors()[0]["type"] == "extra_forbidden":
            msg = "unknown field"
        raise InputError(f"{field}: {msg}", field=field) from None


def _reject_unknown(unknown: Mapping[str, Any]) -> None:
    if unknown:
        name = sorted(unknown)[0]
        raise InputError(f"{name}: unknown field", field=name)


def _check_id(agent_id: Any) -> str:
    if not isinstance(agent_id, str):
        raise InputError(
            f"agent_id: expected a string, got {type(agent_id).__name__}", field="agent_id"
        )
    if not agent_id or len(agent_id) > MAX_ID_LENGTH:
        raise InputError(f"agent_id: must be 1 to {MAX_ID_LENGTH} characters", field="agent_id")
    return agent_id


def as_of_point(at: Any) -> tuple[datetime | None, int | None]:
    """A time or a log offset, as ``as_of`` takes them."""
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise InputError("at: must be a timezone-aware datetime", field="at")
        return at, None
    if isinstance(at, int) and not isinstance(at, bool) and at >= 0:
        return None, at
    offset = getattr(at, "offset", None)  # a Position
    if isinstance(offset, int):
        return None, offset
    raise InputError("at: give a timezone-aware datetime or a log offset", field="at")


class RegistryClient:
    """The agent registry, as ``hub.registry``."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    def _envelope(self) -> dict[str, Any]:
        s = self._hub.settings
        return {"tenant_id": s.tenant, "actor": s.actor}

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
        _reject_unknown(unknown)
        if isinstance(tags, str):
            raise InputError("tags: expected a list of strings, got a string", field="tags")
        proposed = {
            "agent_id": agent_id,
            "description": "" if description is None else description,
            "tags": () if tags is None else tags,
            "metadata": {} if metadata is None else metadata,
        }
        probe = build_event(AgentRegistered, **self._envelope(), **proposed)  # validates all
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
            await self._hub.emit(build_event(AgentRegistered, **self._envelope(), **fields))
            return RegisterResult.REGISTERED
        if (fields["description"], fields["tags"], fields["metadata"]) == (
            current.description,
            current.tags,
            current.metadata,
        ):
            return RegisterResult.UNCHANGED
        await self._hub.emit(build_event(AgentUpdated, **self._envelope(), **fields))
        return RegisterResult.UPDATED

    async def retire(self, agent_id: str, *, reason: str | None = None, **unknown: Any) -> bool:
        """Retire an agent; False if it is unknown or already retired."""
        _reject_unknown(unknown)
        event = build_event(AgentRetired, **self._envelope(), agent_id=agent_id, reason=reason)
        current = await self.get(agent_id)
        if current is None or current.status == "retired":
            return False
        await self._hub.emit(event)
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
        _check_id(agent_id)
        final = status or ("success" if success else "failed")
        if final not in ("success", "failed", "cancelled"):
            raise InputError(
                f"status: must be success, failed or cancelled, not {final!r}", field="status"
            )
        envelope = {
            **self._envelope(),
            "actor": agent_id,
            "correlation_id": run_id,
            "agent_id": agent_id,
            "run_id": run_id,
        }
        finished = build_event(
            RunFinished, **envelope, status=final, error=error, duration_s=duration_s
        )
        await self._hub.wait_for_projections(topics=[str(Topic.RUNS)])
        row = await self._hub.runtime.pool.fetchrow(RUN_STATUS, self._hub.settings.tenant, run_id)
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
                )
            )
        await self._hub.emit(*events, finished)
        return True

    async def as_of(self, agent_id: str, at: datetime | int) -> Agent | None:
        """The agent as it was at a time, or before a log offset of its partition (None
        if it was not registered yet). Run statistics are today's."""
        _check_id(agent_id)
        when, offset = as_of_point(at)
        await self._hub.wait_for_projections(topics=[str(Topic.REGISTRY)])
        rows = await self._hub.runtime.pool.fetch(
            AS_OF, self._hub.settings.tenant, agent_id, when, offset
        )
        state: dict[str, Any] | None = None
        for r in rows:  # the registry projection's own folding, replayed up to `at`
            if r["kind"] == "retired":
                if state is None:
                    continue
                state.update(
                    status="retired", retired_at=r["changed_at"], retired_reason=r["reason"]
                )
            else:
                if state is None:
                    state = {"agent_id": agent_id, "revision": 0, "status": "active"}
                    state["registered_at"] = r["changed_at"]
                state.update(
                    description=r["description"], tags=tuple(r["tags"]), metadata=r["metadata"]
                )
                if r["kind"] == "registered":  # registering a retired agent brings it back
                    state.update(status="active", retired_at=None, retired_reason=None)
            state["revision"] += 1
            state["updated_at"] = r["changed_at"]
        return Agent(**state) if state else None

    async def get(self, agent_id: str) -> Agent | None:
        """The agent, or None; reflects this client's own earlier writes."""
        _check_id(agent_id)
        await self._hub.wait_for_projections(topics=[str(Topic.REGISTRY), str(Topic.RUNS)])
        row = await self._hub.runtime.pool.fetchrow(GET, self._hub.settings.tenant, agent_id)
        return Agent(**dict(row)) if row else None

    async def list(
        self,
        *,
        tag: str | None = None,
        status: str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> list[Agent]:
        """Agents ordered by id, optionally with ``tag`` or ``status``; page with ``after``."""
        if status not in (None, "active", "retired"):
            raise InputError(
                f"status: must be 'active' or 'retired', not {status!r}", field="status"
            )
        if not 1 <= limit <= 1000:
            raise InputError("limit: must be between 1 and 1000", field="limit")
        await self._hub.wait_for_projections(topics=[str(Topic.REGISTRY), str(Topic.RUNS)])
        rows = await self._hub.runtime.pool.fetch(
            LIST, self._hub.settings.tenant, tag, status, after, limit
        )
        return [Agent(**dict(r)) for r in rows]


class AgentRegistry:
    """The seed's synchronous registry: agents as dictionaries, over ``hub.registry``."""

    def __init__(self, *, use_s3: bool | None = None) -> None:
        from hub.sync import seed_hub

        self._sync = seed_hub(use_s3)

    def register(
        self,
        agent_id: str,
        description: str | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Register (or update) an agent; safe to call on every start. Returns it."""

        async def run(hub: Hub) -> Agent | None:
            await hub.registry.register(
                agent_id, description=description, tags=tags, metadata=metadata
            )
            return await hub.registry.get(agent_id)

        agent = self._sync.call(run)
        assert agent is not None
        return agent.model_dump(mode="json")

    def get_agent(self, agent_id: str) -> dict[str, Any] | None:
        """The agent (with its run count, last run and success rate), or None."""
        agent = self._sync.call(lambda hub: hub.registry.get(agent_id))
        return agent.model_dump(mode="json") if agent else None

    def list_agents(
        self, tag: str | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        """Every agent (optionally with ``tag`` or ``status``), ordered by id."""

        async def run(hub: Hub) -> list[Agent]:
            agents: list[Agent] = []
            while True:
                page = await hub.registry.list(
                    tag=tag,
                    status=status,
                    limit=1000,
                    after=agents[-1].agent_id if agents else None,
                )
                agents += page
                if len(page) < 1000:
                    return agents

        return [a.model_dump(mode="json") for a in self._sync.call(run)]

    def record_run(
        self,
        agent_id: str,
        run_id: str,
        success: bool = True,
        *,
        error: str | None = None,
        duration_s: float = 0.0,
    ) -> bool:
        """Record a finished run of ``agent_id`` (False if it was recorded before)."""
        return self._sync.call(
            lambda hub: hub.registry.record_run(
                agent_id, run_id, success=success, error=error, duration_s=duration_s
            )
        )

    def retire(self, agent_id: str, reason: str | None = None) -> bool:
        """Retire an agent; False if it is unknown or already retired."""
        return self._sync.call(lambda hub: hub.registry.retire(agent_id, reason=reason))

    @staticmethod
    def sync_if_pending() -> int:
        """Forward events spooled while offline; returns how many were sent (0 when none
        were waiting or the log is still unreachable)."""
        from hub.metrics import MetricsExporter

        return MetricsExporter.sync_pending()
