"""The projector against real Postgres and each log: exactly once, poison, retries, lag."""

from __future__ import annotations

import uuid
from typing import Any

import anyio
import asyncpg
import pytest

from consumers.applied_events import AppliedEvents, create_applied_events
from consumers.projector import Projector, ProjectorSettings
from hub.infra.ports import ProducerRecord, TopicPartition
from hub.runtime import Runtime
from projections.registry import RegistryProjection
from schemas.events import AgentRegistered, AgentRetired, AgentUpdated, DeadLettered, Event, Topic
from tests.conftest import TEST_PARTITIONS
from tests.support.counting_log import CountingLog
from tests.support.kafka_broker import KafkaUnderTest

pytestmark = pytest.mark.anyio

REGISTRY = str(Topic.REGISTRY)
ALL = [TopicPartition(REGISTRY, p) for p in range(TEST_PARTITIONS)]


def registered(agent: str, **kw: Any) -> AgentRegistered:
    return AgentRegistered(tenant_id="t1", actor="test", agent_id=agent, **kw)


def updated(agent: str, description: str) -> AgentUpdated:
    return AgentUpdated(
        tenant_id="t1", actor="test", agent_id=agent, description=description, tags=("x",)
    )


async def caught_up(runtime: Runtime, consumer: str, timeout: float = 60) -> None:
    """Wait until ``consumer``'s stored positions reach the log's end on every partition."""
    with anyio.fail_after(timeout):
        while True:
            ends = await runtime.log.end_offsets(ALL)
            rows = await runtime.pool.fetch(
                "SELECT topic, partition, next_offset FROM hub.positions WHERE consumer = $1",
                consumer,
            )
            stored = {TopicPartition(r[0], r[1]): r[2] for r in rows}
            if all(stored.get(tp, 0) >= ends[tp] for tp in ALL if ends[tp] > 0):
                return
            await anyio.sleep(0.05)


def projector_with(
    runtime: Runtime,
    projection: RegistryProjection,
    settings: ProjectorSettings,
    log: Any = None,
) -> Projector:
    """A projector on ``runtime``'s pieces with ``settings`` (and ``log``, if given)."""
    return Projector(
        projection,
        log=log or runtime.log,
        pool=runtime.pool,
        codec=runtime.codec,
        positions=runtime.positions,
        settings=settings,
    )


async def agents(runtime: Runtime) -> dict[str, asyncpg.Record]:
    rows = await runtime.pool.fetch("SELECT * FROM registry.agents WHERE tenant_id = 't1'")
    return {r["agent_id"]: r for r in rows}


async def test_applies_each_event_once_and_resumes_after_restart(runtime: Runtime) -> None:
    projection = RegistryProjection()
    events: list[Event] = [registered(f"a{i}", description="v0", tags=["x"]) for i in range(300)]
    events += [updated(f"a{i}", f"v{i}") for i in range(0, 300, 3)]
    await runtime.producer.emit(events[:200])
    projector = runtime.projector(projection)
    async with anyio.create_task_group() as tg:
        await tg.start(projector.run)
        await runtime.producer.emit(events[200:])
        await caught_up(runtime, projection.consumer)
        projector.stop_soon()
    rows = await agents(runtime)
    assert len(rows) == 300
    for i in range(300):
        row = rows[f"a{i}"]
        assert row["revision"] == (2 if i % 3 == 0 else 1)
        assert row["description"] == (f"v{i}" if i % 3 == 0 else "v0")
        assert row["tags"] == ["x"] and row["status"] == "active"
    # a new projector resumes from the stored positions: nothing is applied twice
    again = runtime.projector(projection)
    async with anyio.create_task_group() as tg:
        await tg.start(again.run)
        await runtime.producer.emit([updated("a1", "after restart")])
        await caught_up(runtime, projection.consumer)
        again.stop_soon()
    assert again.stats.events == 1 and again.stats.duplicates == 0
    rows = await agents(runtime)
    assert rows["a1"]["revision"] == 2 and rows["a1"]["description"] == "after restart"
    assert rows["a0"]["revision"] == 2


async def test_the_same_event_at_another_offset_is_applied_once(runtime: Runtime) -> None:
    """A resent event (e.g. an offline spool replayed twice) is skipped by event_id."""
    projection = RegistryProjection()
    event = registered("dup", description="once")
    record = runtime.producer.record(event)
    await runtime.log.append([record])
    await runtime.log.append([record])  # same bytes, same event_id, later offset
    projector = runtime.projector(projection)
    async with anyio.create_task_group() as tg:
        await tg.start(projector.run)
        await caught_up(runtime, projection.consumer)
        projector.stop_soon()
    assert (await agents(runtime))["dup"]["revision"] == 1
    assert projector.stats.duplicates == 1


async def test_applied_ids_are_forgotten_after_the_window(runtime: Runtime) -> None:
    """The dedupe table holds the window's ids, not the whole log's; copies sent within
    the window are still dropped."""
    projection = RegistryProjection()
    settings = ProjectorSettings(dedupe_window=3600, dedupe_check_every=0.05)
    projector = projector_with(runtime, projection, settings)
    old = [registered(f"old{i}", description="v") for i in range(3)]
    recent = registered("recent", description="v")
    await runtime.producer.emit([*old, recent])
    table = f"{projection.schema}.applied_events"
    async with anyio.create_task_group() as tg:
        await tg.start(projector.run)
        await caught_up(runtime, projection.consumer)
        # two hours pass for the first three: beyond the one-hour window
        await runtime.pool.execute(
            f"UPDATE {table} SET applied_at = now() - interval '2 hours' "
            "WHERE event_id = ANY($1::uuid[])",
            [e.event_id for e in old],
        )
        with anyio.fail_after(30):
            while await runtime.pool.fetchval(f"SELECT count(*) FROM {table}") > 1:
                await anyio.sleep(0.05)
        await runtime.log.append([runtime.producer.record(recent)])  # a copy, in the window
        await caught_up(runtime, projection.consumer)
        projector.stop_soon()
    kept = await runtime.pool.fetch(f"SELECT event_id FROM {table}")
    assert [r[0] for r in kept] == [recent.event_id]
    assert projector.applied.forgotten == 3 and projector.stats.duplicates == 1
    assert (await agents(runtime))["recent"]["revision"] == 1


async def test_a_dedupe_table_from_before_the_window_is_brought_up_to_date(
    runtime: Runtime,
) -> None:
    event_id = uuid.uuid4()
    async with runtime.pool.acquire() as conn:
        await conn.execute("CREATE SCHEMA old_proj")
        await conn.execute("CREATE TABLE old_proj.applied_events (event_id uuid PRIMARY KEY)")
        await conn.execute("INSERT INTO old_proj.applied_events VALUES ($1)", event_id)
        await create_applied_events(conn, "old_proj")
        await create_applied_events(conn, "old_proj")  # idempotent
        row = await conn.fetchrow("SELECT * FROM old_proj.applied_events")
    assert row["event_id"] == event_id and row["applied_at"] is not None
    kept = AppliedEvents(runtime.pool, "old_proj", window_s=3600)
    assert await kept.forget_old() == 0  # kept for the window from now, not dropped at once


async def read_dlq(runtime: Runtime, n: int) -> list[DeadLettered]:
    tps = [TopicPartition(str(Topic.DLQ), p) for p in range(TEST_PARTITIONS)]
    out: list[DeadLettered] = []
    async with runtime.log.consumer(group_id=None, partitions=tps) as consumer:
        with anyio.fail_after(30):
            while len(out) < n:
                for rec in await consumer.fetch(100, 0.5):
                    event = runtime.codec.decode(rec.value)
                    assert isinstance(event, DeadLettered)
                    out.append(event)
    return out


async def test_poison_goes_to_the_dlq_and_the_rest_is_applied(runtime: Runtime) -> None:
    projection = RegistryProjection()
    good_before = registered("good-1")
    garbage = ProducerRecord(
        REGISTRY, b"good-1", b"\xc3\x01not avro at all", (("hub-type", b"AgentRegistered"),)
    )
    orphan = AgentRetired(tenant_id="t1", actor="test", agent_id="nobody", reason="?")
    good_after = registered("good-2")
    await runtime.producer.emit([good_before])
    positions = await runtime.log.append([garbage])
    await runtime.producer.emit([orphan, good_after])
    projector = runtime.projector(projection)
    async with anyio.create_task_group() as tg:
        await tg.start(projector.run)
        await caught_up(runtime, projection.consumer)
        projector.stop_soon()
    assert set(await agents(runtime)) == {"good-1", "good-2"}
    assert projector.stats.dead_lettered == 2
    letters = {d.error_type: d for d in await read_dlq(runtime, 2)}
    assert set(letters) == {"SchemaError", "ProjectionError"}
    bad = letters["SchemaError"]
    assert (bad.source_topic, bad.source_partition, bad.source_offset) == (
        REGISTRY,
        positions[0].partition,
        positions[0].offset,
    )
    assert bad.original_value == garbage.value and bad.original_key == b"good-1"
    assert bad.consumer == projection.consumer and bad.event_type == "AgentRegistered"
    assert "unknown agent 'nobody'" in letters["ProjectionError"].reason
    assert letters["ProjectionError"].event_type == "AgentRetired"


async def test_lost_database_connections_are_retried(runtime: Runtime) -> None:
    projection = RegistryProjection()
    projector = runtime.projector(projection)
    async with anyio.create_task_group() as tg:
        await tg.start(projector.run)

        async def kill_connections() -> None:
            admin = await asyncpg.connect(runtime.database_url)
            try:
                for _ in range(5):
                    await admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                        "AND application_name = ''"
                    )
                    await anyio.sleep(0.2)
            finally:
                await admin.close()

        tg.start_soon(kill_connections)
        for i in range(10):
            try:
                await runtime.producer.emit([registered(f"r{i}")])  # appended or spooled
            except Exception:  # Kafka's producer connection may be killed too: resend
                await anyio.sleep(0.1)
                await runtime.producer.emit([registered(f"r{i}")])
            await anyio.sleep(0.1)
        with anyio.fail_after(60):
            while runtime.spool.has_pending():  # what the Postgres log could not take
                try:
                    await runtime.producer.forward_spool()
                except Exception:
                    await anyio.sleep(0.2)
        await caught_up(runtime, projection.consumer)
        projector.stop_soon()
    rows = await agents(runtime)
    assert {f"r{i}" for i in range(10)} <= set(rows)
    assert all(rows[f"r{i}"]["revision"] == 1 for i in range(10))


@pytest.mark.kafka_outage
@pytest.mark.parametrize("backend", ["kafka"])
async def test_brokers_down_then_up(runtime: Runtime, kafka_cluster: KafkaUnderTest) -> None:
    projection = RegistryProjection()
    projector = runtime.projector(projection)
    await runtime.producer.emit([registered(f"b{i}") for i in range(50)])
    async with anyio.create_task_group() as tg:
        await tg.start(projector.run)
        await caught_up(runtime, projection.consumer)
        kafka_cluster.set_down()
        await anyio.sleep(3)
        kafka_cluster.set_up()
        await runtime.producer.emit([registered(f"c{i}") for i in range(50)])
        await caught_up(runtime, projection.consumer, timeout=90)
        projector.stop_soon()
    rows = await agents(runtime)
    assert len(rows) == 100 and all(r["revision"] == 1 for r in rows.values())


async def test_lag_is_reported_per_partition(runtime: Runtime) -> None:
    from hub.ops.status import projection_status

    projection = RegistryProjection()
    await runtime.producer.emit([registered(f"l{i}") for i in range(40)])
    statuses = {s.name: s for s in await projection_status(runtime)}
    assert statuses["registry"].lag == 40
    ends = await runtime.log.end_offsets(ALL)
    assert {p.partition: p.lag for p in statuses["registry"].partitions} == {
        tp.partition: ends[tp] for tp in ALL
    }
    projector: Projector = runtime.projector(projection)
    async with anyio.create_task_group() as tg:
        await tg.start(projector.run)
        await caught_up(runtime, projection.consumer)
        projector.stop_soon()
    statuses = {s.name: s for s in await projection_status(runtime)}
    assert statuses["registry"].lag == 0
    assert {p.partition: p.position for p in statuses["registry"].partitions} == {
        tp.partition: ends[tp] or None for tp in ALL
    }


class _GatedRegistry(RegistryProjection):
    """The registry, whose first flush waits for a gate."""

    def __init__(self) -> None:
        super().__init__()
        self.entered, self.gate = anyio.Event(), anyio.Event()

    async def flush(self, batch: Any) -> None:
        if not self.entered.is_set():
            self.entered.set()
            await self.gate.wait()
        await super().flush(batch)


async def test_records_appended_while_a_batch_is_applied_are_taken_in_one_read(
    runtime: Runtime,
) -> None:
    """The next batch waits for the one in hand, then reads what came meanwhile at once:
    not a read per record appended meanwhile (each append wakes the consumer)."""
    projection = _GatedRegistry()
    log = CountingLog(runtime.log)
    # the wait ends with the apply
    projector = projector_with(runtime, projection, ProjectorSettings(batch_linger=60), log)
    async with anyio.create_task_group() as tg:
        await tg.start(projector.run)
        await runtime.producer.emit([registered("first")])
        with anyio.fail_after(30):
            await projection.entered.wait()
        await anyio.sleep(0.2)  # the next fetch is waiting for records
        before = log.fetches
        for i in range(30):  # one append (and one wake-up) each
            await runtime.producer.emit([registered(f"w{i}")])
            await anyio.sleep(0.01)
        await anyio.sleep(0.5)
        during = log.fetches - before
        projection.gate.set()
        await caught_up(runtime, projection.consumer)
        projector.stop_soon()
    assert during <= 1, f"{during} fetches while the batch in hand was applied"
    assert len(await agents(runtime)) == 31
    assert projector.stats.events == 31


class _MeetingRegistry(RegistryProjection):
    """The registry, whose flushes wait (a while) until two are under way at once."""

    def __init__(self) -> None:
        super().__init__()
        self.flushing, self.met, self.overlapped = 0, anyio.Event(), False

    async def flush(self, batch: Any) -> None:
        self.flushing += 1
        if self.flushing >= 2:
            self.met.set()
        with anyio.move_on_after(2):
            await self.met.wait()
            self.overlapped = True
        try:
            await super().flush(batch)
        finally:
            self.flushing -= 1


@pytest.mark.parametrize(
    ("lanes", "batch_size", "shared"), [(1, 100, False), (2, 100, True), (2, 2000, False)]
)
async def test_lanes_apply_a_backlogs_partitions_in_transactions_at_once(
    runtime: Runtime, lanes: int, batch_size: int, shared: bool
) -> None:
    """With two lanes, a read of more than a batch (a backlog) spanning partitions is
    applied by two transactions at once, each claiming its own partitions' positions; a
    smaller read is one transaction, as with one lane. Every event is applied once."""
    projection = _MeetingRegistry()
    events: list[Event] = [registered(f"a{i}", description="v0") for i in range(200)]
    events += [updated(f"a{i}", f"v{i}") for i in range(0, 200, 2)]
    partitions = {p.partition for p in await runtime.producer.emit(events)}
    await runtime.producer.emit([registered("last")])
    projector = projector_with(
        runtime, projection, ProjectorSettings(lanes=lanes, batch_size=batch_size)
    )
    async with anyio.create_task_group() as tg:
        await tg.start(projector.run)
        await caught_up(runtime, projection.consumer)
        projector.stop_soon()
    assert len(partitions) >= 2 and projection.overlapped == shared
    rows = await agents(runtime)
    assert len(rows) == 201
    for i in range(200):
        assert rows[f"a{i}"]["revision"] == (2 if i % 2 == 0 else 1)
        assert rows[f"a{i}"]["description"] == (f"v{i}" if i % 2 == 0 else "v0")
    assert projector.stats.events == 301 and projector.stats.duplicates == 0


async def test_the_pool_has_a_connection_for_every_lane(runtime: Runtime) -> None:
    """Every projection's extra lanes get connections of their own beside the base pool,
    so a backlog on every projection at once leaves the base pool to the readers."""
    from hub.runtime import POOL_SIZE

    lanes = runtime.settings.projector_lanes
    assert lanes == 2  # the default
    extra = (lanes - 1) * len(runtime.projections)
    assert runtime.pool.get_max_size() == POOL_SIZE + extra
