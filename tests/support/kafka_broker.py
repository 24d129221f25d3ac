"""Where the test suite gets Kafka.

1. ``HUB_TEST_KAFKA_BOOTSTRAP=host:9092``: an external broker the user runs. Outage tests,
   which stop and start a broker, still use a broker of their own (2 or 3 below).
2. A real Apache Kafka broker (single node, KRaft, on loopback), run from the
   ``org.apache.kafka:kafka_2.13`` jars that ``mvn`` fetches into
   ``tests/support/kafka/target/lib`` (see the ``pom.xml`` there). Needs Java 17+ and Maven.
3. Where Java or Maven is missing: librdkafka's mock cluster (in the confluent-kafka wheel),
   and the test summary says so. ``HUB_TEST_KAFKA=real`` (set by ``.ci/run``) forbids this
   fallback: the run fails instead.

Each test gets its own namespace on the shared broker (``kafka://...?namespace=t1234.``):
its own topics and consumer groups, deleted afterwards. An outage is a real stop and start
of the broker process.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "KAFKA_VERSION",
    "KafkaBroker",
    "KafkaUnderTest",
    "RealKafka",
    "broker_jars",
    "can_run_broker",
    "kafka_for",
]

HERE = Path(__file__).parent / "kafka"
KAFKA_VERSION = "4.1.1"  # the pom's kafka.version


class KafkaUnderTest(Protocol):
    """What a test needs of its Kafka: where it is, and how to break it."""

    bootstrap_servers: str
    namespace: str
    description: str

    @property
    def url(self) -> str: ...

    def create_topics(self, topics: Mapping[str, int]) -> None: ...

    def delete_records(self, topic: str, partition: int, before: int) -> None: ...

    def set_down(self, *broker_ids: int) -> None: ...

    def set_up(self, *broker_ids: int) -> None: ...


def can_run_broker() -> bool:
    return shutil.which("java") is not None and (
        (HERE / "target" / "lib").is_dir() or shutil.which("mvn") is not None
    )


def broker_jars() -> Path:
    """The broker's class path directory, fetched with ``mvn`` on first use."""
    lib = HERE / "target" / "lib"
    if not any(lib.glob(f"kafka_2.13-{KAFKA_VERSION}.jar")):
        subprocess.run(
            ["mvn", "-q", "-B", "-f", str(HERE / "pom.xml"), "package"],
            check=True,
            timeout=900,
            stdout=subprocess.DEVNULL,
        )
    return lib


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class KafkaBroker:
    """One Kafka broker process (broker and controller), KRaft, on 127.0.0.1."""

    def __init__(self, home: Path | None = None) -> None:
        self.home = home or Path(tempfile.mkdtemp(prefix="hub-test-kafka-"))
        self.port, self.controller_port = _free_port(), _free_port()
        self.bootstrap_servers = f"127.0.0.1:{self.port}"
        self.version = KAFKA_VERSION
        self._proc: subprocess.Popen[bytes] | None = None
        self._classpath = f"{broker_jars()}/*"
        self._config = self.home / "server.properties"
        self._config.write_text(self._properties())
        self._java(
            "kafka.tools.StorageTool", "format", "-t", self._cluster_id(), "-c", str(self._config)
        )

    def _properties(self) -> str:
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                f"listeners=PLAINTEXT://127.0.0.1:{self.port},"
                f"CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                f"log.dirs={self.home / 'data'}",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=4",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=false",
                "delete.topic.enable=true",
                "log.segment.bytes=16777216",
                "",
            ]
        )

    def _java(self, main: str, *args: str) -> str:
        done = subprocess.run(
            ["java", "-cp", self._classpath, main, *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{main} {' '.join(args)} failed: {done.stderr[-2000:]}")
        return done.stdout

    def _cluster_id(self) -> str:
        return self._java("kafka.tools.StorageTool", "random-uuid").strip().splitlines()[-1]

    def start(self, timeout: float = 90) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        log = (self.home / "broker.log").open("ab")
        self._proc = subprocess.Popen(
            [
                "java",
                "-Xms256m",
                "-Xmx768m",
                "-XX:+UseG1GC",
                "-Djava.awt.headless=true",
                "-cp",
                self._classpath,
                "kafka.Kafka",
                str(self._config),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + timeout
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 0})
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"the Kafka broker exited ({self._proc.returncode}); see {self.home}/broker.log"
                )
            try:
                md = admin.list_topics(timeout=2)
                if md.brokers and md.controller_id >= 0:
                    return
            except Exception:  # not ready yet
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Kafka broker did not start within {timeout:g}s")
            time.sleep(0.2)

    def stop(self, timeout: float = 60) -> None:
        """A clean stop (SIGTERM), as an operator's restart; SIGKILL if it hangs."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)


def _admin(bootstrap_servers: str) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0})


def _wait_all(futures: Mapping[Any, Any], what: str) -> None:
    for key, future in futures.items():
        try:
            future.result(timeout=60)
        except Exception as exc:
            raise RuntimeError(f"{what} {key}: {exc}") from exc


class RealKafka:
    """A test's view of a real broker: its own namespace; ``set_down``/``set_up`` stop
    and start the broker process (when the suite runs it)."""

    def __init__(self, bootstrap_servers: str, broker: KafkaBroker | None) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.broker = broker
        self.namespace = f"t{uuid.uuid4().hex[:10]}."
        where = "started by the suite" if broker else "external (HUB_TEST_KAFKA_BOOTSTRAP)"
        self.description = f"Apache Kafka {KAFKA_VERSION} broker, KRaft, {where}"
        if broker is None:
            self.description = f"external Kafka broker at {bootstrap_servers}"

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap_servers}?namespace={self.namespace}"

    def create_topics(self, topics: Mapping[str, int]) -> None:
        from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

        new = [NewTopic(self.namespace + t, n, 1) for t, n in topics.items()]
        admin = _admin(self.bootstrap_servers)  # kept alive until the futures resolve
        _wait_all(admin.create_topics(new), "create topic")

    def delete_records(self, topic: str, partition: int, before: int) -> None:
        """Retention: the broker drops the partition's records before ``before``."""
        from confluent_kafka import TopicPartition

        tp = TopicPartition(self.namespace + topic, partition, before)
        admin = _admin(self.bootstrap_servers)
        _wait_all(admin.delete_records([tp]), "delete records of")

    def set_down(self, *broker_ids: int) -> None:
        if self.broker is None:
            raise RuntimeError("the suite cannot stop an external broker")
        self.broker.stop()

    def set_up(self, *broker_ids: int) -> None:
        if self.broker is None:
            raise RuntimeError("the suite cannot start an external broker")
        self.broker.start()

    def cleanup(self) -> None:
        """Delete this test's topics (its groups expire with their offsets)."""
        if self.broker is not None and self.broker._proc is None:
            self.broker.start()
        admin = _admin(self.bootstrap_servers)
        mine = [t for t in admin.list_topics(timeout=30).topics if t.startswith(self.namespace)]
        if mine:
            _wait_all(admin.delete_topics(mine, operation_timeout=30), "delete topic")


def require_real() -> bool:
    return os.environ.get("HUB_TEST_KAFKA") == "real"


@contextmanager
def kafka_for(topics: Mapping[str, int]) -> Iterator[KafkaUnderTest]:
    """Kafka for a benchmark or script, chosen as the suite chooses (external, a broker of
    our own, else the mock cluster), with ``topics`` created in a fresh namespace."""
    external = os.environ.get("HUB_TEST_KAFKA_BOOTSTRAP")
    if external:
        kafka = RealKafka(external, None)
        kafka.create_topics(topics)
        try:
            yield kafka
        finally:
            kafka.cleanup()
        return
    if not can_run_broker():
        if require_real():
            raise RuntimeError("HUB_TEST_KAFKA=real, but Java or Maven is missing")
        from tests.support.kafka_mock import MockCluster

        with MockCluster(3) as mock:
            mock.create_topics(topics)
            yield mock
        return
    broker = KafkaBroker()
    try:
        broker.start()
        kafka = RealKafka(broker.bootstrap_servers, broker)
        kafka.create_topics(topics)
        yield kafka
    finally:
        broker.close()
