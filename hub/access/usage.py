"""When each API key was last used (``hub.key_usage``; this module is its only writer).

A key's use is written at most once per ``every`` seconds per process, so a busy key
costs one small upsert a minute, not one per request."""

from __future__ import annotations

import time
from datetime import datetime

import asyncpg

from schemas.types import utcnow

__all__ = ["KeyUsage"]

RECORD = """
INSERT INTO hub.key_usage (key_id, last_used_at) VALUES ($1, $2)
ON CONFLICT (key_id) DO UPDATE SET
    last_used_at = greatest(hub.key_usage.last_used_at, EXCLUDED.last_used_at)
"""


class KeyUsage:
    """Records key uses, throttled per key."""

    def __init__(self, every: float = 60.0) -> None:
        self.every = every
        self._written: dict[str, float] = {}

    async def used(self, pool: asyncpg.Pool, key_id: str, at: datetime | None = None) -> None:
        """Note that ``key_id`` was used now (written unless written recently)."""
        now = time.monotonic()
        last = self._written.get(key_id)
        if last is not None and now - last < self.every:
            return
        self._written[key_id] = now
        await pool.execute(RECORD, key_id, at or utcnow())
