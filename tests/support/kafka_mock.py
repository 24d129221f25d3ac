"""librdkafka's mock Kafka cluster, loaded with ctypes from the confluent-kafka wheel.

The mock cluster speaks the real Kafka wire protocol on 127.0.0.1, so aiokafka producers,
consumer groups and offset commits run against it unchanged. It cannot serve
``CreateTopics`` (no controller id), so tests create topics with
``rd_kafka_mock_topic_create``; the adapter's admin path is for real Kafka.

``python -m tests.support.kafka_mock`` runs a cluster and prints its bootstrap servers.
"""

from __future__ import annotations

import ctypes
import glob
import os
import signal
import threading
from collections.abc import Mapping
from types import TracebackType

__all__ = ["MockCluster", "librdkafka"]

_lib: ctypes.CDLL | None = None


def librdkafka() -> ctypes.CDLL:
    """The librdkafka shared library shipped inside the confluent-kafka wheel."""
    global _lib
    if _lib is not None:
        return _lib
    import confluent_kafka

    libdir = os.path.join(
        os.path.dirname(confluent_kafka.__file__), os.pardir, "confluent_kafka.libs"
    )
    candidates = glob.glob(os.path.join(libdir, "librdkafka*.so*"))
    if not candidates:
        raise RuntimeError(f"librdkafka not found next to confluent_kafka ({libdir})")
    lib = ctypes.CDLL(candidates[0])
    vp, cp, i, sz = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_size_t
    lib.rd_kafka_version_str.restype = cp
    lib.rd_kafka_conf_new.restype = vp
    lib.rd_kafka_conf_set.argtypes = [vp, cp, cp, cp, sz]
    lib.rd_kafka_conf_set.restype = i
    lib.rd_kafka_new.argtypes = [i, vp, cp, sz]
    lib.rd_kafka_new.restype = vp
    lib.rd_kafka_destroy.argtypes = [vp]
    lib.rd_kafka_mock_cluster_new.argtypes = [vp, i]
    lib.rd_kafka_mock_cluster_new.restype = vp
    lib.rd_kafka_mock_cluster_destroy.argtypes = [vp]
    lib.rd_kafka_mock_cluster_bootstraps.argtypes = [vp]
    lib.rd_kafka_mock_cluster_bootstraps.restype = cp
    lib.rd_kafka_mock_topic_create.argtypes = [vp, cp, i, i]
    lib.rd_kafka_mock_topic_create.restype = i
    lib.rd_kafka_mock_broker_set_down.argtypes = [vp, ctypes.c_int32]
    lib.rd_kafka_mock_broker_set_down.restype = i
    lib.rd_kafka_mock_broker_set_up.argtypes = [vp, ctypes.c_int32]
    lib.rd_kafka_mock_broker_set_up.restype = i
    lib.rd_kafka_mock_group_initial_rebalance_delay_ms.argtypes = [vp, ctypes.c_int32]
    lib.rd_kafka_mock_group_initial_rebalance_delay_ms.restype = None
    lib.rd_kafka_mock_partition_delete_records.argtypes = [vp, cp, ctypes.c_int32, ctypes.c_int64]
    lib.rd_kafka_mock_partition_delete_records.restype = i
    _lib = lib
    return lib


class MockCluster:
    """A running mock cluster of ``brokers`` brokers (ids 1..brokers)."""

    def __init__(self, brokers: int = 3, *, initial_rebalance_delay_ms: int = 200) -> None:
        lib = librdkafka()
        conf = lib.rd_kafka_conf_new()
        err = ctypes.create_string_buffer(512)
        lib.rd_kafka_conf_set(
            conf, b"log_level", os.environ.get("HUB_MOCK_LOG_LEVEL", "2").encode(), err, len(err)
        )
        if os.environ.get("HUB_MOCK_DEBUG"):
            lib.rd_kafka_conf_set(
                conf, b"debug", os.environ["HUB_MOCK_DEBUG"].encode(), err, len(err)
            )
        self._rk = lib.rd_kafka_new(0, conf, err, len(err))  # 0: a producer handle
        if not self._rk:
            raise RuntimeError(f"rd_kafka_new failed: {err.value.decode()}")
        self._cluster = lib.rd_kafka_mock_cluster_new(self._rk, brokers)
        if not self._cluster:
            lib.rd_kafka_destroy(self._rk)
            raise RuntimeError("rd_kafka_mock_cluster_new failed")
        self.brokers = brokers
        # The broker's group.initial.rebalance.delay.ms (3 s by default; compose sets 0)
        lib.rd_kafka_mock_group_initial_rebalance_delay_ms(
            self._cluster, initial_rebalance_delay_ms
        )
        self.bootstrap_servers: str = lib.rd_kafka_mock_cluster_bootstraps(self._cluster).decode()
        self.namespace = ""  # a cluster of its own: no namespace needed
        self.description = f"librdkafka {self.version} mock cluster ({brokers} brokers)"
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap_servers}"

    @property
    def version(self) -> str:
        return str(librdkafka().rd_kafka_version_str().decode())

    def create_topic(self, name: str, partitions: int, replication_factor: int = 3) -> None:
        code = librdkafka().rd_kafka_mock_topic_create(
            self._cluster, name.encode(), partitions, min(replication_factor, self.brokers)
        )
        if code != 0:
            raise RuntimeError(f"rd_kafka_mock_topic_create({name}) failed with error {code}")

    def create_topics(self, topics: Mapping[str, int]) -> None:
        for name, partitions in topics.items():
            self.create_topic(name, partitions)

    def delete_records(self, topic: str, partition: int, before: int) -> None:
        """Retention: drop the partition's records before offset ``before``."""
        code = librdkafka().rd_kafka_mock_partition_delete_records(
            self._cluster, topic.encode(), partition, before
        )
        if code != 0:
            raise RuntimeError(f"delete_records({topic}[{partition}] < {before}): error {code}")

    def set_down(self, *broker_ids: int) -> None:
        for b in broker_ids or range(1, self.brokers + 1):
            librdkafka().rd_kafka_mock_broker_set_down(self._cluster, b)

    def set_up(self, *broker_ids: int) -> None:
        for b in broker_ids or range(1, self.brokers + 1):
            librdkafka().rd_kafka_mock_broker_set_up(self._cluster, b)

    def close(self) -> None:
        with self._lock:
            if self._cluster:
                lib = librdkafka()
                lib.rd_kafka_mock_cluster_destroy(self._cluster)
                lib.rd_kafka_destroy(self._rk)
                self._cluster = self._rk = None

    def __enter__(self) -> MockCluster:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def main() -> None:
    from schemas.events import TOPICS

    cluster = MockCluster(3)
    cluster.create_topics({str(t): 4 for t in TOPICS})
    print(cluster.bootstrap_servers, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    cluster.close()


if __name__ == "__main__":
    main()
