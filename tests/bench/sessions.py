"""Conversation store benchmark, all in one run.

    python -m tests.bench.sessions [--threads 2000] [--per-thread 100] [--skip-langgraph]

1. Append ``threads x per-thread`` messages (200,000 by default), one call per message:
   - the hub (``hub.sessions.append``, 64 in flight; timed until every message is
     projected and queryable), and also its batch form (``append_many``, 100 per call);
   - Strands' ``FileSessionManager`` (its repository's ``create_message``);
   - LangGraph's ``AsyncPostgresSaver`` on the same Postgres, one checkpoint per message
     (the ``messages`` channel's new version, as a ``MessagesState`` graph stores it).
2. Fork at the head of threads of 10, 1,000 and 100,000 messages (20 forks each):
   median time until the fork is readable, and bytes added to the read model per fork.
3. Read the last 50 messages of a thread at fork depth 5: p50 and p99 of 1,000 reads.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import anyio

from hub.client import Hub
from hub.infra.logs import configure_logging
from hub.settings import HubSettings
from tests.support.pg import create_database, drop_database

SIZES = """
SELECT sum(pg_total_relation_size(c))::bigint FROM unnest(ARRAY[
  'proj_sessions_v1.threads', 'proj_sessions_v1.messages', 'proj_sessions_v1.thread_events'
]::regclass[]) AS c
"""


def text(i: int) -> str:
    return f"message {i}: let us plan the next step of the project and check the budget"


def hub_settings(database_url: str, home: Path) -> HubSettings:
    return HubSettings.model_validate(
        {
            "database_url": database_url,
            "home": home,
            "run_projectors": "always",
            "log_level": "warning",
            "archive_url": (home / "archive").as_uri(),
        }
    )


# ── 1. appends ──────────────────────────────────────────────────────────────────────────


async def hub_appends(database_url: str, threads: int, per_thread: int, *, batched: bool) -> float:
    async with Hub(hub_settings(database_url, Path(tempfile.mkdtemp()))) as hub:
        s = hub.sessions
        ids = [(await s.start_thread(agent_id="bench")).thread_id for _ in range(threads)]
        await hub.wait_for_projections(timeout=600)
        limiter = anyio.Semaphore(64)
        started = time.perf_counter()

        async def one(thread_id: str, i: int) -> None:
            async with limiter:
                await s.append(thread_id, "user" if i % 2 == 0 else "assistant", text(i))

        if batched:
            async with anyio.create_task_group() as tg:
                for thread_id in ids:
                    batch = [{"role": "user", "content": text(i)} for i in range(per_thread)]
                    tg.start_soon(s.append_many, thread_id, batch)
        else:
            for i in range(per_thread):  # a conversation grows one message at a time
                async with anyio.create_task_group() as tg:
                    for thread_id in ids:
                        tg.start_soon(one, thread_id, i)
        await hub.wait_for_projections(timeout=3600)
        elapsed = time.perf_counter() - started
        count = await hub.runtime.pool.fetchval("SELECT count(*) FROM sessions.messages")
        assert count == threads * per_thread, count
        return elapsed


def strands_file_appends(threads: int, per_thread: int) -> float:
    from strands.session.file_session_manager import FileSessionManager
    from strands.types.session import SessionAgent, SessionMessage

    root = tempfile.mkdtemp(prefix="strands-bench-")
    managers = [FileSessionManager(session_id=f"s{t}", storage_dir=root) for t in range(threads)]
    for m in managers:
        m.create_agent(
            m.session_id, SessionAgent(agent_id="a", state={}, conversation_manager_state={})
        )
    started = time.perf_counter()
    for i in range(per_thread):
        message: Any = {
            "role": "user" if i % 2 == 0 else "assistant",
            "content": [{"text": text(i)}],
        }
        for m in managers:
            m.create_message(m.session_id, "a", SessionMessage(message, i))
    return time.perf_counter() - started


async def langgraph_appends(database_url: str, threads: int, per_thread: int) -> float:
    from langchain_core.messages import AIMessage, HumanMessage
    from langgraph.checkpoint.base import empty_checkpoint
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg_pool import AsyncConnectionPool

    conninfo = database_url.replace("postgresql://", "postgresql://", 1)
    async with AsyncConnectionPool(
        conninfo, max_size=16, kwargs={"autocommit": True}, open=False
    ) as pool:
        saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
        await saver.setup()
        state: dict[str, tuple[list[Any], Any]] = {f"t{t}": ([], None) for t in range(threads)}
        limiter = anyio.Semaphore(16)
        started = time.perf_counter()

        async def put(thread_id: str, i: int) -> None:
            async with limiter:
                messages, parent = state[thread_id]
                messages = [*messages, (HumanMessage if i % 2 == 0 else AIMessage)(content=text(i))]
                checkpoint = empty_checkpoint()
                checkpoint["channel_values"] = {"messages": messages}
                checkpoint["channel_versions"] = {"messages": i + 1}
                config: Any = parent or {
                    "configurable": {"thread_id": thread_id, "checkpoint_ns": ""}
                }
                new = await saver.aput(
                    config, checkpoint, {"source": "loop", "step": i}, {"messages": i + 1}
                )
                state[thread_id] = (messages, new)

        for i in range(per_thread):
            async with anyio.create_task_group() as tg:
                for thread_id in state:
                    tg.start_soon(put, thread_id, i)
        return time.perf_counter() - started


# ── 2. forks and 3. reads ───────────────────────────────────────────────────────────────


async def forks_and_reads(database_url: str, sizes: list[int]) -> None:
    async with Hub(hub_settings(database_url, Path(tempfile.mkdtemp()))) as hub:
        s = hub.sessions
        pool = hub.runtime.pool
        print("fork at the head (20 forks each; time until the fork is readable):")
        medians = {}
        for size in sizes:
            t = await s.start_thread(agent_id="bench")
            for start in range(0, size, 1000):
                await t.append_many(
                    [
                        {"role": "user", "content": text(i)}
                        for i in range(start, min(size, start + 1000))
                    ]
                )
            await hub.wait_for_projections(timeout=3600)
            await pool.execute("VACUUM ANALYZE proj_sessions_v1.threads, proj_sessions_v1.messages")
            before = await pool.fetchval(SIZES)
            times = []
            for _ in range(20):
                began = time.perf_counter()
                fork = await t.fork()
                await fork.info()  # waits until the fork is projected
                times.append(time.perf_counter() - began)
            grown = await pool.fetchval(SIZES) - before
            medians[size] = statistics.median(times)
            info = await t.stats()
            print(
                f"  {info.message_count:>7,} messages: median {medians[size] * 1000:7.2f} ms, "
                f"read model +{grown / 20:,.0f} bytes per fork"
            )
        ratio = medians[sizes[-1]] / medians[sizes[0]]
        print(f"  ratio {sizes[-1]:,} / {sizes[0]:,} messages: {ratio:.2f}")

        thread = await s.start_thread(agent_id="bench")
        for _ in range(5):
            await thread.append_many([{"role": "user", "content": text(i)} for i in range(200)])
            thread = await thread.fork()
        await thread.append_many([{"role": "user", "content": text(i)} for i in range(30)])
        assert (await thread.info()).depth == 5
        samples = []
        for _ in range(1000):
            began = time.perf_counter()
            found = await s.messages(thread.thread_id, limit=50)
            samples.append(time.perf_counter() - began)
            assert len(found) == 50
        samples.sort()
        print(
            "read the last 50 messages at fork depth 5 (1,000 reads): "
            f"p50 {samples[500] * 1000:.2f} ms, p99 {samples[990] * 1000:.2f} ms"
        )


async def main_async(args: argparse.Namespace) -> None:
    n = args.threads * args.per_thread
    print(f"sessions benchmark: {n:,} messages across {args.threads:,} threads\n")
    results: dict[str, float] = {}

    name = f"hubbench_{uuid.uuid4().hex[:8]}"
    url = await create_database(name)
    try:
        results["hub, append per message"] = await hub_appends(
            url, args.threads, args.per_thread, batched=False
        )
    finally:
        await drop_database(name)
    name = f"hubbench_{uuid.uuid4().hex[:8]}"
    url = await create_database(name)
    try:
        results["hub, append_many (100 per call)"] = await hub_appends(
            url, args.threads, args.per_thread, batched=True
        )
    finally:
        await drop_database(name)
    results["Strands FileSessionManager"] = await anyio.to_thread.run_sync(
        strands_file_appends, args.threads, args.per_thread
    )
    if not args.skip_langgraph:
        name = f"hubbench_{uuid.uuid4().hex[:8]}"
        url = await create_database(name)
        try:
            results["LangGraph AsyncPostgresSaver"] = await langgraph_appends(
                url, args.threads, args.per_thread
            )
        finally:
            await drop_database(name)
    ours = results["hub, append per message"]
    for label, elapsed in results.items():
        rate, slower = n / elapsed, elapsed / ours
        print(f"{label:<36} {rate:>10,.0f} msg/s  ({elapsed:7.2f} s)   time / hub's: {slower:5.2f}")
    print()
    name = f"hubbench_{uuid.uuid4().hex[:8]}"
    url = await create_database(name)
    try:
        await forks_and_reads(url, [10, 1000, args.long_thread])
    finally:
        await drop_database(name)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2000)
    parser.add_argument("--per-thread", type=int, default=100)
    parser.add_argument("--long-thread", type=int, default=100_000)
    parser.add_argument("--skip-langgraph", action="store_true")
    args = parser.parse_args()
    configure_logging("warning")
    anyio.run(main_async, args)


if __name__ == "__main__":
    main()
