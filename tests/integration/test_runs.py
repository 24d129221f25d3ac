"""``hub.runs`` on each log: runs with provenance, metrics, aggregates, the request
tracker, Strands results, registry run stats, and bad input producing nothing."""

from __future__ import annotations

import math
import statistics
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from strands import Agent

from hub import ConflictError, Hub, InputError
from hub.infra.ports import TopicPartition
from hub.runs import track_request
from hub.settings import HubSettings
from schemas.events import Topic
from tests.conftest import TEST_PARTITIONS
from tests.support.scripted_model import ScriptedModel

pytestmark = pytest.mark.anyio

RUNS = str(Topic.RUNS)


@pytest.fixture
async def hub(hub_settings: HubSettings, tmp_path: Path) -> AsyncIterator[Hub]:
    settings = hub_settings.model_copy(
        update={"run_projectors": "always", "archive_url": (tmp_path / "blobs").as_uri()}
    )
    async with Hub.connect(settings) as h:
        yield h


async def produced(hub: Hub) -> int:
    tps = [TopicPartition(RUNS, p) for p in range(TEST_PARTITIONS)]
    return sum((await hub.runtime.log.end_offsets(tps)).values())


async def test_a_run_with_provenance_metrics_and_outcome(hub: Hub) -> None:
    provenance = {
        "model_name": "claude",
        "model_version": "4.5",
        "code_version": "abc123",
        "prompt_name": "planner",
        "prompt_version": "v2",
        "seed": 7,
    }
    async with hub.runs.start("planner", input={"q": "plan"}, provenance=provenance) as run:
        await run.metric("confidence", 0.92)
        await run.metric("jobs.done", 3, kind="counter", unit="jobs", tags={"queue": "a"})
        await run.set_stats("total_jobs", 100)
        await run.set_timing("avg_per_job_seconds", 15.3)
    detail = await hub.runs.get(run.run_id)
    assert detail is not None
    r = detail.run
    assert (r.agent_id, r.status, r.input, r.error) == ("planner", "success", {"q": "plan"}, None)
    assert (r.model_name, r.model_version, r.code_version) == ("claude", "4.5", "abc123")
    assert (r.prompt_name, r.prompt_version, r.seed) == ("planner", "v2", 7)
    assert r.finished_at is not None and r.duration_s is not None and r.duration_s >= 0
    assert (r.metric_count, r.artifact_count) == (4, 0)
    assert [(m.name, m.value, m.kind) for m in detail.metrics] == [
        ("confidence", 0.92, "gauge"),
        ("jobs.done", 3.0, "counter"),
        ("total_jobs", 100.0, "stat"),
        ("avg_per_job_seconds", 15.3, "timing"),
    ]
    assert detail.metrics[1].tags == {"queue": "a"} and detail.metrics[1].unit == "jobs"
    assert detail.metric("total_jobs") == 100.0
    assert await hub.runs.get("no-such-run") is None


async def test_a_failing_body_finishes_the_run_failed_and_reraises(hub: Hub) -> None:
    with pytest.raises(ZeroDivisionError):
        async with hub.runs.start("calc") as run:
            await run.metric("before", 1)
            _ = 1 / 0
    detail = await hub.runs.get(run.run_id)
    assert detail is not None
    assert detail.run.status == "failed"
    assert detail.run.error == "ZeroDivisionError: division by zero"
    assert detail.metric("before") == 1.0  # metrics recorded before the error are kept

    with anyio.move_on_after(0.05):
        async with hub.runs.start("calc") as cancelled:
            await anyio.sleep(5)
    detail = await hub.runs.get(cancelled.run_id)
    assert detail is not None and detail.run.status == "cancelled"


async def test_list_filters_and_registry_run_stats(hub: Hub) -> None:
    await hub.registry.register("lister", description="lists")
    t0 = datetime.now(UTC)
    for i in range(5):
        run = await hub.runs.start("lister", run_id=f"lister-{i}").begin()
        await run.finish("success" if i % 2 == 0 else "failed", error=None if i % 2 == 0 else "x")
    async with hub.runs.start("other"):
        pass
    runs = await hub.runs.list(agent_id="lister")
    assert [r.run_id for r in runs] == [f"lister-{i}" for i in reversed(range(5))]
    assert [r.run_id for r in await hub.runs.list(agent_id="lister", status="failed")] == [
        "lister-3",
        "lister-1",
    ]
    assert len(await hub.runs.list(since=t0)) == 6
    assert await hub.runs.list(since=datetime.now(UTC) + timedelta(hours=1)) == []
    page = await hub.runs.list(agent_id="lister", limit=2)
    rest = await hub.runs.list(agent_id="lister", before=(page[-1].started_at, page[-1].run_id))
    assert [r.run_id for r in page + rest] == [f"lister-{i}" for i in reversed(range(5))]

    assert await hub.registry.record_run("lister", "lister-seed-run", success=True)
    assert not await hub.registry.record_run("lister", "lister-seed-run", success=True)
    agent = await hub.registry.get("lister")
    assert agent is not None
    assert (agent.run_count, agent.succeeded, agent.failed) == (6, 4, 2)
    assert agent.last_run_id == "lister-seed-run" and agent.success_rate == pytest.approx(4 / 6)
    with pytest.raises(ConflictError, match="belongs to agent 'lister'"):
        await hub.registry.record_run("other", "lister-seed-run")


async def test_aggregate_in_postgres_by_prompt_version_and_day(hub: Hub) -> None:
    values = {"v1": [10.0, 20.0, 30.0, 40.0], "v2": [5.0, 7.0]}
    for version, latencies in values.items():
        for i, latency in enumerate(latencies):
            prov = {"prompt_version": version}
            async with hub.runs.start("agg", run_id=f"agg-{version}-{i}", provenance=prov) as run:
                await run.set_timing("latency", latency)
    rows = await hub.runs.aggregate("latency", agent_id="agg", group_by="prompt_version")
    assert [r.group for r in rows] == ["v1", "v2"]
    for row in rows:
        data = values[str(row.group)]
        assert row.count == len(data) and row.mean == pytest.approx(statistics.fmean(data))
        # percentile_cont interpolates linearly, as statistics.quantiles(method="inclusive")
        q = statistics.quantiles(data, n=20, method="inclusive")
        assert row.p50 == pytest.approx(statistics.median(data)) and row.p95 == pytest.approx(q[18])
    (total,) = await hub.runs.aggregate("latency", agent_id="agg")
    assert total.group is None and total.count == 6 and (total.min, total.max) == (5.0, 40.0)
    (day,) = await hub.runs.aggregate("latency", agent_id="agg", group_by="day")
    assert day.group == datetime.now(UTC).strftime("%Y-%m-%d") and day.count == 6
    assert await hub.runs.aggregate("nothing-recorded") == []
    with pytest.raises(InputError, match="group_by"):
        await hub.runs.aggregate("latency", group_by="week")  # type: ignore[arg-type]


async def test_request_tracker_records_latency_status_and_errors(hub: Hub) -> None:
    async with hub.runs.start("api") as run:

        @track_request(run, "/api/plan", method="POST")
        async def endpoint(fail: bool) -> dict[str, str]:
            if fail:
                raise ValueError("bad input")
            return {"status": "ok"}

        assert await endpoint(False) == {"status": "ok"}
        with pytest.raises(ValueError):
            await endpoint(True)
        async with track_request(run, "/api/other") as req:
            req.status = "404"
    detail = await hub.runs.get(run.run_id)
    assert detail is not None
    counts = [
        (m.tags["endpoint"], m.tags["status"]) for m in detail.metrics if m.name == "request.count"
    ]
    assert counts == [("/api/plan", "ok"), ("/api/plan", "error"), ("/api/other", "404")]
    (error,) = [m for m in detail.metrics if m.name == "request.errors"]
    assert error.tags["error_type"] == "ValueError" and error.tags["method"] == "POST"
    latencies = [m for m in detail.metrics if m.name == "request.latency_ms"]
    assert len(latencies) == 3 and all(m.kind == "timing" and m.value >= 0 for m in latencies)
    with pytest.raises(InputError, match="async function"):
        track_request(run, "/sync")(lambda: None)


async def test_record_result_takes_tokens_latency_and_cycles_from_strands(hub: Hub) -> None:
    agent = Agent(model=ScriptedModel("Hello there"), callback_handler=None)
    result = await agent.invoke_async("Hi")
    async with hub.runs.start("strands-agent") as run:
        usage = await run.record_result(result)
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (3, 2, 5)
    detail = await hub.runs.get(run.run_id)
    assert detail is not None
    assert (detail.run.input_tokens, detail.run.output_tokens, detail.run.total_tokens) == (3, 2, 5)
    assert detail.metric("tokens.total") == 5 and detail.metric("cycles") == 1
    assert detail.metric("latency_ms") == 1
    with pytest.raises(InputError, match="AgentResult"):
        async with hub.runs.start("strands-agent") as bad:
            await bad.record_result({"not": "a result"})


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda run: run.metric("latency", math.nan), "finite"),
        (lambda run: run.metric("latency", math.inf), "finite"),
        (lambda run: run.metric("latency", -math.inf), "finite"),
        (lambda run: run.metric("latency", "fast"), "must be a number"),
        (lambda run: run.metric("latency", True), "must be a number"),
        (lambda run: run.metric("has space", 1), "metric name 'has space'"),
        (lambda run: run.metric("9lives", 1), "metric name '9lives'"),
        (lambda run: run.metric("", 1), "metric name ''"),
        (lambda run: run.metric("x" * 201, 1), "metric name"),
        (lambda run: run.metric("ok", 1, kind="histogram"), "kind: must be one of"),
        (lambda run: run.metric("ok", 1, tags={"a": 1}), "tags"),
        (lambda run: run.finish("done"), "status: must be one of"),
    ],
)
async def test_bad_input_is_refused_and_nothing_is_produced(
    hub: Hub, call: object, match: str
) -> None:
    run = await hub.runs.start("strict", run_id="strict-run").begin()
    await run.metric("good", 1)  # pending in the batch: must not be lost or sent
    before = await produced(hub)
    with pytest.raises(InputError, match=match):
        await call(run)  # type: ignore[operator]
    assert await produced(hub) == before
    await run.finish()
    detail = await hub.runs.get("strict-run")
    assert detail is not None and [m.name for m in detail.metrics] == ["good"]


async def test_run_ids_are_unique_and_lists_refuse_unknown_statuses(hub: Hub) -> None:
    async with hub.runs.start("dup", run_id="dup-run"):
        pass
    before = await produced(hub)
    with pytest.raises(ConflictError, match="already exists"):
        async with hub.runs.start("dup", run_id="dup-run"):
            pass
    assert await produced(hub) == before
    with pytest.raises(InputError, match="status: must be running, success"):
        await hub.runs.list(status="finished")
    with pytest.raises(InputError, match="timezone-aware"):
        await hub.runs.list(since=datetime(2024, 1, 1))
    with pytest.raises(InputError, match="already finished"):
        run = await hub.runs.start("dup").begin()
        await run.finish()
        await run.metric("late", 1)
