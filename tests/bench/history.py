"""History benchmark: archiver throughput, rebuild from the archive, and the rebuild's
memory, in one run.

    python -m tests.bench.history [--events 1000000] [--small 100000]
                                  [--backend kafka|postgres|both]

- archiver: the log (registry events) into Avro segments on the moto S3 server, against
  two baselines: raw aioboto3 ``put_object`` of the same segment bytes (the issue's
  baseline: the puts alone), and a minimal raw archiver that reads the same records and
  puts their bytes as they are (no container, no compression, no manifest, no positions),
  10,000 at a time per partition: from the log's table with asyncpg (Postgres log), or
  with a raw aiokafka consumer assigned the partitions, with the fetch sizes our consumer
  uses (Kafka: the real broker the test suite would use, else the mock cluster; the
  output names which). Ours is timed from its start (S3 client made, group joined, as
  the baselines are timed with their client made) until every record is archived; once
  it has read everything it is stopped, and a graceful stop writes the last segments at
  once. It runs with the collector settings ``agent-hub up`` and ``agent-hub archive``
  give it. Before 2026-12-01 the time began before its start, the last segments waited
  for their age (0.5 s here) and the collector kept Python's defaults: about 0.3, 0.4
  and 0.2 s of the 2.2.
- rebuild: ``agent-hub rebuild registry`` with the log truncated (every event comes from
  the archive; on Kafka the broker deletes the records) into fresh tables, against a raw
  COPY of the same rows: the registry read model's two tables (``agents`` and
  ``agent_history``, one row each per event here), with the same indexes. The COPY of
  ``agents`` alone is shown too.
- rebuild with ``--workers auto`` (one process per core, sharing the partitions).
- memory: the peak RSS of the (one-worker) rebuild process at ``--events`` against
  ``--small`` events.

Ratios are baseline time / our time (memory: big / small).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Coroutine
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aioboto3
import anyio
import asyncpg
from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as KafkaPartition

from consumers.archive.archiver import Archiver
from hub.client import Hub
from hub.infra.log.kafka_common import KafkaSettings
from hub.infra.log.postgres import PostgresLog
from hub.infra.logs import configure_logging
from hub.infra.ports import ProducerRecord, TopicPartition
from hub.infra.tuning import gc_tuned
from hub.settings import HubSettings
from projections.registry import MIGRATIONS as REGISTRY_TABLES
from schemas.events import AgentRegistered, Topic
from tests.bench import parser_with_backends
from tests.support.kafka_broker import KafkaUnderTest, kafka_for
from tests.support.moto import start_moto
from tests.support.pg import create_database, drop_database

PARTITIONS = 4
REGISTRY = str(Topic.REGISTRY)
TPS = [TopicPartition(REGISTRY, p) for p in range(PARTITIONS)]

# Runs the rebuild CLI in this interpreter and reports its own peak RSS in KiB: VmHWM,
# not getrusage's ru_maxrss, which Linux carries over from the parent (this benchmark, a
# big process) into a child spawned with vfork and exec.
REBUILD = """
import re, sys
from pathlib import Path
from hub.cli.main import main
code = main(["rebuild", "registry", "--grace", "0", "--workers", sys.argv[1]])
hwm = re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text())
print("maxrss_kib", hwm[1] if hwm else 0, file=sys.stderr)
sys.exit(code)
"""


def settings(
    database_url: str, home: Path, endpoint: str, bucket: str, log_url: str | None
) -> HubSettings:
    return HubSettings.model_validate(
        {
            "database_url": database_url,
            "log_url": log_url,
            "home": home,
            "partitions": PARTITIONS,
            "run_projectors": "never",
            "tenant": "bench",
            "archive_url": f"s3://{bucket}/history",
            "s3_endpoint_url": endpoint,
            "archive_max_age_s": 0.5,  # the last, partial segment is not kept waiting
            "log_level": "warning",
        }
    )


def agent(i: int) -> dict[str, Any]:
    """The fields of the i-th agent: the same rows for our path and the raw COPY."""
    return {
        "agent_id": f"agent-{i:08d}",
        "description": f"benchmark agent {i}",
        "tags": ["bench"],
        "metadata": {},
    }


async def fill_log(hub: Hub, n: int) -> None:
    """N registry events in the log, appended in large batches (not what is measured)."""
    producer = hub.runtime.producer
    for start in range(0, n, 5000):
        records: list[ProducerRecord] = [
            producer.record(AgentRegistered(tenant_id="bench", actor="bench", **agent(i)))
            for i in range(start, min(n, start + 5000))
        ]
        await hub.runtime.log.append(records)


async def archive_ours(hub: Hub, n: int) -> float:
    """Seconds to archive the ``n`` records, from the archiver's start (its S3 client made
    and its group joined, as the baselines are timed with their client made). Once it has
    read them all, it is stopped, so the last segments are written at once (a graceful
    stop writes what it holds) rather than when they reach ``archive_max_age_s``."""
    archiver = hub.runtime.archiver()
    with gc_tuned():  # as `agent-hub up` and `agent-hub archive` run it
        return await _archive(hub, archiver, n)


async def _archive(hub: Hub, archiver: Archiver, n: int) -> float:
    async with anyio.create_task_group() as tg:
        await tg.start(archiver.run)
        started = time.perf_counter()
        while await archived(hub) < n:
            if archiver.stats.records + archiver.held >= n:
                archiver.stop_soon()
            await anyio.sleep(0.01)
        elapsed = time.perf_counter() - started
        archiver.stop_soon()
    return elapsed


async def archived(hub: Hub) -> int:
    """Records in the segments recorded so far."""
    sql = "SELECT coalesce(sum(records), 0) FROM hub.archive_segments"
    return int(await hub.runtime.pool.fetchval(sql))


async def archive_raw(hub: Hub, endpoint: str, bucket: str) -> tuple[float, int]:
    keys = [r[0] for r in await hub.runtime.pool.fetch("SELECT key FROM hub.archive_segments")]
    store = await hub.runtime.blob_store()
    blobs = [await store.get(k) for k in keys]  # read first: only the puts are timed
    session = aioboto3.Session()
    async with session.client("s3", endpoint_url=endpoint, region_name="us-east-1") as s3:
        started = time.perf_counter()
        for i, data in enumerate(blobs):
            await s3.put_object(Bucket=bucket, Key=f"raw/{i}", Body=data)
        return time.perf_counter() - started, sum(len(b) for b in blobs)


RAW_READ = """
SELECT "offset", value FROM hub_log.records
WHERE topic = $1 AND partition = $2 AND "offset" >= $3 ORDER BY "offset" LIMIT 10000
"""


async def archive_raw_read_put(database_url: str, endpoint: str, bucket: str) -> float:
    """The minimal archiver on the Postgres log: read the records with asyncpg, put their
    bytes as they are."""
    conn = await asyncpg.connect(database_url)
    session = aioboto3.Session()
    try:
        async with session.client("s3", endpoint_url=endpoint, region_name="us-east-1") as s3:
            started = time.perf_counter()
            for tp in TPS:
                position = 0
                while rows := await conn.fetch(RAW_READ, tp.topic, tp.partition, position):
                    body = b"".join(r[1] for r in rows)
                    key = f"raw-read/{tp.partition}/{position}"
                    await s3.put_object(Bucket=bucket, Key=key, Body=body)
                    position = rows[-1][0] + 1
            return time.perf_counter() - started
    finally:
        await conn.close()


async def archive_raw_kafka_read_put(
    cluster: KafkaUnderTest, n: int, endpoint: str, bucket: str
) -> float:
    """The minimal archiver on Kafka: a raw aiokafka consumer, assigned the partitions
    and fetching with our consumer's sizes, puts the bytes of each 10,000 records of a
    partition (fewer at its end) as they are."""
    fetch = KafkaSettings(cluster.bootstrap_servers).max_partition_fetch_bytes
    tps = [KafkaPartition(cluster.namespace + REGISTRY, p) for p in range(PARTITIONS)]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=cluster.bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_partition_fetch_bytes=fetch,
        fetch_max_bytes=max(fetch * 4, 50 << 20),
    )
    session = aioboto3.Session()
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        async with session.client("s3", endpoint_url=endpoint, region_name="us-east-1") as s3:
            started = time.perf_counter()
            held: dict[KafkaPartition, list[bytes]] = {tp: [] for tp in tps}
            read, puts = 0, 0
            with anyio.fail_after(600):
                while read < n:
                    for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                        held[tp] += [r.value for r in records if r.value is not None]
                        read += len(records)
                    for tp in tps:
                        while len(held[tp]) >= 10_000 or (read >= n and held[tp]):
                            chunk, held[tp] = held[tp][:10_000], held[tp][10_000:]
                            key = f"raw-read/{tp.partition}/{puts}"
                            await s3.put_object(Bucket=bucket, Key=key, Body=b"".join(chunk))
                            puts += 1
            return time.perf_counter() - started
    finally:
        await consumer.stop()


async def copy_same_rows(database_url: str, n: int) -> tuple[float, float]:
    """A raw COPY of the rows the rebuild writes, into tables like the projection's.

    Returns (seconds for ``agents``, seconds for ``agents`` and ``agent_history``).
    """
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("CREATE SCHEMA raw_registry")
        for sql in REGISTRY_TABLES:
            await conn.execute(sql.format(schema="raw_registry"))
        now = datetime.now(UTC)
        agents = []
        history = []
        for i in range(n):
            f = agent(i)
            meta = json.dumps(f["metadata"])
            event_id = uuid.uuid4()
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
        await conn.copy_records_to_table("agents", schema_name="raw_registry", records=agents)
        agents_only = time.perf_counter() - started
        await conn.copy_records_to_table(
            "agent_history", schema_name="raw_registry", records=history
        )
        return agents_only, time.perf_counter() - started
    finally:
        await conn.close()


async def forget_all(
    database_url: str, cluster: KafkaUnderTest | None, ends: dict[TopicPartition, int]
) -> None:
    """Retention: the log forgets every record (Kafka: the broker deletes them)."""
    if cluster is not None:
        for tp in TPS:
            await anyio.to_thread.run_sync(cluster.delete_records, tp.topic, tp.partition, ends[tp])
        return
    async with PostgresLog(database_url) as log:
        for tp in TPS:
            await log.truncate_before(tp, ends[tp])


def rebuild_process(env: dict[str, str], workers: str = "1") -> tuple[float, int]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", REBUILD, workers],
        env=env,
        capture_output=True,
        text=True,
        timeout=7200,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    rss = next(
        int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("maxrss_kib")
    )
    return elapsed, rss


def env_for(s: HubSettings) -> dict[str, str]:
    return s.child_env()


async def one(
    n: int, home: Path, endpoint: str, cluster: KafkaUnderTest | None
) -> dict[str, float]:
    name = f"hubbench_{uuid.uuid4().hex[:10]}"
    database_url = await create_database(name)
    bucket = f"hist-{uuid.uuid4().hex[:8]}"
    log_url = cluster.url if cluster is not None else None
    s = settings(database_url, home / name, endpoint, bucket, log_url)
    try:
        async with Hub(s) as hub:
            await fill_log(hub, n)
            ours_archive = await archive_ours(hub, n)
            raw_archive, archived_bytes = await archive_raw(hub, endpoint, bucket)
            if cluster is not None:
                raw_read_put = await archive_raw_kafka_read_put(cluster, n, endpoint, bucket)
            else:
                raw_read_put = await archive_raw_read_put(database_url, endpoint, bucket)
            ends = await hub.runtime.log.end_offsets(TPS)
        await forget_all(database_url, cluster, ends)
        ours_rebuild, rss = await anyio.to_thread.run_sync(rebuild_process, env_for(s))
        parallel, _ = await anyio.to_thread.run_sync(rebuild_process, env_for(s), "auto")
        copy_agents, copy_all = await copy_same_rows(database_url, n)
        return {
            "archive": ours_archive,
            "archive_raw": raw_archive,
            "archive_raw_read_put": raw_read_put,
            "archive_mib": archived_bytes / 2**20,
            "rebuild": ours_rebuild,
            "rebuild_parallel": parallel,
            "copy": copy_all,
            "copy_agents": copy_agents,
            "rss_kib": rss,
        }
    finally:
        await drop_database(name)


async def main_async(args: argparse.Namespace) -> None:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    backends = ["postgres", "kafka"] if args.backend == "both" else [args.backend]
    moto, endpoint = start_moto()
    home = Path(args.home)
    try:
        for backend in backends:
            small, _ = await one_on(backend, args.small, home, endpoint)
            big, where = await one_on(backend, args.events, home, endpoint)
            report(args, big, small, f"{backend}: {where}")
    finally:
        moto.terminate()


async def one_on(backend: str, n: int, home: Path, endpoint: str) -> tuple[dict[str, float], str]:
    """:func:`one` on ``backend``: Kafka gets fresh topics each time (a run's records
    must not meet another run's); and where it ran (which Kafka)."""
    with ExitStack() as stack:
        cluster = None
        if backend == "kafka":
            cluster = stack.enter_context(kafka_for({str(t): PARTITIONS for t in Topic}))
        where = cluster.description if cluster is not None else "the Postgres log"
        return await one(n, home, endpoint, cluster), where


def report(
    args: argparse.Namespace, big: dict[str, float], small: dict[str, float], where: str
) -> None:
    n = args.events
    print(f"history benchmark: {n:,} events (memory compared with {args.small:,}), {where}\n")
    print(
        f"archiver      ours {n / big['archive']:>10,.0f} ev/s ({big['archive']:7.2f}s, "
        f"{big['archive_mib']:.0f} MiB)\n"
        f"              raw put_object of the same bytes ({big['archive_raw']:7.2f}s)   "
        f"ratio {big['archive_raw'] / big['archive']:5.2f}\n"
        f"              raw read (asyncpg or aiokafka) + put of the records "
        f"({big['archive_raw_read_put']:7.2f}s)   "
        f"ratio {big['archive_raw_read_put'] / big['archive']:5.2f}   goal >= 0.7"
    )
    print(
        f"rebuild       ours {n / big['rebuild']:>10,.0f} ev/s ({big['rebuild']:7.2f}s, from the "
        f"archive, whole process)\n"
        f"              raw COPY of the same rows, agents + agent_history ({big['copy']:6.2f}s)   "
        f"ratio {big['copy'] / big['rebuild']:5.2f}   goal >= 0.5\n"
        f"              raw COPY of agents alone ({big['copy_agents']:6.2f}s)   "
        f"ratio {big['copy_agents'] / big['rebuild']:5.2f}"
    )
    cores = os.cpu_count() or 1
    print(
        f"rebuild --workers auto ({cores})  ours {n / big['rebuild_parallel']:>10,.0f} ev/s "
        f"({big['rebuild_parallel']:7.2f}s)   ratio to the same-rows COPY "
        f"{big['copy'] / big['rebuild_parallel']:5.2f} (goal >= 0.5)   speed-up over one worker "
        f"{big['rebuild'] / big['rebuild_parallel']:5.2f}"
    )
    print(
        f"rebuild RSS   {big['rss_kib'] / 1024:,.0f} MiB at {n:,}   "
        f"{small['rss_kib'] / 1024:,.0f} MiB at {args.small:,}   "
        f"ratio {big['rss_kib'] / small['rss_kib']:5.2f}"
    )
    print(json.dumps({"big": big, "small": small}))
    print()


def main() -> None:
    parser = parser_with_backends(__doc__, "/tmp/agent-hub-bench-history")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    args = parser.parse_args()
    configure_logging("warning")
    runner: Callable[[], Coroutine[Any, Any, None]] = lambda: main_async(args)  # noqa: E731
    anyio.run(runner)


if __name__ == "__main__":
    main()
