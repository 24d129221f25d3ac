"""What the Kafka adapter's log and consumer share: client settings, and the one place
where aiokafka's errors become :class:`LogError`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiokafka import TopicPartition as KafkaTP
from aiokafka.errors import KafkaError

from hub.infra.ports import TopicPartition
from schemas.errors import HubError, LogError

__all__ = ["KafkaSettings", "Names", "kafka_call", "log_error"]

T = TypeVar("T")


def log_error(what: str, exc: BaseException) -> LogError:
    retriable = bool(getattr(exc, "retriable", True)) or isinstance(exc, asyncio.TimeoutError)
    return LogError(f"{what}: {type(exc).__name__}: {exc}", retriable=retriable)


async def kafka_call(what: str, call: Callable[[], Awaitable[T]]) -> T:
    """Run a Kafka call, converting driver errors into :class:`LogError` (the boundary)."""
    try:
        return await call()
    except HubError:
        raise
    except (TimeoutError, KafkaError, OSError) as exc:
        raise log_error(what, exc) from exc


class KafkaSettings:
    """Client settings for the Kafka adapter."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_id: str = "agent-hub",
        replication_factor: int = 3,
        linger_ms: int = 5,
        max_batch_bytes: int = 1 << 20,
        request_timeout_ms: int = 30_000,
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 3_000,
        max_partition_fetch_bytes: int = 4 << 20,
        namespace: str = "",
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self.replication_factor = replication_factor
        self.linger_ms = linger_ms
        self.max_batch_bytes = max_batch_bytes
        self.request_timeout_ms = request_timeout_ms
        self.session_timeout_ms = session_timeout_ms
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.max_partition_fetch_bytes = max_partition_fetch_bytes
        self.names = Names(namespace)


class Names:
    """The hub's topic and consumer-group names on the cluster: the hub's own names behind
    ``namespace`` (``HUB_KAFKA_NAMESPACE``), so several hubs (or test runs) can share one
    Kafka cluster. Everything above the adapter sees the hub's own names."""

    def __init__(self, namespace: str = "") -> None:
        self.namespace = namespace

    def topic(self, topic: str) -> str:
        return self.namespace + topic

    def group(self, group_id: str | None) -> str | None:
        return None if group_id is None else self.namespace + group_id

    def ktp(self, tp: TopicPartition) -> KafkaTP:
        return KafkaTP(self.namespace + tp.topic, tp.partition)

    def tp(self, ktp: Any) -> TopicPartition:
        """Ours, from aiokafka's ``TopicPartition`` (or anything with topic and partition)."""
        return TopicPartition(ktp.topic[len(self.namespace) :], ktp.partition)

    def hub_topic(self, topic: str) -> str | None:
        """The hub's name of a cluster topic, or None if it is outside the namespace."""
        return topic[len(self.namespace) :] if topic.startswith(self.namespace) else None
