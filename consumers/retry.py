"""Retry with exponential backoff and jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Backoff"]


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
