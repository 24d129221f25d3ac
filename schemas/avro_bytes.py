"""Avro's binary encoding of its primitives, for the paths that write or read bytes
directly (``schemas.text_messages``, ``schemas.avro_reader``, the archive's segments)."""

from __future__ import annotations

__all__ = ["SHORT_LONGS", "avro_bytes", "avro_long", "avro_string", "read_long"]


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SHORT = [_varint(n) for n in range(1 << 14)]  # one and two bytes: lengths, counts
SHORT_LONGS = _SHORT
"""``SHORT_LONGS[2 * n]``: the Avro ``long`` ``n``, for ``0 <= n < 8192`` (a length)."""


def avro_long(value: int) -> bytes:
    """An Avro ``long`` (or ``int``): zig-zag, then 7 bits a byte."""
    n = (value << 1) ^ (value >> 63)
    if n < 0x4000:
        return _SHORT[n] if n >= 0 else _varint(n)  # (beyond 64 bits: as it always was)
    if n < 0x200000:  # offsets
        return bytes(((n & 0x7F) | 0x80, ((n >> 7) & 0x7F) | 0x80, n >> 14))
    return _varint(n)


def avro_bytes(value: bytes) -> bytes:
    """An Avro ``bytes``: its length, then the bytes."""
    n = len(value)
    return (_SHORT[n << 1] if n < 0x2000 else avro_long(n)) + value  # (zig-zag of n: 2n)


def avro_string(value: str) -> bytes:
    """An Avro ``string``: its UTF-8 length, then the bytes."""
    data = value.encode()
    n = len(data)
    return (_SHORT[n << 1] if n < 0x2000 else avro_long(n)) + data


def read_long(data: bytes, pos: int) -> tuple[int, int]:
    """The Avro ``long`` at ``pos`` and the position after it."""
    b = data[pos]
    pos += 1
    n = b & 0x7F
    shift = 7
    while b & 0x80:
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
    return (n >> 1) ^ -(n & 1), pos
