"""What the Kafka adapter's log and consumer share: client settings, and the one place
where aiokafka's errors become :class:`LogError`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiokafka.errors import KafkaError

from schemas.errors import HubError, LogError

__all__ = ["KafkaSettings", "kafka_call", "log_error"]

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
