"""Strands sessions kept in Agent Hub (``pip install 'agent-hub[strands]'``).

    from hub.integrations.strands import HubSessionManager
    agent = Agent(model=..., session_manager=HubSessionManager(session_id="s1"))

Every method of Strands' ``SessionRepository`` behaves as Strands' own file store does
(:mod:`hub.integrations.strands.repository`), multi-agent state included, so a ``Swarm``
or a ``Graph`` takes the manager too; each agent's conversation is a hub thread, read,
searched and forked like any other.
"""

from __future__ import annotations

from typing import Any

from strands.session.repository_session_manager import RepositorySessionManager

from hub.bridge import SyncHub
from hub.integrations.strands.repository import HubSessionRepository
from hub.settings import HubSettings

__all__ = ["HubSessionManager", "HubSessionRepository"]


class HubSessionManager(RepositorySessionManager):
    """Strands' ``RepositorySessionManager`` over Agent Hub."""

    def __init__(
        self,
        session_id: str,
        *,
        hub: SyncHub | None = None,
        settings: HubSettings | None = None,
        **kwargs: Any,
    ) -> None:
        self.repository = HubSessionRepository(hub, settings=settings)
        super().__init__(session_id=session_id, session_repository=self.repository, **kwargs)

    def fork(self, new_session_id: str) -> HubSessionManager:
        """A manager for a copy-on-write fork of this session; the original is untouched."""
        self.repository.fork_session(self.session_id, new_session_id)
        return HubSessionManager(new_session_id, hub=self.repository.hub)
