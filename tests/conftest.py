from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from hub.infra.log.kafka import KafkaLog, KafkaSettings
from hub.infra.log.postgres import PostgresLog
from hub.infra.ports import EventLog
from hub.runtime import Runtime
from hub.settings import HubSettings
from schemas.events import TOPICS
from tests.support.kafka_mock import MockCluster
from tests.support.moto import start_moto
from tests.support.pg import create_database, drop_database

TEST_PARTITIONS = 4


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 server: a real HTTP S3 endpoint on 127.0.0.1, in its own process (so
    that memory measured in the tests is ours, not the server's)."""
    server, url = start_moto()
    yield url
    server.terminate()
    server.wait(10)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture(params=["file", "s3"])
def archive_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty archive location of each kind (a fresh bucket on the moto server)."""
    if request.param == "file":
        return (tmp_path / "archive").as_uri()
    request.getfixturevalue("aws_env")
    return f"s3://hub-test-{uuid.uuid4().hex[:12]}/archive"


@pytest.fixture
def s3_endpoint(archive_url: str, request: pytest.FixtureRequest) -> str | None:
    return (
        str(request.getfixturevalue("moto_endpoint")) if archive_url.startswith("s3://") else None
    )


@pytest.fixture
def database_url() -> Iterator[str]:
    """A fresh, empty database for this test (for sync and async tests alike)."""
    name = f"hubtest_{uuid.uuid4().hex[:12]}"
    dsn = asyncio.run(create_database(name))
    try:
        yield dsn
    finally:
        asyncio.run(drop_database(name))


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
async def event_log(
    backend: str, request: pytest.FixtureRequest, database_url: str
) -> AsyncIterator[EventLog]:
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


def settings_for(
    backend: str, log_url: str, database_url: str, home: Path, **kw: object
) -> HubSettings:
    """Hub settings for a test: its own database, its log, short timeouts, no .env."""
    values: dict[str, object] = {
        "database_url": database_url,
        "log_url": log_url if backend == "kafka" else None,
        "home": home,
        "partitions": TEST_PARTITIONS,
        "kafka_request_timeout_ms": 5_000,
        "kafka_session_timeout_ms": 6_000,
        "kafka_linger_ms": 1,
        "batch_linger_ms": 5,
        "retry_max_s": 1.0,
        "run_projectors": "never",
    }
    return HubSettings.model_validate(values | kw)


@pytest.fixture
async def runtime(hub_settings: HubSettings) -> AsyncIterator[Runtime]:
    """A started Runtime (pool, log, codec, producer) on this test's database and log."""
    async with Runtime(hub_settings) as rt:
        yield rt


@pytest.fixture
def hub_settings(backend: str, log_url: str, database_url: str, tmp_path: Path) -> HubSettings:
    return settings_for(backend, log_url, database_url, tmp_path / "home")


def hub_env(settings: HubSettings) -> dict[str, str]:
    """Environment variables that give a subprocess the same settings."""
    return settings.child_env()
