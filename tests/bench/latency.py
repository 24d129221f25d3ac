"""Append-to-readable latency at a steady offered load (issue 13), on both logs.

    python -m tests.bench.latency [--rate 1000] [--seconds 20] [--backend postgres|kafka|both]

An agent (this process, the SDK in direct mode) appends one text message per call at a
steady ``--rate`` messages/s, over 50 threads, each append started on schedule whether
or not earlier ones have returned (an offered load, not a closed loop). The projectors run
in their own process, as ``agent-hub project`` (what ``agent-hub up`` runs). For one
append in ten, the time from ``append`` returning to ``thread.messages(limit=1)``
returning that message (the SDK's read-your-writes) is recorded after a warm-up second.

Printed per log: the rate reached, the CPU each append cost the agent's and the
projectors' processes, the append latency (call to return) and the append-to-readable
latency, p50 and p99. Goals: readable p99 <= 20 ms on the Postgres log,
<= 50 ms on Kafka (the output names which Kafka).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import anyio

from hub.client import Hub
from hub.infra.logs import configure_logging
from hub.sessions import Thread
from tests.bench import parser_with_backends
from tests.bench.spine import fresh_database, kafka_if, settings
from tests.support.pg import drop_database

THREADS = 50
PROBE_EVERY = 10
WARM_UP_S = 1.0
GOALS_MS = {"postgres": 20.0, "kafka": 50.0}


def quantiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds."""
    q = statistics.quantiles(samples, n=100)
    return q[49] * 1000, q[98] * 1000


async def offered_load(
    threads: list[Thread], rate: float, seconds: float
) -> tuple[float, list[float], list[float]]:
    """Append at ``rate``/s for ``seconds``; the rate reached, append and readable latencies."""
    appended: list[float] = []
    readable: list[float] = []
    total = int(rate * seconds)
    started = time.perf_counter()

    async def one(k: int) -> None:
        thread = threads[k % len(threads)]
        called = time.perf_counter()
        message_id = await thread.append("user", f"message {k}: the next step of the plan")
        returned = time.perf_counter()
        if returned - started < WARM_UP_S:
            return
        appended.append(returned - called)
        if k % PROBE_EVERY == 0:
            newest = await thread.messages(limit=10)  # others may have followed it already
            assert message_id in {m.message_id for m in newest}, f"message {k} is not readable"
            readable.append(time.perf_counter() - returned)

    async with anyio.create_task_group() as tg:
        for k in range(total):
            delay = started + k / rate - time.perf_counter()
            if delay > 0:
                await anyio.sleep(delay)
            tg.start_soon(one, k)
    return total / (time.perf_counter() - started), appended, readable


def process_cpu(pid: int) -> float:
    """CPU seconds (user and system) a process has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_projectors(hub: Hub) -> subprocess.Popen[bytes]:
    """``agent-hub project`` on the hub's database and log."""
    env = hub.settings.child_env() | {"HUB_DATABASE_URL": hub.runtime.database_url or ""}
    return subprocess.Popen([sys.executable, "-m", "hub.cli", "project"], env=env)


async def one_backend(backend: str, args: argparse.Namespace, home: Path) -> str:
    name, database_url = await fresh_database()
    with ExitStack() as stack:
        cluster = kafka_if(stack, backend)
        log_url = cluster.url if cluster is not None else None
        projectors: subprocess.Popen[bytes] | None = None
        try:
            async with Hub(settings(database_url, log_url, home)) as hub:
                projectors = start_projectors(hub)
                start = hub.sessions.start_thread
                threads = [await start(agent_id="bench") for _ in range(THREADS)]
                await threads[-1].messages(limit=1)  # the projectors are up and caught up
                cpu_before = time.process_time(), process_cpu(projectors.pid)
                rate, appended, readable = await offered_load(threads, args.rate, args.seconds)
                agent_cpu = time.process_time() - cpu_before[0]
                projector_cpu = process_cpu(projectors.pid) - cpu_before[1]
        finally:
            if projectors is not None:
                projectors.terminate()
                projectors.wait(timeout=60)
            await drop_database(name)
    a50, a99 = quantiles(appended)
    r50, r99 = quantiles(readable)
    goal = GOALS_MS[backend]
    mark = "meets" if r99 <= goal else "BELOW"
    where = f" ({cluster.description})" if cluster is not None else ""
    per_append = 1e6 / (args.rate * args.seconds)
    return (
        f"[{backend}]{where} offered {args.rate:,.0f}/s, reached {rate:,.0f}/s\n"
        f"  CPU per append:        agent {agent_cpu * per_append:4.0f} µs, "
        f"projectors {projector_cpu * per_append:4.0f} µs (their processes)\n"
        f"  append returns:        p50 {a50:6.1f} ms  p99 {a99:6.1f} ms  ({len(appended):,})\n"
        f"  append to readable:    p50 {r50:6.1f} ms  p99 {r99:6.1f} ms  ({len(readable):,} "
        f"probes; goal p99 <= {goal:g} ms) {mark}"
    )


async def main_async(args: argparse.Namespace) -> None:
    backends = ["postgres", "kafka"] if args.backend == "both" else [args.backend]
    home = Path(args.home)
    print(
        f"latency benchmark: one text message per append, {args.rate:,.0f}/s offered for "
        f"{args.seconds:g} s over {THREADS} threads; projectors in their own process\n"
    )
    for backend in backends:
        print(await one_backend(backend, args, home), flush=True)


def main() -> None:
    parser = parser_with_backends(__doc__, "/tmp/agent-hub-bench-latency")
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    args: Any = parser.parse_args()
    configure_logging("warning")
    anyio.run(main_async, args)


if __name__ == "__main__":
    main()
