"""The prompt cache: a TTL, stale-while-revalidate, and a local copy for offline starts.

``peek`` is a plain dictionary read (no I/O, no await), safe from any thread: a warm
``get_current`` costs about a microsecond. An entry older than the TTL is still served
while the owner refreshes it in the background; when the hub cannot be reached the last
known version keeps being served. Every entry is also written to the local directory
(as the seed lays it out: ``prompts/{name}/{version}.txt``, ``{label}.txt`` and
``cache_meta.json``), so a process starting while offline still has its prompts.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from hub.infra.files import make_dirs, write_atomic

__all__ = ["CachedPrompt", "PromptCache"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class CachedPrompt:
    version: str
    content: str
    sha256: str
    fetched_at: float  # time.monotonic() when fetched (0: read from the local copy)


def _safe(part: str) -> str:
    """A path component for a name or label (ids may contain ``/``)."""
    return part.replace("%", "%25").replace("/", "%2F").replace("\\", "%5C").lstrip(".") or "_"


class PromptCache:
    """Cached prompts by (name, label); see the module docstring."""

    def __init__(self, ttl_s: float, local_dir: Path | None) -> None:
        self.ttl_s = ttl_s
        self.local_dir = local_dir
        self._entries: dict[tuple[str, str], CachedPrompt] = {}
        self._refreshing: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def peek(self, name: str, label: str) -> tuple[CachedPrompt | None, bool]:
        """The cached entry (memory, else the local copy) and whether it is still fresh."""
        entry = self._entries.get((name, label))
        if entry is None:
            entry = self._load_local(name, label)
            if entry is None:
                return None, False
            self._entries[(name, label)] = entry
        return entry, time.monotonic() - entry.fetched_at < self.ttl_s and entry.fetched_at > 0

    def put(self, name: str, label: str, version: str, content: str, sha256: str) -> CachedPrompt:
        """Cache (and persist locally) what the hub says ``label`` points at."""
        entry = CachedPrompt(version, content, sha256, time.monotonic())
        self._entries[(name, label)] = entry
        try:
            self._save_local(name, label, entry)
        except OSError as exc:  # the local copy is a fallback: never fail a read for it
            log.warning("prompt_cache.persist_failed", name=name, error=str(exc))
        return entry

    def invalidate(self, name: str) -> None:
        """Forget every label of ``name`` held in memory (the local copy stays)."""
        for key in [k for k in self._entries if k[0] == name]:
            self._entries.pop(key, None)

    def claim_refresh(self, name: str, label: str) -> bool:
        """True for the one caller that should refresh this entry now."""
        with self._lock:
            if (name, label) in self._refreshing:
                return False
            self._refreshing.add((name, label))
            return True

    def release_refresh(self, name: str, label: str) -> None:
        with self._lock:
            self._refreshing.discard((name, label))

    # ── the local copy ──────────────────────────────────────────────────────────────────

    def _dir(self, name: str) -> Path | None:
        return None if self.local_dir is None else self.local_dir / "prompts" / _safe(name)

    def _save_local(self, name: str, label: str, entry: CachedPrompt) -> None:
        directory = self._dir(name)
        if directory is None:
            return
        make_dirs(directory)
        write_atomic(
            directory / f"{_safe(entry.version)}.txt", entry.content.encode(), durable_name=False
        )
        write_atomic(directory / f"{_safe(label)}.txt", entry.content.encode(), durable_name=False)
        with self._lock:
            meta = self._read_meta(directory)
            meta[label] = {
                "version": entry.version,
                "sha256": entry.sha256,
                "saved_at": time.time(),
            }
            write_atomic(
                directory / "cache_meta.json",
                json.dumps(meta, indent=2).encode(),
                durable_name=False,
            )

    @staticmethod
    def _read_meta(directory: Path) -> dict[str, Any]:
        try:
            meta = json.loads((directory / "cache_meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return meta if isinstance(meta, dict) else {}

    def _load_local(self, name: str, label: str) -> CachedPrompt | None:
        directory = self._dir(name)
        if directory is None:
            return None
        info = self._read_meta(directory).get(label)
        if not isinstance(info, dict):
            return None
        try:
            content = (directory / f"{_safe(label)}.txt").read_text(encoding="utf-8")
        except OSError:
            return None
        return CachedPrompt(str(info.get("version")), content, str(info.get("sha256")), 0.0)
