"""Kafka's default partitioner (murmur2 of the key), shared by every log adapter.

``partition_for(key, n)`` is what Kafka's Java client (and aiokafka) computes, so a key
lands on the same partition number on Kafka and on the Postgres log.
"""

from __future__ import annotations

import struct

__all__ = ["murmur2", "partition_for"]

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """MurmurHash2 as in ``org.apache.kafka.common.utils.Utils.murmur2`` (signed 32-bit)."""
    length = len(data)
    h = (0x9747B28C ^ length) & _MASK
    words = length // 4
    for k in struct.unpack_from(f"<{words}I", data) if words else ():
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    rest = length % 4
    tail = length - rest
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


_cache: dict[tuple[bytes, int], int] = {}
_CACHE_SIZE = 8192


def partition_for(key: bytes, partitions: int) -> int:
    """Kafka's ``toPositive(murmur2(key)) % partitions``."""
    cached = _cache.get((key, partitions))
    if cached is not None:
        return cached
    if len(_cache) >= _CACHE_SIZE:  # keys of live entities repeat; an old one costs a hash
        _cache.clear()
    partition = _cache[(key, partitions)] = (murmur2(key) & 0x7FFFFFFF) % partitions
    return partition
