"""LangGraph checkpointer benchmark (issue 14), all in one run on the same Postgres.

    python -m tests.bench.langgraph [--threads 1000] [--steps 10] [--copies 10,1000,100000]
                                    [--rounds 1]

1. The same ``StateGraph`` chat agent (``MessagesState``, a fake chat model: no network)
   runs ``--steps`` turns (``ainvoke``) in each of ``--threads`` threads, 16 threads at a
   time, with LangGraph's ``AsyncPostgresSaver`` and with ``HubCheckpointSaver`` (the
   Postgres log, projectors in this process; with and without the ``messages`` mirror
   into ``hub.sessions``; and both again with the projectors in a child process of the
   hub, ``run_projectors="process"``), each on a fresh database of the same server. Both
   acknowledge a checkpoint once it is committed. Ratio = their time / ours (goal >= 2).
   The final states of every thread must be the same for all. The same graph with
   LangGraph's ``InMemorySaver`` (nothing persisted, nothing committed) is timed too: no
   saver can make the graph faster than that, so it bounds every ratio. So does the
   floor (``tests.bench.langgraph_floor``): ``InMemorySaver`` that also commits a row per
   put, in group commits, before it returns; nothing to query, nothing projected: the
   least a saver that acknowledges committed checkpoints can do. ``--rounds N``
   runs them all N times, every other round in the opposite order, and reports medians
   (the machines are noisy: one round's ratios moved by 20% between runs).
2. ``copy_thread`` of a thread with 10, 1,000 and 100,000 checkpoints: median of 5
   copies, each until the copy is readable. Goal: time at 100,000 / time at 10 <= 1.5.
   (``AsyncPostgresSaver`` has no ``copy_thread`` to compare with.)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import asyncpg
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph

from hub.checkpoints.client import Serialized
from hub.client import Hub
from hub.infra.logs import configure_logging
from hub.integrations.langgraph import HubCheckpointSaver
from hub.settings import HubSettings
from schemas.checkpoints import CheckpointSaved, StoredValue
from tests.bench.langgraph_floor import FloorSaver, create_floor_table
from tests.support.pg import create_database, drop_database

CONCURRENCY = 16
MEMORY, POSTGRES = "in memory", "postgres"
MIRROR, BARE = "messages mirror, projectors in process", "checkpoints only, projectors in process"
APART, BARE_APART = "messages mirror, projectors apart", "checkpoints only, projectors apart"
FLOOR = "floor"


def build(saver: BaseCheckpointSaver[Any], steps: int) -> Any:
    def agent(state: MessagesState) -> dict[str, Any]:
        turn = len(state["messages"]) // 2
        model = GenericFakeChatModel(messages=iter([AIMessage(f"answer {turn}")]))
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_edge(START, "agent")
    return builder.compile(checkpointer=saver)


async def conversations(
    saver: BaseCheckpointSaver[Any], threads: int, steps: int
) -> tuple[float, list[Any]]:
    app = build(saver, steps)
    limiter = anyio.Semaphore(CONCURRENCY)
    finals: list[Any] = [None] * threads

    async def thread(n: int) -> None:
        async with limiter:
            config = {"configurable": {"thread_id": f"thread-{n}"}}
            for step in range(steps):
                await app.ainvoke({"messages": [HumanMessage(f"question {step}")]}, config)
            state = await app.aget_state(config)
            finals[n] = [(m.type, m.content) for m in state.values["messages"]]

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for n in range(threads):
            tg.start_soon(thread, n)
    return time.perf_counter() - started, finals


def settings(url: str) -> HubSettings:
    return HubSettings(
        database_url=url, home=Path(tempfile.mkdtemp(prefix="hub-bench-")), run_projectors="always"
    )


async def on_fresh_database(run: Callable[[str], Awaitable[Any]]) -> Any:
    name = f"hubbench_{uuid.uuid4().hex[:8]}"
    url = await create_database(name)
    try:
        return await run(url)
    finally:
        await drop_database(name)


async def postgres_saver(url: str, threads: int, steps: int) -> tuple[float, list[Any]]:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg_pool import AsyncConnectionPool

    async with AsyncConnectionPool(
        url, max_size=CONCURRENCY, kwargs={"autocommit": True}, open=False
    ) as pool:
        saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
        await saver.setup()
        return await conversations(saver, threads, steps)


async def floor_saver(url: str, threads: int, steps: int) -> tuple[float, list[Any]]:
    """``FloorSaver``: in memory, each put committed (group commit) before it returns."""
    async with asyncpg.create_pool(url, min_size=2, max_size=2) as pool:
        await create_floor_table(pool)
        return await conversations(FloorSaver(pool), threads, steps)


async def hub_saver(
    url: str, threads: int, steps: int, mirror: bool, apart: bool = False
) -> tuple[float, list[Any]]:
    """``apart``: the projectors in a child process of the hub (``run_projectors =
    "process"``), as a deployment runs them apart too, instead of in the agent's process."""
    setup = settings(url)
    if apart:
        setup = setup.model_copy(update={"run_projectors": "process"})
    async with Hub(setup) as hub:
        if apart:
            warm = Serialized("json", b"{}")  # timed once the projectors answer
            await hub.checkpoints.save("warm-up", checkpoint_id="0", checkpoint=warm, metadata=warm)
            assert await hub.checkpoints.get("warm-up") is not None
        saver = HubCheckpointSaver(hub, messages_to_sessions=mirror)
        return await conversations(saver, threads, steps)


async def copies(url: str, sizes: list[int]) -> dict[int, float]:
    """Median time of a copy_thread (until readable) per source length."""
    value = Serialized("json", b"{}")
    out: dict[int, float] = {}
    async with Hub(settings(url)) as hub:
        for size in sizes:
            source = f"long-{size}"
            ctx = hub.context
            for start in range(0, size, 1000):
                events = [
                    CheckpointSaved(
                        **ctx.envelope(),
                        thread_id=source,
                        checkpoint_id=f"{i:08}",
                        parent_checkpoint_id=f"{i - 1:08}" if i else None,
                        checkpoint=StoredValue(type="json", data=b"{}"),
                        metadata=StoredValue(type="json", data=b"{}"),
                        channel_versions={"messages": str(i)},
                    )
                    for i in range(start, min(size, start + 1000))
                ]
                await hub.emit(*events)
            await hub.checkpoints.save(
                source, checkpoint_id=f"{size:08}", checkpoint=value, metadata=value
            )
            await hub.wait_for_projections()
            times = []
            for k in range(5):
                started = time.perf_counter()
                await hub.checkpoints.copy_thread(source, f"copy-{size}-{k}")
                found = await hub.checkpoints.get(f"copy-{size}-{k}")
                times.append(time.perf_counter() - started)
                assert found is not None and found.checkpoint_id == f"{size:08}"
            out[size] = statistics.median(times)
    return out


async def one_round(threads: int, steps: int, backwards: bool) -> dict[str, float]:
    """Each saver's time for the same conversations, each on a fresh database; in the
    opposite order when ``backwards`` (rounds alternate, so a machine that speeds up or
    slows down during a round favours no saver)."""
    runs: dict[str, Callable[[], Awaitable[tuple[float, list[Any]]]]] = {
        MEMORY: lambda: conversations(InMemorySaver(), threads, steps),
        POSTGRES: lambda: on_fresh_database(lambda u: postgres_saver(u, threads, steps)),
        MIRROR: lambda: on_fresh_database(lambda u: hub_saver(u, threads, steps, True)),
        BARE: lambda: on_fresh_database(lambda u: hub_saver(u, threads, steps, False)),
        APART: lambda: on_fresh_database(lambda u: hub_saver(u, threads, steps, True, apart=True)),
        BARE_APART: lambda: on_fresh_database(
            lambda u: hub_saver(u, threads, steps, False, apart=True)
        ),
        FLOOR: lambda: on_fresh_database(lambda u: floor_saver(u, threads, steps)),
    }
    took: dict[str, float] = {}
    finals: list[list[Any]] = []
    for name in reversed(runs) if backwards else runs:
        took[name], found = await runs[name]()
        finals.append(found)
    assert all(f == finals[0] for f in finals), "final states differ"
    return took


async def main_async(args: argparse.Namespace) -> None:
    threads, steps, rounds = args.threads, args.steps, args.rounds
    print(
        f"LangGraph benchmark: {threads:,} threads x {steps} turns, {CONCURRENCY} at a time, "
        f"{rounds} round(s)\n"
    )
    times = [await one_round(threads, steps, backwards=r % 2 == 1) for r in range(rounds)]
    turns = threads * steps

    def median(name: str) -> float:
        return statistics.median(t[name] for t in times)

    def ratio_of(name: str) -> float:  # the median of each round's ratio
        return statistics.median(t[POSTGRES] / t[name] for t in times)

    memory, theirs = median(MEMORY), median(POSTGRES)
    print(
        f"InMemorySaver (persists nothing)         {turns / memory:8,.0f} turns/s ({memory:6.2f} s)"
        f"  the most any saver allows: ratio {ratio_of(MEMORY):4.2f}"
    )
    print(
        f"AsyncPostgresSaver                       {turns / theirs:8,.0f} turns/s ({theirs:6.2f} s)"
    )
    floor = median(FLOOR)
    print(
        f"floor (in memory + a durable row per put){turns / floor:8,.0f} turns/s ({floor:6.2f} s)"
        f"  ratio {ratio_of(FLOOR):4.2f}: the most a saver that commits every put allows"
    )
    print("HubCheckpointSaver (projectors apart: run_projectors='process')")
    for name in (MIRROR, BARE, APART, BARE_APART):
        took, r = median(name), ratio_of(name)
        verdict = "meets" if r >= 2 else "BELOW"
        print(
            f"  {name:<39}{turns / took:8,.0f} turns/s ({took:6.2f} s)"
            f"  ratio {r:4.2f} (goal >= 2) {verdict}"
        )
    if rounds > 1:
        print("(medians over the rounds; a ratio is the median of the rounds' ratios)")
    sizes = [int(s) for s in args.copies.split(",")]
    timings = await on_fresh_database(lambda u: copies(u, sizes))
    print()
    for size, took in timings.items():
        print(f"copy_thread of {size:>9,} checkpoints: {took * 1000:7.1f} ms (median of 5)")
    ratio = timings[sizes[-1]] / timings[sizes[0]]
    verdict = "meets" if ratio <= 1.5 else "ABOVE"
    print(f"time at {sizes[-1]:,} / time at {sizes[0]:,}: {ratio:.2f} (goal <= 1.5) {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--copies", default="10,1000,100000")
    parser.add_argument(
        "--rounds", type=int, default=1, help="runs of every saver, alternating their order"
    )
    args = parser.parse_args()
    configure_logging("warning")
    anyio.run(main_async, args)


if __name__ == "__main__":
    main()
