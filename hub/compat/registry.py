"""The seed's synchronous ``AgentRegistry`` (``from hub.registry import AgentRegistry``):
agents as dictionaries, over the async ``hub.registry``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hub.agents.client import Agent
from hub.client import Hub
from hub.compat.config import seed_hub

__all__ = ["AgentRegistry"]


class AgentRegistry:
    """The seed's synchronous registry: agents as dictionaries, over ``hub.registry``."""

    def __init__(self, *, use_s3: bool | None = None) -> None:
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
            cursor: str | None = None
            while True:
                page = await hub.registry.list(tag=tag, status=status, limit=1000, cursor=cursor)
                agents += page
                if page.next_cursor is None:
                    return agents
                cursor = page.next_cursor

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
        from hub.compat.metrics import MetricsExporter

        return MetricsExporter.sync_pending()
