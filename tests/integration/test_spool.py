"""The offline spool: events produced while every Kafka broker is down are spooled durably,
then forwarded in order by ``agent-hub sync`` (even when a sync is killed half-way) and
projected exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import anyio
import asyncpg
import pytest
from structlog.testing import capture_logs

from hub import Hub
from hub.infra.ports import ProducerRecord
from hub.infra.spool import Spool
from hub.settings import HubSettings
from schemas.errors import StoreError
from schemas.events import AgentRegistered
from tests.conftest import hub_env, settings_for
from tests.support.kafka_broker import KafkaUnderTest

pytestmark = pytest.mark.anyio

EVENTS = 1000
BROKERS = (1, 2, 3)


def record(i: int) -> ProducerRecord:
    return ProducerRecord("t", f"k{i}".encode(), f"v{i}".encode(), (("h", b"x"),))


async def test_batches_come_back_in_order_and_damage_is_set_aside(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    assert not spool.has_pending() and spool.count() == 0
    for start in range(0, 30, 3):
        spool.append([record(i) for i in range(start, start + 3)])
    damaged = spool.pending_files()[4]
    damaged.write_bytes(damaged.read_bytes()[:-1] + b"!")  # a flipped byte on disk
    assert spool.count() == 30

    sent: list[list[ProducerRecord]] = []

    async def send(records: Sequence[ProducerRecord]) -> None:
        sent.append(list(records))

    assert await spool.forward(send, max_records=7) == 27
    flat = [r for batch in sent for r in batch]
    assert [r.value for r in flat] == [f"v{i}".encode() for i in range(30) if i // 3 != 4]
    assert all(len(batch) <= 7 for batch in sent)
    assert flat[0].headers == (("h", b"x"),)
    assert not spool.has_pending()
    assert (tmp_path / "spool" / "damaged" / damaged.name).is_file()

    async def unreachable(records: Sequence[ProducerRecord]) -> None:
        raise StoreError("still down")

    spool.append([record(99)])
    with pytest.raises(StoreError):
        await spool.forward(unreachable)
    assert spool.count() == 1  # nothing lost when the log is still down


async def test_a_batch_older_than_the_dedupe_window_is_forwarded_with_a_warning(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path / "spool", dedupe_window_s=86_400)
    spool.append([record(1)])
    fresh = spool.pending_files()[0]
    old = fresh.with_name(f"{time.time_ns() - 3 * 86_400 * 10**9:020d}{fresh.name[20:]}")
    fresh.rename(old)  # spooled three days ago
    spool.append([record(2)])
    sent: list[ProducerRecord] = []

    async def send(records: Sequence[ProducerRecord]) -> None:
        sent.extend(records)

    with capture_logs() as logs:
        assert await spool.forward(send, max_records=1) == 2
    warned = [e for e in logs if e["event"] == "spool.forwarding_past_dedupe_window"]
    assert [r.value for r in sent] == [b"v1", b"v2"]  # nothing held back
    assert len(warned) == 1 and warned[0]["age_days"] == 3.0 and warned[0]["window_days"] == 1.0


@pytest.mark.kafka_outage
@pytest.mark.kafka
async def test_brokers_down_spool_then_sync_killed_midway_projects_exactly_once(
    kafka_cluster: KafkaUnderTest, database_url: str, tmp_path: Path
) -> None:
    settings: HubSettings = settings_for(
        "kafka",
        kafka_cluster.url,
        database_url,
        tmp_path / "home",
        spool_retry_s=3600,  # no background forwarding: the syncs below do it
        kafka_request_timeout_ms=3000,
    )
    spool = Spool(settings.home / "spool")
    async with Hub.connect(settings) as hub:
        await hub.registry.register("before-the-outage")
        kafka_cluster.set_down(*BROKERS)
        for i in range(EVENTS):
            event = AgentRegistered(
                tenant_id=settings.tenant, actor="t", agent_id=f"offline-{i:04d}"
            )
            assert await hub.emit(event) == []  # spooled: no log position
        assert spool.count() == EVENTS
        assert hub.runtime.producer.spooled == EVENTS
        kafka_cluster.set_up(*BROKERS)

    env = hub_env(settings) | {"HUB_LOG_LEVEL": "warning"}
    cmd = [sys.executable, "-m", "hub.cli", "sync", "--batch", "5"]
    files = len(spool.pending_files())
    async with await anyio.open_process(cmd, env=env, stderr=subprocess.DEVNULL) as proc:
        with anyio.fail_after(120):
            while len(spool.pending_files()) == files:
                assert proc.returncode is None, "the first sync ended before any forwarding"
                await anyio.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)  # in the middle of forwarding
        await proc.wait()
    left = spool.count()
    assert 0 < left < EVENTS, "the kill landed after the sync had finished"

    done = await anyio.run_process(cmd, env=env, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert f"forwarded {left} events (0 still waiting)" in done.stdout.decode()
    assert not spool.has_pending()

    projecting = settings.model_copy(update={"run_projectors": "always"})
    async with Hub.connect(projecting) as hub:  # catches up with the log at start
        agents = await hub.registry.list(limit=1000)
        agents += await hub.registry.list(limit=1000, after=agents[-1].agent_id)
        names = [a.agent_id for a in agents]
        assert names == ["before-the-outage"] + [f"offline-{i:04d}" for i in range(EVENTS)]
        assert {a.revision for a in agents} == {1}  # each applied exactly once


async def _health(hub: Hub) -> dict[str, object]:
    from httpx import ASGITransport, AsyncClient

    from hub.http.app import create_app

    transport = ASGITransport(app=create_app(hub))
    async with AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        response = await http.get("/healthz")
    assert response.status_code == (200 if response.json()["status"] == "ok" else 503)
    body: dict[str, object] = response.json()
    return body


@pytest.mark.slow
async def test_postgres_log_killed_while_writing_spools_then_syncs_exactly_once(
    tmp_path: Path,
) -> None:
    """Regression (issue 11, finding 4): with the Postgres log's server killed, appends
    raised StoreError and raw ConnectionRefusedError and nothing was spooled. Now every
    write is acknowledged or spooled, and after a restart and sync all are read back once."""
    from tests.support.pg import KillablePostgres

    server = KillablePostgres(str(tmp_path / "pg"))
    try:
        admin = await asyncpg.connect(server.uri())
        await admin.execute("CREATE DATABASE hub")
        await admin.close()
        settings = settings_for(
            "postgres",
            "",
            server.uri("hub"),
            tmp_path / "home",
            spool_retry_s=3600,  # the test forwards the spool itself
        )
        texts = [f"message {i:04d}" for i in range(3000)]
        async with Hub.connect(settings) as hub:
            thread = await hub.sessions.start_thread(agent_id="writer")
            acknowledged = 0
            for i, text in enumerate(texts):
                if i == 1000:
                    server.kill()
                if i == 1500:  # /healthz tells the truth about each component meanwhile
                    health = await _health(hub)
                    assert health["status"] == "degraded", health
                    assert str(health["database"]).startswith("error")
                    assert str(health["log"]).startswith("error")
                    assert isinstance(health["spooled"], int) and health["spooled"] >= 1
                if i == 2000:
                    server.start()
                await thread.append("user", text)  # never raises: appended or spooled
                acknowledged += 1
            assert acknowledged == 3000
            assert hub.runtime.producer.spooled >= 1  # the outage was really met
            while hub.runtime.spool.has_pending():
                await hub.sync()
        async with Hub.connect(settings.model_copy(update={"run_projectors": "always"})) as hub:
            messages = await hub.sessions.messages(thread.thread_id, limit=10_000)
        assert [m.text for m in messages] == texts  # all, in order, each once
    finally:
        server.close()
