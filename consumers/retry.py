"""Retry with exponential backoff and jitter, and warnings that do not flood the log."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["Backoff", "RateLimitedWarnings"]


@dataclass
class Backoff:
    """Delays of ``initial * 2**n`` seconds, capped at ``maximum``, with jitter."""

    initial: float = 0.1
    maximum: float = 30.0
    attempt: int = 0

    def next_delay(self) -> float:
        delay: float = min(self.maximum, self.initial * 2.0**self.attempt)
        self.attempt += 1
        return delay * (0.5 + random.random() / 2)

    def reset(self) -> None:
        self.attempt = 0


class RateLimitedWarnings:
    """A logger whose warnings of one kind (event and step) are written at most once per
    ``interval`` seconds; the next one says how many were held back. While Postgres or the
    log is down, a retry loop reports the outage, not every attempt."""

    def __init__(self, logger: Any, interval: float = 30.0) -> None:
        self._logger = logger
        self.interval = interval
        self._last: dict[tuple[str, Any], float] = {}
        self._held: dict[tuple[str, Any], int] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._logger, name)

    def warning(self, event: str, **fields: Any) -> None:
        key = (event, fields.get("step"))
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._held[key] = self._held.get(key, 0) + 1
            return
        self._last[key] = now
        held = self._held.pop(key, 0)
        if held:
            fields["repeats_held_back"] = held
        self._logger.warning(event, **fields)
