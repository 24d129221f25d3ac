from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from hub.log.kafka import KafkaLog, KafkaSettings
from hub.log.postgres import PostgresLog
from hub.ports import EventLog
from schemas.events import TOPICS
from tests.support.kafka_mock import MockCluster
from tests.support.pg import create_database, drop_database

TEST_PARTITIONS = 4


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    """A fresh, empty database for this test."""
    name = f"hubtest_{uuid.uuid4().hex[:12]}"
    dsn = await create_database(name)
    try:
        yield dsn
    finally:
        await drop_database(name)


@pytest.fixture
def kafka_cluster() -> Iterator[MockCluster]:
    """A 3-broker mock Kafka cluster with the hub's topics."""
    with MockCluster(3) as cluster:
        cluster.create_topics({str(t): TEST_PARTITIONS for t in TOPICS})
        yield cluster


def kafka_settings(cluster: MockCluster, **kw: object) -> KafkaSettings:
    """Client settings tuned for tests: short timeouts so failover is quick."""
    defaults: dict[str, object] = {
        "request_timeout_ms": 5_000,
        "session_timeout_ms": 6_000,
        "heartbeat_interval_ms": 500,
        "linger_ms": 1,
    }
    return KafkaSettings(cluster.bootstrap_servers, **(defaults | kw))  # type: ignore[arg-type]


@pytest.fixture(params=["postgres", "kafka"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def log_url(backend: str, request: pytest.FixtureRequest, database_url: str) -> str:
    """The URL of this test's log, for subprocesses."""
    if backend == "kafka":
        cluster: MockCluster = request.getfixturevalue("kafka_cluster")
        return f"kafka://{cluster.bootstrap_servers}"
    return database_url


@pytest.fixture
async def event_log(backend: str, request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[EventLog]:
    """A started log of each backend, with the hub's topics."""
    log: EventLog
    if backend == "kafka":
        cluster: MockCluster = request.getfixturevalue("kafka_cluster")
        log = KafkaLog(kafka_settings(cluster))
    else:
        log = PostgresLog(database_url)
    async with log:
        await log.ensure_topics({str(t): TEST_PARTITIONS for t in TOPICS})
        yield log
