"""The seeds' session API: ``generate_run_id`` and ``create_session_manager``.

Conversations are kept in Agent Hub: ``create_session_manager`` returns a Strands session
manager (:class:`~hub.integrations.strands.HubSessionManager`) whichever store is used;
``use_s3`` decides where binary content and the archive go.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hub.compat.config import get_config

if TYPE_CHECKING:
    from hub.integrations.strands import HubSessionManager

__all__ = ["create_session_manager", "generate_run_id"]


def generate_run_id(agent_id: str) -> str:
    """``{agent_id}_{YYYYMMDD_HHMMSS}_{4 hex}`` (UTC): the seed's run ids, plus a random
    suffix so that two runs started in the same second get different ids."""
    return f"{agent_id}_{datetime.now(UTC).strftime('%Y%m%d_%H%M%S')}_{secrets.token_hex(2)}"


def create_session_manager(
    agent_id: str, run_id: str | None = None, use_s3: bool | None = None, **kwargs: Any
) -> HubSessionManager:
    """A Strands session manager for this agent's run (session id: the run id)."""
    from hub.bridge import sync_hub
    from hub.integrations.strands import HubSessionManager

    settings = get_config().to_settings(use_s3=use_s3)
    return HubSessionManager(run_id or generate_run_id(agent_id), hub=sync_hub(settings), **kwargs)
