"""Spine benchmark: produce and project, each against its baseline, in one run.

    python -m tests.bench.spine [--events 50000] [--runs 3] [--backend kafka|postgres|both]
                               [--workers auto|N]

Figures (medians over ``--runs``; every run on fresh data):

- produce: ``hub.emit()`` of AgentRegistered events built from plain fields (validation,
  Avro encoding, headers, keying included) in chunks of 500, against the same bytes sent
  the plain way: raw aiokafka ``send()`` with the same producer settings (Kafka: the real
  broker the test suite would use, else the mock cluster; the output names which), or raw
  asyncpg COPY into a table shaped like the log (Postgres log).
- project: a projector applying N events from the log to ``registry.agents`` and
  ``registry.agent_history`` (decode, exactly-once bookkeeping, dedupe, upsert), timed
  from assignment to caught up, against one raw COPY of the same rows (an agent and its
  history row per event, as the history benchmark's baseline) into tables made by the
  projection's migrations. Before 2026-11-30 the baseline copied the ``agents`` rows only,
  half the rows the projection writes. The projector runs in this
  process with the garbage-collector settings ``agent-hub up`` and ``agent-hub project``
  give theirs (:func:`hub.infra.tuning.tune_gc`).

- project, ``--workers N|auto``: the same events applied by N projector processes
  sharing the partitions through the consumer group, against one such process, both timed
  from the moment they are told to go (the group's join included), and against the raw
  COPY above (:mod:`tests.bench.spine_workers`).

Ratios are baseline time / our time: above 1 means we are faster than the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import uuid
from collections.abc import Callable, Coroutine
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import asyncpg
from aiokafka import AIOKafkaProducer

from hub.client import Hub
from hub.infra.log.partitioner import partition_for
from hub.infra.logs import configure_logging
from hub.infra.ports import TopicPartition
from hub.infra.tuning import gc_tuned
from hub.settings import HubSettings
from projections.registry import MIGRATIONS as REGISTRY_TABLES
from projections.registry import RegistryProjection
from schemas.events import AgentRegistered, Topic
from tests.bench import parser_with_backends
from tests.bench.spine_workers import caught_up, project_in_processes
from tests.support.kafka_broker import KafkaUnderTest, kafka_for
from tests.support.pg import create_database, drop_database

CHUNK = 500
PARTITIONS = 4
REGISTRY = str(Topic.REGISTRY)
# raw aiokafka's copy goes to a topic of its own: sent to ours, the projector would have
# had twice the events to apply (so did every Kafka "project" figure before 2026-11-30)
RAW_TOPIC = "bench.raw"
KAFKA_USED: set[str] = set()  # which Kafka the figures come from


@dataclass
class Figures:
    ours: list[float]
    baseline: list[float]

    def line(self, label: str, n: int, baseline_name: str, goal: float) -> str:
        ours, base = statistics.median(self.ours), statistics.median(self.baseline)
        return (
            f"{label:<34} ours {n / ours:>9,.0f} ev/s ({ours:6.2f}s)   "
            f"{baseline_name:<16} {n / base:>9,.0f} ev/s ({base:6.2f}s)   "
            f"ratio {base / ours:5.2f}   goal >= {goal}"
        )


def fields(n: int) -> list[dict[str, Any]]:
    return [
        {
            "agent_id": f"agent-{i:07d}",
            "description": f"benchmark agent number {i}, which plans and books travel",
            "tags": ["bench", "nlp" if i % 2 else "vision"],
            "metadata": {"owner": "bench", "i": i},
        }
        for i in range(n)
    ]


def settings(database_url: str, log_url: str | None, home: Path) -> HubSettings:
    return HubSettings.model_validate(
        {
            "database_url": database_url,
            "log_url": log_url,
            "home": home,
            "partitions": PARTITIONS,
            "run_projectors": "never",
            "tenant": "bench",
            "kafka_linger_ms": 5,
            "kafka_replication_factor": 3,
            "log_level": "warning",
        }
    )


async def fresh_database() -> tuple[str, str]:
    name = f"hubbench_{uuid.uuid4().hex[:10]}"
    return name, await create_database(name)


# ── produce ─────────────────────────────────────────────────────────────────────────────


async def produce_ours(hub: Hub, rows: list[dict[str, Any]]) -> float:
    envelope: dict[str, Any] = {"tenant_id": "bench", "actor": "bench"}
    started = time.perf_counter()
    for i in range(0, len(rows), CHUNK):
        events = [AgentRegistered(**envelope, **f) for f in rows[i : i + CHUNK]]
        await hub.emit(*events)
    return time.perf_counter() - started


def encoded(
    hub: Hub, rows: list[dict[str, Any]]
) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    producer = hub.runtime.producer
    out = []
    for f in rows:
        record = producer.record(AgentRegistered(tenant_id="bench", actor="bench", **f))
        out.append((record.key, record.value, list(record.headers)))
    return out


async def produce_raw_kafka(
    bootstrap: str, records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]], topic: str
) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        max_batch_size=1 << 20,
        max_request_size=1 << 20,
    )
    await producer.start()
    try:
        started = time.perf_counter()
        for i in range(0, len(records), CHUNK):
            futures = [
                await producer.send(topic, value, key=key, headers=headers)
                for key, value, headers in records[i : i + CHUNK]
            ]
            for future in futures:
                await future
        return time.perf_counter() - started
    finally:
        await producer.stop()


async def produce_raw_copy(
    database_url: str, records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]]
) -> float:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            """CREATE TABLE raw_log (topic text, partition int, "offset" bigint, key bytea,
               value bytea NOT NULL, header_keys text[], header_values bytea[], ts timestamptz,
               PRIMARY KEY (topic, partition, "offset"))"""
        )
        offsets = [0] * PARTITIONS
        started = time.perf_counter()
        for i in range(0, len(records), CHUNK):
            rows = []
            now = datetime.now(UTC)
            for key, value, headers in records[i : i + CHUNK]:
                p = partition_for(key, PARTITIONS)
                rows.append(
                    (
                        REGISTRY,
                        p,
                        offsets[p],
                        key,
                        value,
                        [h[0] for h in headers],
                        [h[1] for h in headers],
                        now,
                    )
                )
                offsets[p] += 1
            async with conn.transaction():
                await conn.copy_records_to_table("raw_log", records=rows)
        return time.perf_counter() - started
    finally:
        await conn.close()


# ── project ─────────────────────────────────────────────────────────────────────────────


async def project_ours(hub: Hub, n: int) -> float:
    with gc_tuned():  # as the processes that run projectors have it (produce keeps defaults)
        return await _project_ours(hub, n)


async def _project_ours(hub: Hub, n: int) -> float:
    projection = RegistryProjection()
    projector = hub.runtime.projector(projection)
    assigned = anyio.Event()
    original = projector.on_assigned

    async def on_assigned(partitions: frozenset[TopicPartition]) -> Any:
        result = await original(partitions)
        assigned.set()
        return result

    projector.on_assigned = on_assigned  # type: ignore[method-assign]
    ends = await hub.runtime.log.end_offsets(
        [TopicPartition(REGISTRY, p) for p in range(PARTITIONS)]
    )
    async with anyio.create_task_group() as tg:
        await tg.start(projector.run)
        await assigned.wait()
        started = time.perf_counter()
        while not await caught_up(hub, projection.consumer, ends):
            await anyio.sleep(0.01)
        elapsed = time.perf_counter() - started
        projector.stop_soon()
    count = await hub.runtime.pool.fetchval("SELECT count(*) FROM registry.agents")
    assert count == n, f"projected {count} of {n}"
    return elapsed


async def project_raw_copy(database_url: str, rows: list[dict[str, Any]]) -> float:
    """One raw COPY of the rows the projection writes for these events (an ``agents`` row
    and an ``agent_history`` row each) into tables made by the projection's own
    migrations, so with the same indexes."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("CREATE SCHEMA raw_registry")
        for sql in REGISTRY_TABLES:
            await conn.execute(sql.format(schema="raw_registry"))
        now = datetime.now(UTC)
        agents, history = [], []
        for i, f in enumerate(rows):
            meta, event_id = json.dumps(f["metadata"]), uuid.uuid4()
            agent_id, description, tags = f["agent_id"], f["description"], f["tags"]
            agents.append(
                (
                    *("bench", agent_id, description, tags, meta, "active", now, now),
                    *(None, None, 1, event_id),
                )
            )
            history.append(
                (
                    *("bench", agent_id, "registered", description, tags, meta, None, now),
                    *(REGISTRY, i % PARTITIONS, i // PARTITIONS, event_id),
                )
            )
        started = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table("agents", schema_name="raw_registry", records=agents)
            await conn.copy_records_to_table(
                "agent_history", schema_name="raw_registry", records=history
            )
        return time.perf_counter() - started
    finally:
        await conn.close()


# ── driver ──────────────────────────────────────────────────────────────────────────────


def kafka_if(stack: ExitStack, backend: str) -> KafkaUnderTest | None:
    """The Kafka a ``kafka`` run uses, with every topic (closed by ``stack``); ``None``
    for the Postgres log."""
    if backend != "kafka":
        return None
    topics = {str(t): PARTITIONS for t in Topic} | {RAW_TOPIC: PARTITIONS}
    return stack.enter_context(kafka_for(topics))


async def one_run(backend: str, n: int, home: Path) -> tuple[float, float, float, float]:
    rows = fields(n)
    name, database_url = await fresh_database()
    with ExitStack() as stack:
        cluster = kafka_if(stack, backend)
        if cluster is not None:
            KAFKA_USED.add(cluster.description)
        try:
            log_url = cluster.url if cluster is not None else None
            async with Hub(settings(database_url, log_url, home)) as hub:
                ours_produce = await produce_ours(hub, rows)
                records = encoded(hub, rows)
                if cluster is not None:
                    base_produce = await produce_raw_kafka(
                        cluster.bootstrap_servers, records, cluster.namespace + RAW_TOPIC
                    )
                else:
                    base_produce = await produce_raw_copy(database_url, records)
                ours_project = await project_ours(hub, n)
            base_project = await project_raw_copy(database_url, rows)
            return ours_produce, base_produce, ours_project, base_project
        finally:
            await drop_database(name)


async def in_processes(backend: str, n: int, home: Path, workers: int) -> float:
    """The ``--workers`` figure: ``n`` events produced (not timed), then applied by
    ``workers`` projector processes (:mod:`tests.bench.spine_workers`)."""
    name, database_url = await fresh_database()
    with ExitStack() as stack:
        cluster = kafka_if(stack, backend)
        try:
            s = settings(database_url, cluster.url if cluster is not None else None, home)
            async with Hub(s) as hub:
                await produce_ours(hub, fields(n))
                return await project_in_processes(hub, s, n, workers)
        finally:
            await drop_database(name)


def workers_line(label: str, n: int, one: list[float], many: list[float], copy: float) -> str:
    one_s, many_s = statistics.median(one), statistics.median(many)
    return (
        f"{label:<34} ours {n / many_s:>9,.0f} ev/s ({many_s:6.2f}s)   "
        f"1 process {n / one_s:>9,.0f} ev/s ({one_s:6.2f}s)   speed-up {one_s / many_s:4.2f}   "
        f"ratio to raw COPY {copy / many_s:5.2f}   goal >= 0.5"
    )


async def main_async(args: argparse.Namespace) -> None:
    backends = ["postgres", "kafka"] if args.backend == "both" else [args.backend]
    home = Path(args.home)
    workers = (os.cpu_count() or 1) if args.workers == "auto" else int(args.workers)
    print(f"spine benchmark: {args.events:,} events, {args.runs} runs per backend, medians\n")
    for backend in backends:
        produce, project = Figures([], []), Figures([], [])
        one: list[float] = []
        many: list[float] = []
        for _ in range(args.runs):
            ours_p, base_p, ours_j, base_j = await one_run(backend, args.events, home)
            produce.ours.append(ours_p)
            produce.baseline.append(base_p)
            project.ours.append(ours_j)
            project.baseline.append(base_j)
            if workers > 1:
                one.append(await in_processes(backend, args.events, home, 1))
                many.append(await in_processes(backend, args.events, home, workers))
        produce_base = "raw aiokafka" if backend == "kafka" else "raw COPY"
        print(produce.line(f"[{backend}] produce (SDK)", args.events, produce_base, 0.7))
        print(project.line(f"[{backend}] project to Postgres", args.events, "raw COPY, 2 tbl", 0.5))
        if many:
            label = f"[{backend}] project, --workers {args.workers} ({workers})"
            copy = statistics.median(project.baseline)
            print(workers_line(label, args.events, one, many, copy))
        if backend == "kafka":
            print(f"[kafka] measured on: {', '.join(sorted(KAFKA_USED))}")
        print()


def main() -> None:
    parser = parser_with_backends(__doc__, "/tmp/agent-hub-bench")
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--workers",
        default="auto",
        help="projector processes for the --workers row: N, or auto (one per core; 1: no such row)",
    )
    args = parser.parse_args()
    configure_logging("warning")
    runner: Callable[[], Coroutine[Any, Any, None]] = lambda: main_async(args)  # noqa: E731
    anyio.run(runner)


if __name__ == "__main__":
    main()
