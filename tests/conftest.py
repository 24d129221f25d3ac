from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.infra.log.kafka import KafkaLog, KafkaSettings
from hub.infra.log.postgres import PostgresLog
from hub.infra.ports import EventLog
from hub.runtime import Runtime
from hub.settings import HubSettings
from schemas.events import TOPICS
from tests.support.kafka_broker import (
    KafkaBroker,
    KafkaUnderTest,
    RealKafka,
    can_run_broker,
    require_real,
)
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


KAFKA_USED: set[str] = set()  # what the Kafka tests ran against, for the summary


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker | None]:
    """The real broker the suite runs (None where Java or Maven is missing)."""
    if not can_run_broker():
        if require_real():
            pytest.fail("HUB_TEST_KAFKA=real, but Java or Maven is missing to run the broker")
        yield None
        return
    broker = KafkaBroker()
    try:
        broker.start()
        yield broker
    finally:
        broker.close()


@pytest.fixture
def kafka_cluster(request: pytest.FixtureRequest) -> Iterator[KafkaUnderTest]:
    """Kafka with the hub's topics, in a namespace of this test's own: an external broker
    (``HUB_TEST_KAFKA_BOOTSTRAP``), else the real broker the suite runs, else (no Java)
    librdkafka's mock cluster. Tests marked ``kafka_outage`` stop and start the broker, so
    they always get one the suite runs."""
    topics = {str(t): TEST_PARTITIONS for t in TOPICS}
    external = os.environ.get("HUB_TEST_KAFKA_BOOTSTRAP")
    broker: KafkaBroker | None = None
    if not external or request.node.get_closest_marker("kafka_outage"):
        broker = request.getfixturevalue("kafka_broker")
        if broker is None:
            with MockCluster(3) as mock:
                mock.create_topics(topics)
                KAFKA_USED.add(mock.description + ": Java or Maven missing, NOT a real broker")
                yield mock
            return
    kafka = RealKafka(broker.bootstrap_servers if broker else str(external), broker)
    kafka.create_topics(topics)
    KAFKA_USED.add(kafka.description)
    try:
        yield kafka
    finally:
        kafka.cleanup()


def pytest_configure(config: pytest.Config) -> None:
    """Run as root, the embedded Postgres of the e2e tests runs as the ``pgserver`` user,
    which must reach its data under ``tmp_path``. pytest's own ``pytest-of-root`` is
    reset to owner-only by every pytest session that starts (another developer's run,
    for one), so this session's temporary files live in a directory of its own."""
    if config.option.basetemp is None and hasattr(os, "geteuid") and os.geteuid() == 0:
        base = Path(tempfile.mkdtemp(prefix="hub-tests-"))
        base.chmod(0o755)
        config.option.basetemp = str(base / "tmp")
        config.stash[_OWN_BASETEMP] = base


def pytest_unconfigure(config: pytest.Config) -> None:
    base = config.stash.get(_OWN_BASETEMP, None)
    if base is not None:
        shutil.rmtree(base, ignore_errors=True)


_OWN_BASETEMP = pytest.StashKey[Path]()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for used in sorted(KAFKA_USED):
        terminalreporter.write_line(f"kafka: the Kafka tests ran against {used}")


def kafka_settings(cluster: KafkaUnderTest, **kw: object) -> KafkaSettings:
    """Client settings tuned for tests: short timeouts so failover is quick."""
    defaults: dict[str, object] = {
        "request_timeout_ms": 5_000,
        "session_timeout_ms": 6_000,
        "heartbeat_interval_ms": 500,
        "linger_ms": 1,
    }
    return KafkaSettings(
        cluster.bootstrap_servers,
        namespace=cluster.namespace,
        **(defaults | kw),  # type: ignore[arg-type]
    )


@pytest.fixture(params=["postgres", "kafka"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def log_url(backend: str, request: pytest.FixtureRequest, database_url: str) -> str:
    """The URL of this test's log, for subprocesses."""
    if backend == "kafka":
        cluster: KafkaUnderTest = request.getfixturevalue("kafka_cluster")
        return cluster.url
    return database_url


@pytest.fixture
async def event_log(
    backend: str, request: pytest.FixtureRequest, database_url: str
) -> AsyncIterator[EventLog]:
    """A started log of each backend, with the hub's topics."""
    log: EventLog
    if backend == "kafka":
        cluster: KafkaUnderTest = request.getfixturevalue("kafka_cluster")
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
