"""Time-ordered identifiers (UUIDv7, RFC 9562)."""

from __future__ import annotations

import hashlib
import random
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = [
    "repeatable_ids",
    "uuid7",
    "uuid7_many",
    "uuid7_time_ms",
    "uuid_of_int",
    "uuid_of_text",
]


class _Repeatable:
    """The ids of one repeatable operation: its seed, its time and how many were made."""

    def __init__(self, seed: bytes, ms: int) -> None:
        self.seed = seed
        self.ms = ms
        self.count = 0

    def next(self) -> uuid.UUID:
        n = self.count
        self.count += 1
        ms = self.ms + (n >> 12)
        rand = int.from_bytes(hashlib.sha256(self.seed + n.to_bytes(8, "big")).digest()[:8])
        return _compose(ms, n & 0xFFF, rand & ((1 << 62) - 1))


_repeatable: ContextVar[_Repeatable | None] = ContextVar("repeatable_ids", default=None)


@contextmanager
def repeatable_ids(seed: bytes, ms: int) -> Iterator[None]:
    """Within this block (in this task), :func:`uuid7` makes the same ids, in the same
    order, every time it is entered with the same ``seed`` and ``ms``. A request retried
    with its idempotency key makes the same events again, which projections drop as
    duplicates by ``event_id``."""
    token = _repeatable.set(_Repeatable(seed, ms))
    try:
        yield
    finally:
        _repeatable.reset(token)


_VERSION_AND_VARIANT = (0x7 << 76) | (0b10 << 62)
_MS_MASK = 0xFFFF_FFFF_FFFF


def _compose(ms: int, counter: int, rand: int) -> uuid.UUID:
    return uuid_of_int(((ms & _MS_MASK) << 80) | (counter << 64) | rand | _VERSION_AND_VARIANT)


_new = object.__new__
_set = object.__setattr__
_UUID = uuid.UUID
_UNKNOWN = uuid.SafeUUID.unknown


def uuid_of_int(value: int) -> uuid.UUID:
    """``uuid.UUID(int=value)`` for a value known to fit 128 bits, without its checks."""
    u = _new(_UUID)
    _set(u, "int", value)
    _set(u, "is_safe", _UNKNOWN)
    return u


def uuid_of_text(text: str) -> uuid.UUID:
    """``uuid.UUID(text)``, the same value or error, faster for the canonical form."""
    if len(text) == 36 and text[8] == text[13] == text[18] == text[23] == "-":
        # UUID() too parses the 32 characters left without dashes with int(..., 16)
        return uuid_of_int(int(text.replace("-", ""), 16))
    return uuid.UUID(text)


_lock = threading.Lock()
_time_ns = time.time_ns
_getrandbits = random.getrandbits  # the shared generator's method: re-seeded after fork()
_last_ms = 0
_counter = 0


def _stamps(n: int) -> list[int]:
    """The time, counter, version and variant bits of the next ``n`` ids, in order."""
    global _last_ms, _counter
    stamps: list[int] = []
    with _lock:
        ms = _time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms, _counter = ms, -1
        for _ in range(n):
            _counter += 1
            if _counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                _last_ms += 1
                _counter = 0
            stamps.append(((_last_ms & _MS_MASK) << 80) | (_counter << 64) | _VERSION_AND_VARIANT)
    return stamps


def uuid7() -> uuid.UUID:
    """A new UUIDv7: 48-bit Unix milliseconds, then a 12-bit counter and 62 random bits.

    Within one process the ids are strictly increasing, even within one millisecond
    (inside :func:`repeatable_ids`, they are that block's repeatable ids instead).
    """
    repeatable = _repeatable.get()
    if repeatable is not None:
        return repeatable.next()
    (stamp,) = _stamps(1)
    # The module-level generator is seeded from os.urandom and re-seeded after fork().
    return uuid_of_int(stamp | _getrandbits(62))


_RAND_MASK = (1 << 62) - 1


def uuid7_many(n: int) -> list[uuid.UUID]:
    """``n`` new UUIDv7s, the ids ``n`` calls of :func:`uuid7` would make, in order, for
    one lock and one draw of random bits (a batch's ids)."""
    repeatable = _repeatable.get()
    if repeatable is not None:
        return [repeatable.next() for _ in range(n)]
    stamps = _stamps(n)
    rand = _getrandbits(62 * n) if n else 0
    out = []
    for stamp in stamps:
        out.append(uuid_of_int(stamp | (rand & _RAND_MASK)))
        rand >>= 62
    return out


def uuid7_time_ms(value: uuid.UUID) -> int:
    """The Unix time in milliseconds encoded in a UUIDv7."""
    return value.int >> 80
