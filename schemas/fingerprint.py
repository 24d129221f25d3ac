"""CRC-64-AVRO fingerprints and Avro single-object encoding headers."""

from __future__ import annotations

__all__ = ["HEADER_LEN", "MAGIC", "crc64_avro", "header_for", "split_header"]

MAGIC = b"\xc3\x01"
HEADER_LEN = 10
_EMPTY = 0xC15D213AA4D7A795


def _table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_EMPTY & -(fp & 1))
        table.append(fp)
    return table


_TABLE = _table()


def crc64_avro(data: bytes) -> int:
    """The Avro spec's 64-bit Rabin fingerprint of ``data`` (a schema's canonical form)."""
    fp = _EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _TABLE[(fp ^ byte) & 0xFF]
    return fp


def header_for(fingerprint: int) -> bytes:
    """The 10-byte single-object header: ``C3 01`` then the fingerprint, little-endian."""
    return MAGIC + fingerprint.to_bytes(8, "little")


def split_header(data: bytes) -> tuple[int, memoryview]:
    """Split a single-object encoded datum into (fingerprint, body). Raises ``ValueError``."""
    if len(data) < HEADER_LEN:
        raise ValueError(f"{len(data)} bytes is shorter than the 10-byte single-object header")
    if data[:2] != MAGIC:
        raise ValueError(f"bad magic {bytes(data[:2]).hex()} (expected c301)")
    return int.from_bytes(data[2:HEADER_LEN], "little"), memoryview(data)[HEADER_LEN:]
