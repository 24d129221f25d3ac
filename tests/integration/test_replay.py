"""Replay from the archive and the log tail, after the log's early records are gone."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path

import anyio
import anyio.lowlevel
import asyncpg
import pytest

from consumers.archive.reader import ArchiveThenLog, Segment
from consumers.archive.segments import encode_segment
from consumers.migrations import migrate
from hub import Hub, LogError
from hub.infra.blob import open_blob_store
from hub.infra.log.postgres import PostgresLog
from hub.infra.ports import TopicPartition
from hub.ops.rebuild import drop_retired, rebuild
from hub.ops.replay import Progress, replay
from hub.ops.status import projection_status
from hub.runtime import Runtime
from hub.settings import HubSettings
from projections.registry import RegistryProjection
from schemas.errors import ProjectionError
from schemas.events import AgentRegistered, AgentUpdated, Topic
from tests.conftest import TEST_PARTITIONS, settings_for
from tests.support.kafka_broker import KafkaUnderTest

pytestmark = pytest.mark.anyio

REGISTRY = [TopicPartition(str(Topic.REGISTRY), p) for p in range(TEST_PARTITIONS)]


@pytest.fixture
def settings(
    database_url: str, archive_url: str, s3_endpoint: str | None, tmp_path: Path
) -> HubSettings:
    return HubSettings.model_validate(
        {
            "database_url": database_url,
            "home": tmp_path / "home",
            "partitions": TEST_PARTITIONS,
            "run_projectors": "always",
            "archive_url": archive_url,
            "s3_endpoint_url": s3_endpoint,
            "archive_max_records": 40,
            "archive_max_age_s": 0.3,
            "batch_linger_ms": 5,
            "retired_grace_s": 0,  # swapped-out tables go as soon as their grace is over
        }
    )


def registered(i: int) -> AgentRegistered:
    return AgentRegistered(tenant_id="default", actor="t", agent_id=f"agent-{i:04d}")


async def archived(hub: Hub) -> int:
    total = await hub.runtime.pool.fetchval(
        "SELECT coalesce(sum(records), 0) FROM hub.archive_segments WHERE topic = $1",
        str(Topic.REGISTRY),
    )
    return int(total)


async def wait_archived(hub: Hub, count: int) -> None:
    with anyio.fail_after(60):
        while await archived(hub) < count:
            await anyio.sleep(0.1)


async def keep_last(database_url: str, count: int) -> None:
    """Retention on the Postgres log: each registry partition keeps its last ``count``."""
    async with PostgresLog(database_url) as log:
        ends = await log.end_offsets(REGISTRY)
        for tp in REGISTRY:
            await log.truncate_before(tp, max(0, ends[tp] - count))


async def agents(runtime: Runtime) -> list[tuple[str, int]]:
    rows = await runtime.pool.fetch("SELECT agent_id, revision FROM registry.agents ORDER BY 1")
    return [(r[0], r[1]) for r in rows]


async def test_replay_rebuilds_complete_history_from_archive_and_log_tail(
    settings: HubSettings, database_url: str
) -> None:
    async with Hub(settings, archive=True) as hub:
        await hub.emit(*[registered(i) for i in range(300)])
        await wait_archived(hub, 300)
        middle = datetime.now(UTC)
        await anyio.sleep(0.01)
        await hub.emit(
            *[AgentUpdated(tenant_id="default", actor="t", agent_id="agent-0001", description="v2")]
        )
        await hub.wait_for_projections()
    await keep_last(database_url, 3)  # retention: each partition keeps its last 3 records
    async with PostgresLog(database_url) as log:
        assert sum((await log.beginning_offsets(REGISTRY)).values()) > 0

    reports: list[Progress] = []
    async with Runtime(settings) as runtime:
        before = await agents(runtime)
        assert len(before) == 300
        done = await replay(runtime, "registry", "earliest", reset=True, report=reports.append)
        assert done.done == done.total == 301
        assert await agents(runtime) == before  # same rows, same revisions: nothing doubled
        assert reports and reports[-1].done == 301 and reports[-1].rate > 0

        # from a time: only what came after it is read again, and it is already applied
        again = await replay(runtime, "registry", middle)
        assert again.total == 1
        assert await agents(runtime) == before


async def test_after_kafka_retention_replay_and_rebuild_still_see_everything(
    kafka_cluster: KafkaUnderTest,
    database_url: str,
    archive_url: str,
    s3_endpoint: str | None,
    tmp_path: Path,
) -> None:
    settings = settings_for(
        "kafka",
        kafka_cluster.url,
        database_url,
        tmp_path / "home",
        run_projectors="always",
        archive_url=archive_url,
        s3_endpoint_url=s3_endpoint,
        archive_max_records=40,
        archive_max_age_s=0.3,
    )
    async with Hub(settings, archive=True) as hub:
        await hub.emit(*[registered(i) for i in range(300)])
        await hub.emit(
            AgentUpdated(tenant_id="default", actor="t", agent_id="agent-0001", description="v2")
        )
        await wait_archived(hub, 301)
        await hub.wait_for_projections()
        ends = await hub.runtime.log.end_offsets(REGISTRY)
    for tp in REGISTRY:  # retention: the topic keeps each partition's last 3 records
        kafka_cluster.delete_records(tp.topic, tp.partition, max(0, ends[tp] - 3))

    async with Runtime(settings.model_copy(update={"run_projectors": "never"})) as runtime:
        begins = await runtime.log.beginning_offsets(REGISTRY)
        assert begins == {tp: max(0, ends[tp] - 3) for tp in REGISTRY}
        before = await agents(runtime)
        assert len(before) == 300 and dict(before)["agent-0001"] == 2
        done = await replay(runtime, "registry", "earliest", reset=True)
        assert done.done == done.total == 301
        assert await agents(runtime) == before
        rebuilt = await rebuild(runtime, "registry", grace_s=0, workers=2)  # a helper joins
        assert rebuilt.done == 301
        assert await agents(runtime) == before


async def test_a_gap_in_history_is_an_error_never_skipped(
    settings: HubSettings, database_url: str
) -> None:
    async with Hub(settings) as hub:  # no archiver: nothing is archived
        await hub.emit(*[registered(i) for i in range(40)])
        await hub.wait_for_projections()
    await keep_last(database_url, 0)
    async with Runtime(settings) as runtime:
        with pytest.raises(LogError, match=r"history lost on agenthub\.registry"):
            await replay(runtime, "registry", "earliest", reset=True)


async def test_a_gap_in_kafka_history_is_an_error_never_a_hang(
    kafka_cluster: KafkaUnderTest, database_url: str, tmp_path: Path
) -> None:
    """On Kafka the gap is found in a rebalance callback, which aiokafka runs in its own
    task and only logs: the replay and the rebuild must fail with it, not wait forever."""
    settings = settings_for(
        "kafka", kafka_cluster.url, database_url, tmp_path / "home", run_projectors="always"
    )
    async with Hub(settings) as hub:  # no archiver: nothing is archived
        await hub.emit(*[registered(i) for i in range(40)])
        await hub.wait_for_projections()
        ends = await hub.runtime.log.end_offsets(REGISTRY)
    for tp in REGISTRY:  # retention: the topic forgets everything
        kafka_cluster.delete_records(tp.topic, tp.partition, ends[tp])
    async with Runtime(settings.model_copy(update={"run_projectors": "never"})) as runtime:
        with anyio.fail_after(120):
            with pytest.raises(LogError, match=r"history lost on agenthub\.registry"):
                await replay(runtime, "registry", "earliest", reset=True)
            with pytest.raises(LogError, match=r"history lost on agenthub\.registry"):
                await rebuild(runtime, "registry", grace_s=0)


async def test_a_damaged_archive_segment_is_an_error_never_skipped(
    settings: HubSettings, database_url: str
) -> None:
    async with Hub(settings, archive=True) as hub:
        await hub.emit(*[registered(i) for i in range(200)])
        await wait_archived(hub, 200)
    await keep_last(database_url, 0)
    async with Runtime(settings) as runtime:
        row = await runtime.pool.fetchrow(
            "SELECT key, partition, last_offset FROM hub.archive_segments "
            "WHERE topic = $1 ORDER BY records DESC LIMIT 1",
            str(Topic.REGISTRY),
        )
        store = open_blob_store(settings.archive, endpoint_url=settings.s3_endpoint_url)
        async with store:  # the object loses its last records, the manifest does not know
            tp = TopicPartition(str(Topic.REGISTRY), row["partition"])
            records = await runtime.archive_reader().read(tp, Segment(0, 0, row["key"]), 0)
            await store.put(row["key"], encode_segment(tp, records[:-2]))
        with pytest.raises(LogError, match=r"ends before offset .*: it is damaged"):
            await replay(runtime, "registry", "earliest", reset=True)


@pytest.mark.parametrize("workers", [1, 2])
async def test_rebuild_swaps_in_while_readers_and_writers_carry_on(
    settings: HubSettings, database_url: str, workers: int
) -> None:
    async with Hub(settings, archive=True) as hub:
        await hub.emit(*[registered(i) for i in range(500)])
        await wait_archived(hub, 500)
        written = 500
        counts: list[int] = []
        stop = anyio.Event()

        async def writer() -> None:
            nonlocal written
            while not stop.is_set():
                await hub.emit(registered(written))
                written += 1
                await anyio.sleep(0.005)

        async def reader() -> None:
            conn = await asyncpg.connect(database_url)
            try:
                while not stop.is_set():
                    counts.append(await conn.fetchval("SELECT count(*) FROM registry.agents"))
                    await anyio.lowlevel.checkpoint()
            finally:
                await conn.close()

        reports: list[Progress] = []
        async with Runtime(settings) as runtime, anyio.create_task_group() as tg:
            tg.start_soon(writer)
            tg.start_soon(reader)
            done = await rebuild(
                runtime, "registry", report=reports.append, grace_s=0, workers=workers
            )
            (status,) = [s for s in await projection_status(runtime) if s.name == "registry"]
            assert status.state == "live" and status.rebuild is not None
            assert status.rebuild.state == "swapped" and status.rebuild.done > 0
            await anyio.sleep(0.3)  # the live projector carries on into the new tables
            stop.set()
        versions = "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'proj_registry_v1%'"
        assert done.done >= 500 and reports
        assert counts and min(counts) >= 500  # never empty, never an error
        assert all(b >= a for a, b in itertools.pairwise(counts)), "went backwards"
        await hub.wait_for_projections()
        rows = await hub.runtime.pool.fetch("SELECT agent_id, revision FROM registry.agents")
        assert len(rows) == written and {r[1] for r in rows} == {1}
        # the grace (0 s) is over: the live projector drops the swapped-out tables
        with anyio.fail_after(30):
            while [r[0] for r in await hub.runtime.pool.fetch(versions)] != ["proj_registry_v1"]:
                await anyio.sleep(0.1)
        await drop_retired(hub.runtime, "registry")  # nothing left to do
        assert [r[0] for r in await hub.runtime.pool.fetch(versions)] == ["proj_registry_v1"]


class RegistryV2(RegistryProjection):
    """The registry with its version bumped in code (same tables)."""

    version = 2


async def test_a_version_bump_fills_from_history_then_takes_over(
    settings: HubSettings, database_url: str
) -> None:
    async with Hub(settings, archive=True) as hub:
        await hub.emit(*[registered(i) for i in range(200)])
        await wait_archived(hub, 200)
    await keep_last(database_url, 2)  # v2 must get the early history elsewhere

    upgraded = settings.model_copy(update={"run_projectors": "never", "retired_grace_s": 0})
    async with Runtime(upgraded) as runtime:
        v2 = RegistryV2()
        async with runtime.pool.acquire() as conn:
            await migrate(conn, v2)
        state = "SELECT version, state FROM hub.projections WHERE name = 'registry' ORDER BY 1"
        assert [tuple(r) for r in await runtime.pool.fetch(state)] == [
            (1, "live"),
            (2, "rebuilding"),
        ]
        target = "SELECT count(*) FROM registry.agents"
        assert await runtime.pool.fetchval(target) == 200  # still v1's rows
        old_schema = "SELECT count(*) FROM pg_namespace WHERE nspname = 'proj_registry_v1'"
        old_positions = "SELECT count(*) FROM hub.positions WHERE consumer = 'proj_registry_v1'"
        projector = runtime.projector(v2)
        async with anyio.create_task_group() as tg:
            await tg.start(projector.run)
            seen = set()  # v1 is retired when v2 takes over, then dropped (grace 0)
            with anyio.fail_after(60):
                while (now := [tuple(r) for r in await runtime.pool.fetch(state)]) != [
                    (2, "live")
                ] or await runtime.pool.fetchval(old_schema):
                    seen.add(tuple(now))
                    await anyio.sleep(0.02)
            assert not await runtime.pool.fetchval(old_positions)
            assert ((1, "live"), (2, "live")) not in seen  # never two live versions
            projector.stop_soon()
        assert [tuple(r) for r in await runtime.pool.fetch(state)] == [(2, "live")]
        view = await runtime.pool.fetchval(
            "SELECT definition FROM pg_views WHERE schemaname = 'registry' AND viewname = 'agents'"
        )
        assert "proj_registry_v2" in view
        assert await runtime.pool.fetchval(target) == 200


async def test_an_older_version_than_the_live_one_is_refused(
    settings: HubSettings, database_url: str
) -> None:
    quiet = settings.model_copy(update={"run_projectors": "never"})
    async with Runtime(quiet) as runtime, runtime.pool.acquire() as conn:
        await migrate(conn, RegistryV2())
        await conn.execute(
            "UPDATE hub.projections SET state = CASE version WHEN 2 THEN 'live' "
            "ELSE 'retired' END WHERE name = 'registry'"
        )
        with pytest.raises(ProjectionError, match="v1 is older than the live v2"):
            await migrate(conn, RegistryProjection())


class _FromStart:
    """A rebalance listener starting every partition at offset 0, noting revocations."""

    def __init__(self) -> None:
        self.revoked: set[TopicPartition] = set()

    async def on_assigned(
        self, partitions: frozenset[TopicPartition]
    ) -> dict[TopicPartition, int | None]:
        return dict.fromkeys(partitions, 0)

    async def on_revoked(self, partitions: frozenset[TopicPartition]) -> None:
        self.revoked |= partitions


async def test_a_member_serving_the_archive_keeps_polling_the_log(
    hub_settings: HubSettings,
    archive_url: str,
    s3_endpoint: str | None,
    backend: str,
    database_url: str,
) -> None:
    settings = hub_settings.model_copy(
        update={
            "run_projectors": "never",
            "archive_url": archive_url,
            "s3_endpoint_url": s3_endpoint,
            "archive_max_records": 40,
            "archive_max_age_s": 0.3,
        }
    )
    async with Hub(settings, archive=True) as hub:
        await hub.emit(*[registered(i) for i in range(400)])
        await wait_archived(hub, 400)
    if backend == "postgres":  # retention: the archive is the only copy of the early records
        await keep_last(database_url, 3)
    async with Runtime(settings) as runtime:
        await runtime.producer.emit([registered(i) for i in range(400, 410)])  # log-only tail
        ends = await runtime.log.end_offsets(REGISTRY)
        topics = [str(Topic.REGISTRY)]

        # alone, polling the log at every fetch: each offset exactly once, in order
        alone = ArchiveThenLog(
            runtime.log,
            runtime.archive_reader(),
            group_id="keepalive-1",
            topics=topics,
            listener=_FromStart(),
            keepalive_s=0,
        )
        seen: dict[TopicPartition, list[int]] = {tp: [] for tp in REGISTRY}
        fetched: list[list[TopicPartition]] = []
        async with alone:
            with anyio.fail_after(60):
                while sum(map(len, seen.values())) < sum(ends.values()):
                    records = await alone.fetch(7, 0.2)
                    for record in records:
                        seen[record.tp].append(record.offset)
                    fetched += [[r.tp for r in records]] if records else []
        assert seen == {tp: list(range(ends[tp])) for tp in REGISTRY}
        # every partition read from the archive brings its share (a projector's lanes
        # share a batch by partition), not one partition the whole fetch
        opening = fetched[0]
        assert len(set(opening)) == len(REGISTRY) and max(map(opening.count, opening)) == 2
        if backend == "kafka":
            return  # two members of one group in one process: see test_log_contract

        # a member joining meanwhile gets its share while the first still reads the archive
        listener = _FromStart()
        first = ArchiveThenLog(
            runtime.log,
            runtime.archive_reader(),
            group_id="keepalive-2",
            topics=topics,
            listener=listener,
            keepalive_s=0,
        )
        second = runtime.log.consumer(group_id="keepalive-2", topics=topics, listener=_FromStart())
        async with first:
            await first.fetch(1, 1.0)
            assert first.assignment() == frozenset(REGISTRY) and first.reading_archive
            async with second:
                with anyio.fail_after(60):
                    while not second.assignment():
                        await first.fetch(1, 0.05)
                        await second.fetch(1, 0.05)
                assert first.reading_archive and listener.revoked
                assert first.assignment() | second.assignment() == frozenset(REGISTRY)
                assert not first.assignment() & second.assignment()


async def test_replay_never_strands_a_projection(settings: HubSettings) -> None:
    """Regression (issue 11, finding 1): ``replay --from 1000`` on a shorter log set every
    position past the end, so later writes were skipped forever while status said lag 0."""

    from hub import InputError
    from hub.http.app import create_app
    from hub.ops.replay import find_projection
    from tests.support.api import api_client

    async with Hub(settings) as hub:
        for i in range(6):
            await hub.registry.register(f"a{i}")
        await hub.wait_for_projections()
    quiet = settings.model_copy(update={"run_projectors": "never"})
    async with Runtime(quiet) as runtime:
        consumer = find_projection(runtime, "registry").consumer
        before = await runtime.positions.all(consumer)
        with pytest.raises(InputError, match="past the end of every partition"):
            await replay(runtime, "registry", 1000)
        assert await runtime.positions.all(consumer) == before
        await replay(runtime, "registry", 1)  # partitions at 0 or 1 stay: never forward
        after = await runtime.positions.all(consumer)
        assert all(after[tp] <= max(1, before[tp]) for tp in before)
        assert after == before  # caught up again
    async with Hub(settings) as hub:
        await hub.registry.register("later")
        assert await hub.registry.get("later") is not None
        statuses = await projection_status(hub.runtime)
        assert all(s.errors == [] for s in statuses)

        # a position past the end (as the bug left it) is an error everywhere, not lag 0
        tp = REGISTRY[0]
        end = (await hub.runtime.log.end_offsets([tp]))[tp]
        async with hub.runtime.pool.acquire() as conn:
            await hub.runtime.positions.rewind(conn, consumer, {tp: end + 100})
        (registry,) = [s for s in await projection_status(hub.runtime) if s.name == "registry"]
        assert registry.errors == [
            f"registry: position {end + 100} on {tp} is past the log's end {end}: events "
            "written there would be skipped (replay or rebuild the projection)"
        ]
        async with api_client(hub, create_app(hub)) as http:
            health = await http.get("/healthz")
            assert health.status_code == 503
            assert health.json()["projections"] == "error"  # details only with a key
            status = (await http.get("/v1/projections")).json()
            assert status["health"]["projections"].startswith("error: registry: position")
            listed = status["projections"]
            assert any(p["errors"] for p in listed if p["name"] == "registry")
        async with hub.runtime.pool.acquire() as conn:  # let the fixture's teardown finish
            await hub.runtime.positions.rewind(conn, consumer, {tp: end})


async def test_replay_beside_a_running_projector_finishes_and_a_killed_one_heals(
    settings: HubSettings,
) -> None:
    """Regression (issue 11, finding 2): a replay while the projection's projector runs
    elsewhere never finished (it got only the empty partitions, and the live projector
    never noticed the rewind); a killed replay left the projection behind for good."""
    from hub.ops.replay import find_projection

    async with Hub(settings) as hub:  # the live projector, as `agent-hub up` runs it
        for i in range(12):
            await hub.registry.register(f"a{i}", description="v1")
        await hub.wait_for_projections()
        consumer = find_projection(hub.runtime, "registry").consumer
        ends = await hub.runtime.positions.all(consumer)

        quiet = settings.model_copy(update={"run_projectors": "never"})
        async with Runtime(quiet) as other:  # `agent-hub replay` in another process
            with anyio.fail_after(60):
                done = await replay(other, "registry", "earliest")
            assert done.done == done.total == sum(ends.values())

            # a replay killed right after its rewind: the live projector re-applies it all
            async with other.pool.acquire() as conn:
                await other.positions.rewind(conn, consumer, dict.fromkeys(ends, 0))
        with anyio.fail_after(30):
            while await hub.runtime.positions.all(consumer) != ends:
                await anyio.sleep(0.1)
        agents = await hub.registry.list()
        assert [a.agent_id for a in agents] == sorted(f"a{i}" for i in range(12))
        assert all(a.revision == 1 for a in agents)  # re-applied events were not doubled
