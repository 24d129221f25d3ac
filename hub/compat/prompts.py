"""The seed's ``S3PromptManager``: versioned system prompts of one agent, with caching.

The prompt's name is the agent id. ``get_current()`` is served from the hub's prompt
cache in the calling thread while the entry is fresh (no I/O); a stale entry is served
while it refreshes in the background; when the hub cannot be reached at all, the local
copy under ``{AGENT_HUB_LOCAL_DIR}/prompts/{agent}/`` is served.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

from hub.bridge import SyncHub
from hub.compat.config import get_config, seed_hub
from hub.prompts.cache import PromptCache
from hub.prompts.client import CURRENT
from schemas.errors import HubError

if TYPE_CHECKING:
    from hub.prompts.models import PromptVersion

__all__ = ["S3PromptManager"]

log = structlog.get_logger(__name__)


def _as_dict(v: PromptVersion) -> dict[str, Any]:
    info = v.model_dump(mode="json")
    info["labels"] = list(v.labels)
    info["current"] = CURRENT in v.labels
    return info


class S3PromptManager:
    """Versioned prompts of ``agent_id`` (see the module docstring)."""

    def __init__(self, agent_id: str, *, use_s3: bool | None = None) -> None:
        self.agent_id = agent_id
        self._use_s3 = use_s3
        self._sync: SyncHub | None = None

    def _hub(self) -> SyncHub:
        if self._sync is None:
            self._sync = seed_hub(self._use_s3)
        return self._sync

    def ensure_exists(self, content: str, version: str = "v1", *, note: str | None = None) -> bool:
        """Create ``version`` unless it exists with this content (True if created); the
        first version becomes current. Other content under an existing version raises
        :class:`~hub.ConflictError`."""
        name = self.agent_id
        return self._hub().call(
            lambda h: h.prompts.ensure_exists(name, content, version, note=note)
        )

    def get_current(self, force_refresh: bool = False) -> str:
        """The current prompt (cached; ``force_refresh`` reads the hub)."""
        name = self.agent_id
        try:
            sync = self._hub()
        except HubError as exc:
            if not exc.retriable:
                raise
            return self._offline(exc)
        if not force_refresh:
            entry, fresh = sync.hub.prompts.cache.peek(name, CURRENT)
            if entry is not None and fresh:
                return entry.content
        return sync.call(lambda h: h.prompts.get_current(name, force_refresh=force_refresh))

    def _offline(self, exc: HubError) -> str:
        config = get_config()
        entry, _ = PromptCache(0, config.local_dir).peek(self.agent_id, CURRENT)
        if entry is None:
            raise exc
        log.warning("prompts.offline_serving_local_copy", name=self.agent_id, error=str(exc))
        return entry.content

    def set(
        self,
        content: str,
        version: str,
        make_current: bool = True,
        note: str | None = None,
    ) -> dict[str, Any]:
        """Add ``version`` and (by default) make it current."""
        name = self.agent_id
        created = self._hub().call(
            lambda h: h.prompts.set(name, content, version, make_current=make_current, note=note)
        )
        return _as_dict(created)

    def get_version(self, version: str) -> str | None:
        """The content of ``version``, or None."""
        name = self.agent_id
        found = self._hub().call(lambda h: h.prompts.get_version(name, version))
        return found.content if found else None

    def list_versions(self) -> list[dict[str, Any]]:
        """Every version, oldest first: ``version``, ``note``, ``created_at``, ``labels``..."""
        name = self.agent_id
        return [_as_dict(v) for v in self._hub().call(lambda h: h.prompts.list_versions(name))]

    def rollback(self, version: str) -> dict[str, Any]:
        """Make an earlier ``version`` current again."""
        name = self.agent_id
        return _as_dict(self._hub().call(lambda h: h.prompts.rollback(name, version)))

    def diff(self, a: str, b: str) -> str:
        """A unified diff between two versions."""
        name = self.agent_id
        return self._hub().call(lambda h: h.prompts.diff(name, a, b))
