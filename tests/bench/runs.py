"""Runs benchmark: metric ingest, warm prompt reads and artifact uploads, in one run.

    python -m tests.bench.runs [--metrics 20000] [--runs 3] [--artifact-mib 64]
                               [--backend kafka|postgres|both]

Figures (medians over ``--runs``; every run on fresh data), for each log:

- metric ingest: ``run.metric()`` for N metrics through the SDK (validation, encoding,
  batched appends to the log: the Postgres log, or Kafka, the real broker the test suite
  would use, else the mock cluster, as the output says) until the ``runs`` projection has
  applied them all (in-process projectors, exactly-once bookkeeping), against one raw
  asyncpg COPY of the same rows into an identical table with the same indexes. Timed
  once a warm-up metric has been projected (since 2026-12-01: before, the projectors'
  group joins were timed too, about 0.5 s on Kafka).
- get_current(): warm-cache reads, async (``hub.prompts.get_current``) and through the
  seeds' synchronous ``S3PromptManager.get_current()``; calls per second.
- artifact upload: ``run.store_artifact()`` of a file (streamed, multipart, sha256, then
  the event) to the moto S3 server, against one raw aioboto3 ``put_object`` of the same
  bytes held in memory.

Ratios are baseline time / our time: above 1 means we are faster than the baseline.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
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

from hub.client import Hub
from hub.infra.logs import configure_logging
from hub.settings import HubSettings
from schemas.events import Topic
from tests.bench import parser_with_backends
from tests.support.kafka_broker import kafka_for
from tests.support.moto import start_moto
from tests.support.pg import create_database, drop_database

PARTITIONS = 4


def settings(database_url: str, home: Path, **kw: Any) -> HubSettings:
    return HubSettings.model_validate(
        {
            "database_url": database_url,
            "home": home,
            "partitions": PARTITIONS,
            "run_projectors": "always",
            "tenant": "bench",
            "log_level": "warning",
        }
        | kw
    )


def median_line(
    label: str, n: int, ours: list[float], base: list[float], unit: str, goal: str = ""
) -> str:
    o, b = statistics.median(ours), statistics.median(base)
    return (
        f"{label:<28} ours {n / o:>11,.0f} {unit} ({o:6.2f}s)   baseline {n / b:>11,.0f} "
        f"{unit} ({b:6.2f}s)   ratio {b / o:5.2f}" + (f"   goal {goal}" if goal else "")
    )


# ── metric ingest ───────────────────────────────────────────────────────────────────────


async def ingest_ours(hub: Hub, n: int, runs: int = 2) -> float:
    """Seconds for ``n`` metrics in ``runs`` runs, until projected. Timed once a first
    metric has been projected: the in-process projectors have joined their groups (on
    Kafka a join takes about half a second), as the spine's project row is timed from the
    assignment."""
    async with hub.runs.start("bench-agent", run_id=f"warm-up-{uuid.uuid4().hex}") as run:
        await run.metric("latency_ms", 0.0, kind="timing", unit="ms")
    await hub.wait_for_projections(timeout=600)
    per_run = n // runs
    started = time.perf_counter()
    for _ in range(runs):
        async with hub.runs.start("bench-agent", run_id=f"bench-{uuid.uuid4().hex}") as run:
            for i in range(per_run):
                await run.metric("latency_ms", float(i % 997), kind="timing", unit="ms")
    await hub.wait_for_projections(timeout=600)
    return time.perf_counter() - started


async def ingest_raw_copy(database_url: str, n: int) -> float:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            """CREATE TABLE raw_metrics (
                tenant_id text NOT NULL, run_id text NOT NULL, agent_id text NOT NULL,
                name text NOT NULL, value double precision NOT NULL, kind text NOT NULL,
                unit text, tags jsonb NOT NULL, recorded_at timestamptz NOT NULL,
                event_id uuid NOT NULL);
            CREATE INDEX ON raw_metrics (tenant_id, run_id, name);
            CREATE INDEX ON raw_metrics (tenant_id, name, agent_id, recorded_at);"""
        )
        now = datetime.now(UTC)
        records = [
            (
                "bench",
                "run-1",
                "bench-agent",
                "latency_ms",
                float(i % 997),
                "timing",
                "ms",
                "{}",
                now,
                uuid.uuid4(),
            )
            for i in range(n)
        ]
        started = time.perf_counter()
        await conn.copy_records_to_table("raw_metrics", records=records)
        return time.perf_counter() - started
    finally:
        await conn.close()


# ── prompts ─────────────────────────────────────────────────────────────────────────────


async def warm_reads(hub: Hub, calls: int) -> float:
    await hub.prompts.ensure_exists("bench-prompt", "You are a benchmark.", "v1")
    assert await hub.prompts.get_current("bench-prompt") == "You are a benchmark."
    get = hub.prompts.get_current
    started = time.perf_counter()
    for _ in range(calls):
        await get("bench-prompt")
    return time.perf_counter() - started


def warm_reads_facade(local_dir: Path, database_url: str, calls: int) -> float:
    code = f"""
import os, time
os.environ["AGENT_HUB_LOCAL_DIR"] = {str(local_dir)!r}
os.environ["HUB_DATABASE_URL"] = {database_url!r}
from hub import S3PromptManager
m = S3PromptManager(agent_id="bench-facade")
m.ensure_exists(content="You are a benchmark.", version="v1")
m.get_current()
started = time.perf_counter()
for _ in range({calls}):
    m.get_current()
print(time.perf_counter() - started)
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "AGENT_HUB_"))}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    return float(done.stdout.strip().splitlines()[-1])


# ── artifacts ───────────────────────────────────────────────────────────────────────────


def random_file(path: Path, mib: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(1 << 20))
    return path


async def upload_ours(hub: Hub, path: Path) -> float:
    async with hub.runs.start("bench-agent") as run:
        await run.store_artifact("warm-up.txt", b"x")  # the store's client is long-lived
        started = time.perf_counter()
        await run.store_artifact(path.name, path)
        return time.perf_counter() - started


async def upload_raw(endpoint: str, bucket: str, data: bytes) -> float:
    session = aioboto3.Session()
    async with session.client("s3", endpoint_url=endpoint, region_name="us-east-1") as s3:
        started = time.perf_counter()
        await s3.put_object(Bucket=bucket, Key=f"raw/{uuid.uuid4()}", Body=data)
        return time.perf_counter() - started


# ── driver ──────────────────────────────────────────────────────────────────────────────


async def main_async(args: argparse.Namespace) -> None:
    home = Path(args.home)
    shutil.rmtree(home, ignore_errors=True)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    backends = ["postgres", "kafka"] if args.backend == "both" else [args.backend]
    moto, endpoint = start_moto()
    artifact = random_file(home / "artifact.bin", args.artifact_mib)
    data = artifact.read_bytes()
    print(
        f"runs benchmark: {args.metrics:,} metrics, {args.calls:,} prompt reads, "
        f"{args.artifact_mib} MiB artifact; {args.runs} runs, medians\n"
    )
    try:
        for backend in backends:
            await one_backend(args, backend, home / backend, endpoint, (artifact, data))
            print()
    finally:
        moto.terminate()


async def one_backend(
    args: argparse.Namespace,
    backend: str,
    home: Path,
    endpoint: str,
    artifact: tuple[Path, bytes],
) -> None:
    """Every figure, ``args.runs`` times, on one log (Kafka: fresh topics each run, so a
    run's projectors do not apply the runs before it). ``artifact``: the file uploaded,
    and its bytes (the raw put's)."""
    path, data = artifact
    where: set[str] = set()
    ingest: tuple[list[float], list[float]] = ([], [])
    reads: tuple[list[float], list[float]] = ([], [])
    uploads: tuple[list[float], list[float]] = ([], [])
    for i in range(args.runs):
        name = f"hubbench_{uuid.uuid4().hex[:10]}"
        database_url = await create_database(name)
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        try:
            with ExitStack() as stack:
                log_url = None
                if backend == "kafka":
                    cluster = stack.enter_context(kafka_for({str(t): PARTITIONS for t in Topic}))
                    log_url = cluster.url
                    where.add(cluster.description)
                s = settings(
                    database_url,
                    home / f"run{i}",
                    log_url=log_url,
                    archive_url=f"s3://{bucket}/hub",
                    s3_endpoint_url=endpoint,
                )
                async with Hub(s) as hub:
                    ingest[0].append(await ingest_ours(hub, args.metrics))
                    reads[0].append(await warm_reads(hub, args.calls))
                    uploads[0].append(await upload_ours(hub, path))
            ingest[1].append(await ingest_raw_copy(database_url, args.metrics))
            uploads[1].append(await upload_raw(endpoint, bucket, data))
            reads[1].append(warm_reads_facade(home / f"facade{i}", database_url, args.calls))
        finally:
            await drop_database(name)
    n, mib = args.metrics, args.artifact_mib
    print(f"[{backend}] {', '.join(sorted(where)) or 'the Postgres log'}")
    print(median_line("metric ingest -> projection", n, *ingest, "metrics/s", ">= 0.5"))
    print("    (baseline: raw COPY of the same rows)")
    for label, times in (("async", reads[0]), ("facade", reads[1])):
        rate = args.calls / statistics.median(times)
        print(f"{'get_current() warm, ' + label:<28} {rate:>16,.0f} calls/s")
    print(median_line("artifact upload (S3)", mib, *uploads, "MiB/s"))
    print("    (baseline: raw aioboto3 put_object of the same bytes)")


def main() -> None:
    parser = parser_with_backends(__doc__, "/tmp/agent-hub-bench-runs")
    parser.add_argument("--metrics", type=int, default=20_000)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--artifact-mib", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    configure_logging("warning")
    runner: Callable[[], Coroutine[Any, Any, None]] = lambda: main_async(args)  # noqa: E731
    anyio.run(runner)


if __name__ == "__main__":
    main()
