"""Every route of the OpenAPI document, called four ways (issue 12): without a key (401),
with a revoked key (401), with a reader key where it writes (403), and with another
tenant's key on this tenant's data (404, never 403, so ids are not confirmed; routes that
list or create in the caller's own namespace show nothing of the other tenant). A route
added without an entry here fails the test."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from hub import Hub
from hub.http.app import create_app
from hub.http.events import EVENTS_MEDIA_TYPE
from hub.infra.ports import ProducerRecord
from hub.infra.spool import encode_batch
from hub.settings import HubSettings
from schemas.codec import Codec
from schemas.events import AgentRegistered
from tests.support.api import KEY_TENANTS, api_client, key_of, send_dead_letter

pytestmark = pytest.mark.anyio

PUBLIC = {("get", "/healthz")}  # liveness probes; it shows ok/error per check, no data
WRITES = {"post", "put", "patch", "delete"}
OPERATOR_ONLY = {  # admin keys of the hub's own tenant: these act on every tenant
    ("get", "/v1/projections"),
    ("post", "/v1/ops/jobs"),
    ("get", "/v1/ops/jobs"),
    ("get", "/v1/ops/jobs/{job_id}"),
}
ADMIN_ONLY = OPERATOR_ONLY | {
    ("post", "/v1/keys"),
    ("get", "/v1/keys"),
    ("post", "/v1/keys/{key_id}/revoke"),
    ("get", "/v1/dead-letters"),
    ("get", "/v1/dead-letters/{dead_letter_id}"),
    ("post", "/v1/dead-letters/{dead_letter_id}/replay"),
}


@dataclass
class TenantA:
    hub: Hub
    app: FastAPI
    ids: dict[str, str]
    revoked_token: str


@pytest.fixture
async def tenant_a(hub_settings: HubSettings) -> AsyncIterator[TenantA]:
    settings = hub_settings.model_copy(update={"run_projectors": "always", "api_rate_limit": 0})
    async with Hub.connect(settings) as hub:
        app = create_app(hub)
        async with api_client(hub, app, tenant="acme", role="admin") as http:
            ids = await _seed(http)
        revoked = await key_of(hub, "acme", "admin")
        ids["key_id"] = (await hub.keys.create(tenant="acme", role="reader")).key.key_id
        ids["dead_letter_id"] = await _dead_letter_of_acme(hub, app)
        ids["job_id"] = "0190a000-0000-7000-8000-000000000000"
        await hub.keys.revoke(revoked.split("_")[1])
        yield TenantA(hub, app, ids, revoked)


async def _seed(http: AsyncClient) -> dict[str, str]:
    """Tenant A's data, written over HTTP; the ids the routes' paths take."""

    async def ok(response: Any) -> Any:
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    await ok(await http.put("/v1/agents/agent-a", json={"description": "acme's agent"}))
    await ok(await http.post("/v1/threads", json={"agent_id": "agent-a", "thread_id": "thread-a"}))
    appended = await ok(
        await http.post(
            "/v1/threads/thread-a/messages",
            json={
                "messages": [
                    {"role": "user", "content": "acme secret hello"},
                    {"role": "assistant", "content": "hi"},
                ]
            },
        )
    )
    await ok(
        await http.put(
            "/v1/threads/thread-a/agent-state", json={"agent_id": "agent-a", "state": {"k": 1}}
        )
    )
    await ok(await http.post("/v1/runs", json={"agent_id": "agent-a", "run_id": "run-a"}))
    await ok(
        await http.post(
            "/v1/runs/run-a/metrics", json={"metrics": [{"name": "acme_metric", "value": 1.5}]}
        )
    )
    artifact = await ok(
        await http.post(
            "/v1/runs/run-a/artifacts",
            params={"name": "a.txt"},
            content=b"acme",
            headers={"content-type": "text/plain"},
        )
    )
    await ok(
        await http.post(
            "/v1/prompts/prompt-a/versions", json={"version": "v1", "content": "acme prompt"}
        )
    )
    await ok(await http.put("/v1/users/user-a/memory/city", json={"value": "acme city"}))
    return {
        "user_id": "user-a",
        "key": "city",
        "agent_id": "agent-a",
        "thread_id": "thread-a",
        "message_id": appended["message_ids"][0],
        "run_id": "run-a",
        "artifact_id": artifact["artifact_id"],
        "name": "prompt-a",
        "version": "v1",
        "label": "current",
    }


async def _dead_letter_of_acme(hub: Hub, app: FastAPI) -> str:
    """A dead letter whose original event is acme's, as a projector sends one."""
    await send_dead_letter(hub, "acme", "agent-a")
    async with api_client(hub, app, role="admin") as operator:
        listed = (await operator.get("/v1/dead-letters")).json()["dead_letters"]
    return str(next(d["id"] for d in listed if d["tenant_id"] == "acme"))


LATER = "2100-01-01T00:00:00+00:00"


# How to call each operation: query, body, and what another tenant's key gets: "404"
# (it names this tenant's data), "own" (it creates in the caller's own namespace),
# "list" (it lists the caller's own data) or "operator" (403: it acts on every tenant).
# Bodies are valid, so 404 comes from the tenant.
CALLS: dict[tuple[str, str], tuple[dict[str, Any], Any, str]] = {
    ("get", "/v1/projections"): ({}, None, "operator"),
    ("post", "/v1/ops/jobs"): ({}, {"kind": "verify", "projection": "registry"}, "operator"),
    ("get", "/v1/ops/jobs"): ({}, None, "operator"),
    ("get", "/v1/ops/jobs/{job_id}"): ({}, None, "operator"),
    ("get", "/v1/dead-letters"): ({}, None, "list"),
    ("get", "/v1/dead-letters/{dead_letter_id}"): ({}, None, "404"),
    ("post", "/v1/dead-letters/{dead_letter_id}/replay"): ({}, {}, "404"),
    ("get", "/v1/agents"): ({}, None, "list"),
    ("get", "/v1/agents/{agent_id}"): ({}, None, "404"),
    ("put", "/v1/agents/{agent_id}"): ({}, {"description": "other"}, "own"),
    ("post", "/v1/agents/{agent_id}/tags"): ({}, {"add": ["t"]}, "404"),
    ("post", "/v1/agents/{agent_id}/retire"): ({}, {}, "404"),
    ("get", "/v1/threads"): ({}, None, "list"),
    ("post", "/v1/threads"): ({}, {"agent_id": "agent-b"}, "own"),
    ("get", "/v1/threads/{thread_id}"): ({}, None, "404"),
    ("patch", "/v1/threads/{thread_id}"): ({}, {"title": "x"}, "404"),
    ("get", "/v1/threads/{thread_id}/messages"): ({}, None, "404"),
    ("post", "/v1/threads/{thread_id}/messages"): (
        {},
        {"messages": [{"role": "user", "content": "x"}]},
        "404",
    ),
    ("get", "/v1/threads/{thread_id}/tree"): ({}, None, "404"),
    ("get", "/v1/threads/{thread_id}/messages/{message_id}"): ({}, None, "404"),
    ("get", "/v1/threads/{thread_id}/agent-state"): ({}, None, "404"),
    ("put", "/v1/threads/{thread_id}/agent-state"): ({}, {"agent_id": "x", "state": {}}, "404"),
    ("post", "/v1/threads/{thread_id}/fork"): ({}, {}, "404"),
    ("post", "/v1/threads/{thread_id}/branch"): ({}, {"from_message_id": "{message_id}"}, "404"),
    ("post", "/v1/threads/{thread_id}/edit"): (
        {},
        {"message_id": "{message_id}", "content": "x"},
        "404",
    ),
    ("post", "/v1/threads/{thread_id}/messages/{message_id}/redact"): ({}, {}, "404"),
    ("get", "/v1/search"): ({"q": "acme"}, None, "list"),
    ("get", "/v1/runs"): ({}, None, "list"),
    ("post", "/v1/runs"): ({}, {"agent_id": "agent-b"}, "own"),
    ("get", "/v1/runs/{run_id}"): ({}, None, "404"),
    ("post", "/v1/runs/{run_id}/metrics"): ({}, {"metrics": [{"name": "m", "value": 1}]}, "404"),
    ("post", "/v1/runs/{run_id}/artifacts"): ({"name": "b.txt"}, b"bytes", "404"),
    ("post", "/v1/runs/{run_id}/finish"): ({}, {}, "404"),
    ("post", "/v1/runs/{run_id}/record"): ({}, {"agent_id": "agent-b"}, "own"),
    ("get", "/v1/artifacts/{artifact_id}"): ({}, None, "404"),
    ("get", "/v1/metrics/aggregate"): ({"metric": "acme_metric"}, None, "list"),
    ("get", "/v1/prompts/{name}"): ({}, None, "404"),
    ("get", "/v1/prompts/{name}/versions"): ({}, None, "404"),
    ("post", "/v1/prompts/{name}/versions"): ({}, {"version": "v9", "content": "b"}, "own"),
    ("put", "/v1/prompts/{name}/versions/{version}"): ({}, {"content": "b"}, "own"),
    ("put", "/v1/prompts/{name}/labels/{label}"): ({}, {"version": "{version}"}, "404"),
    ("post", "/v1/prompts/{name}/rollback"): ({}, {"version": "{version}"}, "404"),
    ("get", "/v1/keys"): ({}, None, "list"),
    ("post", "/v1/keys"): ({}, {"role": "reader"}, "own"),
    ("post", "/v1/keys/{key_id}/revoke"): ({}, {}, "404"),
    ("get", "/v1/whoami"): ({}, None, "list"),
    ("post", "/v1/events"): ({}, "records", "own"),
    ("post", "/v1/blobs"): ({"sha256": hashlib.sha256(b"bytes").hexdigest()}, b"bytes", "own"),
    ("get", "/v1/threads/{thread_id}/as-of"): ({"at": LATER}, None, "404"),
    ("get", "/v1/agents/{agent_id}/as-of"): ({"at": LATER}, None, "404"),
    ("get", "/v1/prompts/{name}/labels"): ({"at": LATER}, None, "list"),
    ("get", "/v1/prompts/{name}/as-of"): ({"at": LATER}, None, "404"),
    ("get", "/v1/users/{user_id}/memory"): ({}, None, "list"),
    ("get", "/v1/users/{user_id}/memory/{key}"): ({}, None, "404"),
    ("get", "/v1/users/{user_id}/memory/{key}/history"): ({}, None, "list"),
    ("put", "/v1/users/{user_id}/memory/{key}"): ({}, {"value": "b's"}, "own"),
    ("delete", "/v1/users/{user_id}/memory/{key}"): ({}, None, "own"),
    ("delete", "/v1/users/{user_id}/memory"): ({}, None, "own"),
    ("get", "/v1/checkpoints"): ({"thread_id": "thread-a"}, None, "list"),
    ("post", "/v1/checkpoints/delete-for-runs"): ({}, {"run_ids": ["{run_id}"]}, "own"),
    ("get", "/v1/memory/items"): (
        {"namespace": ["memories", "user-a"], "key": "city"},
        None,
        "404",
    ),
    ("get", "/v1/memory/search"): ({"prefix": ["memories"]}, None, "list"),
    ("get", "/v1/memory/namespaces"): ({}, None, "list"),
    ("get", "/v1/memory/history"): (
        {"namespace": ["memories", "user-a"], "key": "city"},
        None,
        "list",
    ),
    ("get", "/v1/memory/as-of"): ({"namespace": ["memories", "user-a"], "at": LATER}, None, "list"),
}


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


def _records(http: AsyncClient) -> bytes:
    """A batch of one event of the caller's own tenant, as the SDK sends them."""
    token = http.headers.get("authorization", "").removeprefix("Bearer ")
    parts = token.split("_")
    key_id = parts[1] if len(parts) > 2 else "0000000000000000"
    tenant = KEY_TENANTS.get(key_id, "nobody")
    event = AgentRegistered(tenant_id=tenant, actor=f"key:{key_id}", agent_id="agent-b")
    value = Codec().encode(event)
    record = ProducerRecord(str(event.topic), event.partition_key(), value)
    return encode_batch([record])


async def _call(http: AsyncClient, method: str, path: str, ids: dict[str, str]) -> Any:
    query, body, _ = CALLS[(method, path)]
    url = path.format(**ids)
    if body == "records":
        return await http.request(
            method, url, content=_records(http), headers={"content-type": EVENTS_MEDIA_TYPE}
        )
    if isinstance(body, bytes):
        return await http.request(
            method,
            url,
            params=query,
            content=body,
            headers={"content-type": "application/octet-stream"},
        )
    return await http.request(
        method, url, params=_fill(query, ids), json=_fill(body, ids) if body is not None else None
    )


def operations(app: FastAPI) -> list[tuple[str, str]]:
    paths = app.openapi()["paths"]
    return sorted((m, p) for p, methods in paths.items() for m in methods)


def assert_error(response: Any, status: int) -> None:
    assert response.status_code == status, (
        response.request.method,
        response.request.url,
        response.status_code,
        response.text,
    )
    assert set(response.json()["error"]) == {"type", "message", "field"}


@pytest.mark.parametrize("backend", ["postgres"])
async def test_every_route_is_guarded_by_key_role_and_tenant(tenant_a: TenantA) -> None:
    hub, app, ids = tenant_a.hub, tenant_a.app, tenant_a.ids
    ops = [op for op in operations(app) if op not in PUBLIC]
    missing = [op for op in ops if op not in CALLS]
    assert not missing, f"routes with no entry in CALLS: {missing}"
    assert len(ops) >= 35

    async with api_client(hub, app, token="") as anonymous:
        for method, path in ops:
            response = await _call(anonymous, method, path, ids)
            assert_error(response, 401)
            assert response.headers["www-authenticate"] == "Bearer"
    async with api_client(hub, app, token="ahk_not-a-key") as malformed:
        for method, path in ops:
            assert_error(await _call(malformed, method, path, ids), 401)
    async with api_client(hub, app, token=tenant_a.revoked_token) as revoked:
        for method, path in ops:
            assert_error(await _call(revoked, method, path, ids), 401)
    async with api_client(hub, app, tenant="acme", role="reader") as reader:
        for method, path in ops:
            if method in WRITES or (method, path) in ADMIN_ONLY:
                assert_error(await _call(reader, method, path, ids), 403)
    async with api_client(hub, app, tenant="acme", role="writer") as writer:
        for method, path in ops:
            if (method, path) in ADMIN_ONLY:
                assert_error(await _call(writer, method, path, ids), 403)
    async with api_client(hub, app, tenant="acme", role="admin") as tenant_admin:
        for method, path in OPERATOR_ONLY:
            assert_error(await _call(tenant_admin, method, path, ids), 403)

    content = (
        "acme",
        ids["message_id"],
        ids["artifact_id"],
        f'"{ids["dead_letter_id"]}"',  # as a JSON value: "2:0" is also in "13:22:08"
    )  # acme's text, acme's ids
    secrets = (*content, "thread-a", "run-a", "prompt-a")
    async with api_client(hub, app, tenant="globex", role="admin") as other:
        for method, path in ops:
            response = await _call(other, method, path, ids)
            expected = CALLS[(method, path)][2]
            if expected == "404":
                assert_error(response, 404)
            elif expected == "operator":
                assert_error(response, 403)
            else:
                assert response.status_code < 300, (method, path, response.text)
                # what an "own" route is called with (prompt-a) is the caller's own name
                shown = secrets if expected == "list" else content
                leaked = [s for s in shown if s in response.text]
                assert not leaked, (method, path, leaked, response.text)

    async with api_client(hub, app, tenant="acme", role="reader") as reader:
        agent = (await reader.get("/v1/agents/agent-a")).json()
        assert agent["description"] == "acme's agent" and agent["status"] == "active"
        messages = (await reader.get("/v1/threads/thread-a/messages")).json()["messages"]
        assert len(messages) == 2 and all(m["redacted"] is False for m in messages)
        thread = (await reader.get("/v1/threads/thread-a")).json()["thread"]
        assert thread["title"] is None
        run = (await reader.get("/v1/runs/run-a")).json()
        assert run["run"]["status"] == "running" and len(run["metrics"]) == 1
        versions = (await reader.get("/v1/prompts/prompt-a/versions")).json()["versions"]
        assert [v["version"] for v in versions] == ["v1"]
        fact = (await reader.get("/v1/users/user-a/memory/city")).json()
        assert fact["value"] == "acme city"
    assert (await hub.keys.get(ids["key_id"])).revoked_at is None  # type: ignore[union-attr]
