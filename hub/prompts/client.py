"""``hub.prompts``: versioned prompts with labels (``current``, ``production``, ...).

Versions are immutable: ``PromptVersionCreated`` once per (name, version); re-creating one
with identical content adds nothing, with other content is a :class:`ConflictError`.
Labels move with ``PromptLabelMoved`` (``rollback`` is a label move). ``get_current``
reads the cache (:mod:`hub.prompts.cache`): fresh entries cost no I/O, stale ones are
served while a background refresh runs, and the last known version survives outages.
"""

from __future__ import annotations

import asyncio
import builtins
import difflib
import hashlib
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from hub.core.inputs import build_event
from hub.prompts.cache import PromptCache
from hub.prompts.models import PromptVersion
from projections.prompts import queries
from schemas.errors import ConflictError, HubError, InputError, NotFoundError
from schemas.events import PromptLabelMoved, PromptVersionCreated, Topic

if TYPE_CHECKING:
    from hub.core.context import HubContext

__all__ = ["CURRENT", "PromptsClient", "sha256_of"]

log = structlog.get_logger(__name__)

CURRENT = "current"
PROMPTS = str(Topic.PROMPTS)


def sha256_of(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


def _check_content(content: Any) -> str:
    if not isinstance(content, str):
        raise InputError(
            f"content: expected a string, got {type(content).__name__}", field="content"
        )
    if not content.strip():
        raise InputError("content: must not be empty", field="content")
    return content


class PromptsClient:
    """Versioned prompts, as ``hub.prompts``."""

    def __init__(self, ctx: HubContext) -> None:
        self._ctx = ctx
        s = ctx.settings
        self.cache = PromptCache(s.prompt_cache_ttl_s, s.home)
        self._tasks: set[asyncio.Task[None]] = set()

    async def _settled(self) -> None:
        await self._ctx.wait_for_projections(topics=[PROMPTS])

    # ── writing ─────────────────────────────────────────────────────────────────────────

    def _created(
        self, name: str, version: str, content: str, note: str | None, author: str | None
    ) -> PromptVersionCreated:
        event = build_event(
            PromptVersionCreated,
            **self._ctx.envelope(),
            name=name,
            version=version,
            content=_check_content(content),
            sha256=sha256_of(content),
            note=note,
            author=author or self._ctx.actor,
        )
        assert isinstance(event, PromptVersionCreated)
        return event

    def _moved(self, name: str, label: str, version: str, previous: str | None) -> PromptLabelMoved:
        event = build_event(
            PromptLabelMoved,
            **self._ctx.envelope(),
            name=name,
            version=version,
            label=label,
            previous_version=previous,
        )
        assert isinstance(event, PromptLabelMoved)
        return event

    async def _check_new(self, created: PromptVersionCreated) -> bool:
        """True if the version is new; False if it exists with this content."""
        existing = await self.get_version(created.name, created.version)
        if existing is None:
            return True
        if existing.sha256 == created.sha256:
            return False
        raise ConflictError(
            f"prompt {created.name!r} version {created.version!r} already exists with "
            f"different content (sha256 {existing.sha256[:12]}, not {created.sha256[:12]}); "
            "choose a new version"
        )

    async def ensure_exists(
        self,
        name: str,
        content: str,
        version: str,
        *,
        note: str | None = None,
        author: str | None = None,
    ) -> bool:
        """Create ``version`` unless it exists with this content (True if created).

        The first version of a prompt becomes ``current``."""
        created = self._created(name, version, content, note, author)
        if not await self._check_new(created):
            return False
        current = await self._label(name, CURRENT)
        events: list[Any] = [created]
        if current is None:
            events.append(self._moved(name, CURRENT, version, None))
        await self._ctx.emit(*events)
        if current is None:
            self.cache.put(name, CURRENT, version, created.content, created.sha256)
        return True

    async def set(
        self,
        name: str,
        content: str,
        version: str,
        *,
        make_current: bool = True,
        note: str | None = None,
        author: str | None = None,
    ) -> PromptVersion:
        """Add ``version`` (or reuse it if its content is identical) and, with
        ``make_current``, point ``current`` at it."""
        created = self._created(name, version, content, note, author)
        new = await self._check_new(created)
        events: list[Any] = [created] if new else []
        if make_current:
            current = await self._label(name, CURRENT)
            if current is None or current.version != version:
                previous = current.version if current else None
                events.append(self._moved(name, CURRENT, version, previous))
        if events:
            await self._ctx.emit(*events)
        if make_current:
            self.cache.put(name, CURRENT, version, created.content, created.sha256)
        result = await self.get_version(name, version)
        assert result is not None
        return result

    async def move_label(self, name: str, label: str, version: str) -> PromptVersion:
        """Point ``label`` at an existing ``version``."""
        target = await self.get_version(name, version)
        if target is None:
            raise NotFoundError(f"prompt {name!r} has no version {version!r}")
        current = await self._label(name, label)
        if current is None or current.version != version:
            await self._ctx.emit(
                self._moved(name, label, version, current.version if current else None)
            )
        self.cache.put(name, label, version, target.content, target.sha256)
        return target

    async def rollback(self, name: str, version: str, *, label: str = CURRENT) -> PromptVersion:
        """Point ``label`` (default ``current``) back at ``version``."""
        return await self.move_label(name, label, version)

    # ── reading ─────────────────────────────────────────────────────────────────────────

    async def _label(self, name: str, label: str) -> PromptVersion | None:
        await self._settled()
        row = await self._ctx.pool.fetchrow(queries.LABEL, self._ctx.tenant, name, label)
        return PromptVersion(**dict(row)) if row else None

    async def get(self, name: str, *, label: str = CURRENT) -> PromptVersion | None:
        """The version ``label`` points at (from the database), or None."""
        return await self._label(name, label)

    async def get_version(self, name: str, version: str) -> PromptVersion | None:
        """One version, or None."""
        await self._settled()
        row = await self._ctx.pool.fetchrow(queries.VERSION, self._ctx.tenant, name, version)
        return PromptVersion(**dict(row)) if row else None

    async def list_versions(self, name: str) -> builtins.list[PromptVersion]:
        """Every version, oldest first, with the labels on each."""
        await self._settled()
        rows = await self._ctx.pool.fetch(queries.LIST_VERSIONS, self._ctx.tenant, name)
        return [PromptVersion(**dict(r)) for r in rows]

    async def labels_at(self, name: str, at: datetime) -> dict[str, str]:
        """Where each label pointed at time ``at``."""
        if at.tzinfo is None:
            raise InputError("at: must be a timezone-aware datetime", field="at")
        await self._settled()
        rows = await self._ctx.pool.fetch(queries.LABELS_AT, self._ctx.tenant, name, at)
        return {r["label"]: r["version"] for r in rows}

    async def as_of(
        self, name: str, at: datetime | int, *, label: str = CURRENT
    ) -> PromptVersion | None:
        """The version ``label`` pointed at, at a time or before a log offset of the
        prompt's partition (None if it pointed nowhere yet)."""
        from hub.core.inputs import as_of_point

        when, offset = as_of_point(at)
        await self._settled()
        version = await self._ctx.pool.fetchval(
            queries.AS_OF, self._ctx.tenant, name, label, when, offset
        )
        return None if version is None else await self.get_version(name, version)

    async def diff(self, name: str, a: str, b: str) -> str:
        """A unified diff from version ``a`` to version ``b``."""
        va, vb = await self.get_version(name, a), await self.get_version(name, b)
        for version, found in ((a, va), (b, vb)):
            if found is None:
                raise NotFoundError(f"prompt {name!r} has no version {version!r}")
        assert va is not None and vb is not None
        lines = difflib.unified_diff(
            va.content.splitlines(),
            vb.content.splitlines(),
            fromfile=f"{name}@{a}",
            tofile=f"{name}@{b}",
            lineterm="",
        )
        text = "\n".join(lines)
        return text + "\n" if text else ""

    # ── the cache ───────────────────────────────────────────────────────────────────────

    async def refresh(self, name: str, label: str = CURRENT) -> PromptVersion:
        """Read ``label`` from the hub into the cache."""
        found = await self._label(name, label)
        if found is None:
            raise NotFoundError(f"prompt {name!r} has no label {label!r}")
        self.cache.put(name, label, found.version, found.content, found.sha256)
        return found

    def refresh_soon(self, name: str, label: str = CURRENT) -> None:
        """Refresh in the background (once at a time per entry); failures keep the old one."""
        if not self.cache.claim_refresh(name, label):
            return

        async def run() -> None:
            try:
                await self.refresh(name, label)
            except HubError as exc:
                log.warning("prompts.refresh_failed", name=name, label=label, error=str(exc))
            finally:
                self.cache.release_refresh(name, label)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def get_current(
        self, name: str, *, label: str = CURRENT, force_refresh: bool = False
    ) -> str:
        """The content ``label`` points at, through the cache (see the module docstring)."""
        entry, fresh = self.cache.peek(name, label)
        if entry is not None and not force_refresh:
            if fresh:
                return entry.content
            if entry.fetched_at > 0:  # stale in memory: serve it, refresh behind
                self.refresh_soon(name, label)
                return entry.content
        try:
            return (await self.refresh(name, label)).content
        except NotFoundError:
            raise
        except HubError as exc:
            if entry is None or not exc.retriable:
                raise
            log.warning("prompts.serving_last_known", name=name, label=label, error=str(exc))
            return entry.content
