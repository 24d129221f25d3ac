"""The Postgres log partitions exactly as Kafka's Java client (and aiokafka) does."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from hub.infra.log.partitioner import murmur2, partition_for

# Expected values from Kafka's own UtilsTest.testMurmur2
JAVA_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


def test_murmur2_matches_kafkas_java_client() -> None:
    for key, expected in JAVA_VECTORS.items():
        assert murmur2(key) == expected, key


@given(st.binary(max_size=64), st.integers(1, 64))
def test_partition_matches_aiokafkas_default_partitioner(key: bytes, n: int) -> None:
    partitions = list(range(n))
    assert partition_for(key, n) == DefaultPartitioner()(key, partitions, partitions)
