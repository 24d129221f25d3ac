"""Operations over HTTP (issue 12): operators (admin keys of the hub's own tenant) run
replay, rebuild and verify as jobs in their own processes and follow them; admins of
other tenants see and replay only their own tenant's dead letters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from hub import Hub
from hub.http.app import create_app
from hub.settings import HubSettings
from tests.support.api import api_client, send_dead_letter

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("backend", ["postgres", "kafka"])]

JOB_TIMEOUT_S = 120.0


@pytest.fixture
async def served(hub_settings: HubSettings) -> AsyncIterator[tuple[Hub, FastAPI]]:
    settings = hub_settings.model_copy(update={"run_projectors": "always", "api_rate_limit": 0})
    async with Hub.connect(settings) as hub:
        for n in range(20):
            await hub.registry.register(f"agent-{n}", description=f"agent {n}")
        await hub.wait_for_projections()
        yield hub, create_app(hub)


async def _finished(http: AsyncClient, location: str) -> dict[str, Any]:
    with anyio.fail_after(JOB_TIMEOUT_S):
        while True:
            job: dict[str, Any] = (await http.get(location)).json()
            if job["state"] not in ("queued", "running"):
                return job
            await anyio.sleep(0.2)


async def _run(http: AsyncClient, spec: dict[str, Any]) -> dict[str, Any]:
    started = await http.post("/v1/ops/jobs", json=spec)
    assert started.status_code == 202, started.text
    assert started.json()["state"] in ("queued", "running")
    job = await _finished(http, started.headers["location"])
    assert job["state"] == "succeeded", job
    return job


async def test_operator_runs_verify_replay_and_rebuild_as_jobs(
    served: tuple[Hub, FastAPI],
) -> None:
    hub, app = served
    async with api_client(hub, app, role="admin") as operator:
        verified = await _run(operator, {"kind": "verify", "projection": "registry"})
        assert verified["result"]["same"] is True
        tables = {t["table"]: t for t in verified["result"]["tables"]}
        assert tables["agents"]["rows"] == 20 and all(t["same"] for t in tables.values())
        assert verified["requested_by"].startswith("key:")

        replayed = await _run(
            operator, {"kind": "replay", "projection": "registry", "start": 0, "reset": True}
        )
        assert replayed["result"]["events"] >= 20
        rebuilt = await _run(operator, {"kind": "rebuild", "projection": "registry", "grace_s": 0})
        assert rebuilt["result"]["swapped"] is True and rebuilt["progress"] is not None
        agents = (await operator.get("/v1/agents", params={"limit": 100})).json()["agents"]
        assert len(agents) == 20

        listed = (await operator.get("/v1/ops/jobs")).json()["jobs"]
        assert [j["kind"] for j in listed[:3]] == ["rebuild", "replay", "verify"]


async def test_one_operation_per_projection_and_bad_input_named(
    served: tuple[Hub, FastAPI],
) -> None:
    hub, app = served
    async with api_client(hub, app, role="admin") as operator:
        first = await operator.post(
            "/v1/ops/jobs", json={"kind": "verify", "projection": "registry"}
        )
        assert first.status_code == 202
        second = await operator.post(
            "/v1/ops/jobs", json={"kind": "rebuild", "projection": "registry"}
        )  # the first is queued or running until its process has finished
        assert second.status_code == 409, second.text
        assert first.json()["job_id"] in second.json()["error"]["message"]
        other = await operator.post("/v1/ops/jobs", json={"kind": "verify", "projection": "runs"})
        assert other.status_code == 202  # another projection may run meanwhile
        for job in (first, other):
            assert (await _finished(operator, job.headers["location"]))["state"] == "succeeded"

        bad = {
            "unknown projection": ({"kind": "verify", "projection": "nope"}, 404, "registry"),
            "option of another kind": (
                {"kind": "verify", "projection": "registry", "reset": True},
                400,
                "reset: not an option of verify",
            ),
            "bad start": (
                {"kind": "replay", "projection": "registry", "start": "yesterday"},
                400,
                "'yesterday' is not an ISO date",
            ),
            "unknown kind": ({"kind": "explode", "projection": "registry"}, 400, "kind"),
        }
        for name, (spec, status, said) in bad.items():
            response = await operator.post("/v1/ops/jobs", json=spec)
            assert response.status_code == status, (name, response.text)
            assert said in response.text, (name, response.text)
        assert (await operator.get("/v1/ops/jobs/no-such-job")).status_code == 404


async def test_a_job_whose_process_vanished_is_lost_and_frees_the_projection(
    served: tuple[Hub, FastAPI],
) -> None:
    hub, app = served
    await hub.runtime.pool.execute(
        "INSERT INTO hub.ops_jobs (job_id, kind, projection, params, state, requested_by,"
        " pid, updated_at) VALUES ('gone', 'rebuild', 'registry', '{}', 'running', 'key:x',"
        " 999999, now() - interval '1 hour')"
    )  # what a SIGKILLed job process leaves behind
    async with api_client(hub, app, role="admin") as operator:
        lost = (await operator.get("/v1/ops/jobs/gone")).json()
        assert lost["state"] == "lost" and "no heartbeat" in lost["error"]
        await _run(operator, {"kind": "verify", "projection": "registry"})


async def test_admins_see_and_replay_only_their_tenants_dead_letters(
    served: tuple[Hub, FastAPI],
) -> None:
    hub, app = served
    await send_dead_letter(hub, "acme", "acme-agent")
    await send_dead_letter(hub, "globex", "globex-agent")
    async with (
        api_client(hub, app, tenant="acme", role="admin") as acme,
        api_client(hub, app, role="admin") as operator,
    ):
        everything = (await operator.get("/v1/dead-letters")).json()["dead_letters"]
        assert {d["tenant_id"] for d in everything} == {"acme", "globex"}
        globex_id = next(d["id"] for d in everything if d["tenant_id"] == "globex")

        mine = (await acme.get("/v1/dead-letters")).json()
        assert [d["tenant_id"] for d in mine["dead_letters"]] == ["acme"]
        acme_id = mine["dead_letters"][0]["id"]
        shown = (await acme.get(f"/v1/dead-letters/{acme_id}")).json()
        assert shown["event"]["agent_id"] == "acme-agent" and shown["reason"] == "acme poison"
        assert (await acme.get(f"/v1/dead-letters/{globex_id}")).status_code == 404
        assert (await acme.post(f"/v1/dead-letters/{globex_id}/replay", json={})).status_code == 404

        replayed = (await acme.post(f"/v1/dead-letters/{acme_id}/replay", json={})).json()
        assert replayed["outcome"] == "requeued", replayed
        again = (await acme.post(f"/v1/dead-letters/{acme_id}/replay", json={})).json()
        assert again["outcome"] == "already_replayed"
        pending = (await acme.get("/v1/dead-letters", params={"pending": True})).json()
        assert pending["dead_letters"] == []

        page = (await operator.get("/v1/dead-letters", params={"limit": 1})).json()
        assert (
            len(page["dead_letters"]) == 1 and page["next_cursor"] == page["dead_letters"][0]["id"]
        )
        rest = await operator.get("/v1/dead-letters", params={"cursor": page["next_cursor"]})
        assert [d["id"] for d in rest.json()["dead_letters"]] == [d["id"] for d in everything[1:]]
    async with Hub.connect(hub.settings.model_copy(update={"tenant": "acme"})) as acme_hub:
        await acme_hub.wait_for_projections()
        assert await acme_hub.registry.get("acme-agent") is not None  # applied once replayed
