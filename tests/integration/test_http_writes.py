"""The HTTP write API (issue 12): every write carries the key's tenant and names the key
as its actor, batches are all or nothing and name the failing item, retries with an
Idempotency-Key happen once (even after a crash mid-request), artifacts stream to the
store past the JSON body limit, and the browser guards hold."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from uuid import UUID

import pytest
from fastapi import FastAPI

from hub import Hub
from hub.http.app import create_app
from hub.settings import HubSettings
from schemas.events import Topic
from schemas.ids import repeatable_ids
from tests.support.api import api_client, events_of, key_of

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("backend", ["postgres"])]


@dataclass
class Served:
    hub: Hub
    app: FastAPI


@pytest.fixture
async def served(hub_settings: HubSettings) -> AsyncIterator[Served]:
    settings = hub_settings.model_copy(
        update={"run_projectors": "always", "api_max_body_bytes": 64 * 1024, "api_rate_limit": 0}
    )
    async with Hub.connect(settings) as hub:
        yield Served(hub, create_app(hub))


async def test_writes_carry_the_keys_tenant_and_name_the_key(served: Served) -> None:
    token = await key_of(served.hub, "acme", "writer")
    key_id = token.split("_")[1]
    async with api_client(served.hub, served.app, token=token) as http:
        started = await http.post("/v1/threads", json={"agent_id": "bot", "thread_id": "t"})
        assert started.status_code == 201 and started.headers["location"] == "/v1/threads/t"
        done = await http.post(
            "/v1/threads/t/messages",
            json={"messages": [{"role": "user", "content": "hi"}], "tenant_id": "other"},
        )
        assert done.status_code == 400 and done.json()["error"]["field"] == "tenant_id"
        done = await http.post(
            "/v1/threads/t/messages", json={"messages": [{"role": "user", "content": "hi"}]}
        )
        assert done.status_code == 201, done.text
        run = await http.post("/v1/runs", json={"agent_id": "bot", "run_id": "r"})
        assert run.status_code == 201 and run.json()["status"] == "running"
    sessions = await events_of(served.hub, str(Topic.SESSIONS))
    runs = await events_of(served.hub, str(Topic.RUNS))
    assert {(e.tenant_id, e.actor) for e in sessions + runs} == {("acme", f"key:{key_id}")}
    assert await served.hub.sessions.get("t") is None  # the hub's own tenant has nothing


async def test_a_batch_is_all_or_nothing_and_names_the_failing_item(served: Served) -> None:
    async with api_client(served.hub, served.app, role="writer") as http:
        await http.post("/v1/threads", json={"agent_id": "bot", "thread_id": "t"})
        batch = [{"role": "user", "content": f"m{i}"} for i in range(5)]
        batch[3] = {"role": "robot", "content": "bad"}
        bad = await http.post("/v1/threads/t/messages", json={"messages": batch})
        assert bad.status_code == 400
        assert bad.json()["error"]["field"] == "messages.3.role"
        blob = {"type": "blob", "data_base64": "###", "content_type": "text/plain"}
        bad = await http.post(
            "/v1/threads/t/messages",
            json={
                "messages": [{"role": "user", "content": "ok"}, {"role": "user", "content": [blob]}]
            },
        )
        assert bad.json()["error"]["field"] == "messages.1.content.0.data_base64"
        metrics = [{"name": "ok", "value": 1}, {"name": "9bad", "value": 2}]
        await http.post("/v1/runs", json={"agent_id": "bot", "run_id": "r"})
        bad = await http.post("/v1/runs/r/metrics", json={"metrics": metrics})
        assert bad.status_code == 400 and bad.json()["error"]["field"] == "metrics.1.name"
        blob["data_base64"] = base64.b64encode(b"\x00\x01binary").decode()
        good = await http.post(
            "/v1/threads/t/messages",
            json={
                "messages": [{"role": "user", "content": "ok"}, {"role": "user", "content": [blob]}]
            },
        )
        assert good.status_code == 201, good.text
        messages = (await http.get("/v1/threads/t/messages")).json()["messages"]
        assert [m["role"] for m in messages] == ["user", "user"]  # nothing of the bad batches
        assert messages[1]["parts"][0]["size"] == 8
        detail = (await http.get("/v1/runs/r")).json()
        assert detail["metrics"] == []


async def test_a_retried_write_happens_once(served: Served) -> None:
    async with api_client(served.hub, served.app, role="writer") as http:
        await http.post("/v1/threads", json={"agent_id": "bot", "thread_id": "t"})
        body = {"messages": [{"role": "user", "content": "once"}]}
        key = {"Idempotency-Key": "append-1"}
        first = await http.post("/v1/threads/t/messages", json=body, headers=key)
        again = await http.post("/v1/threads/t/messages", json=body, headers=key)
        assert first.status_code == again.status_code == 201
        assert first.json() == again.json()
        assert again.headers["idempotent-replayed"] == "true"
        other = await http.post(
            "/v1/threads/t/messages",
            json={"messages": [{"role": "user", "content": "x"}]},
            headers=key,
        )
        assert other.status_code == 409 and other.json()["error"]["field"] == "Idempotency-Key"
        started = [
            await http.post(
                "/v1/threads", json={"agent_id": "bot"}, headers={"Idempotency-Key": "s"}
            )
            for _ in range(2)
        ]
        assert started[0].json() == started[1].json()
        threads = (await http.get("/v1/threads", params={"agent_id": "bot"})).json()["threads"]
        assert len(threads) == 2  # "t" and one started thread, not two
        messages = (await http.get("/v1/threads/t/messages")).json()["messages"]
        assert [m["text"] for m in messages] == ["once"]


async def test_a_retry_after_a_crash_mid_request_makes_the_same_events(served: Served) -> None:
    """The server died after producing and before answering: its claim lapses, the retry
    runs again with the same ids, and the projections drop the repeat by event id."""
    hub = served.hub
    token = await key_of(hub, hub.settings.tenant, "writer")
    async with api_client(hub, served.app, token=token) as http:
        await http.post("/v1/threads", json={"agent_id": "bot", "thread_id": "t"})
        body = {"messages": [{"role": "user", "content": "exactly once"}]}
        # what the first attempt did before the crash: claimed the key, produced the events
        pool = hub.runtime.pool
        created = await pool.fetchval(
            "INSERT INTO hub.idempotency (tenant_id, idem_key, fingerprint, lease_until) "
            "VALUES ($1, 'k', 'pending', now() - interval '1 second') RETURNING created_at",
            hub.settings.tenant,
        )
        import hashlib

        seed = hashlib.sha256(f"{hub.settings.tenant}\0k".encode()).digest()
        with repeatable_ids(seed, int(created.timestamp() * 1000)):
            first = await hub.sessions.append_many("t", body["messages"])
        from hub.http.idempotency import Idempotency

        fingerprint = Idempotency._fingerprint(
            {"method": "POST", "path": "/v1/threads/t/messages", "query_string": b""},
            {},
            (await _json_bytes(body)),
        )
        await pool.execute("UPDATE hub.idempotency SET fingerprint = $1", fingerprint)
        retry = await http.post(
            "/v1/threads/t/messages",
            content=await _json_bytes(body),
            headers={"Idempotency-Key": "k", "content-type": "application/json"},
        )
        assert retry.status_code == 201, retry.text
        assert [UUID(i) for i in retry.json()["message_ids"]] == first
        messages = (await http.get("/v1/threads/t/messages")).json()["messages"]
        assert [m["text"] for m in messages] == ["exactly once"]
    appended = [
        e for e in await events_of(hub, str(Topic.SESSIONS)) if e.type_name() == "MessageAppended"
    ]
    assert len(appended) == 2 and appended[0].event_id == appended[1].event_id


async def _json_bytes(body: object) -> bytes:
    import json

    return json.dumps(body).encode()


async def test_artifacts_stream_past_the_json_body_limit(served: Served) -> None:
    size = 3 * 1024 * 1024  # 48 times the 64 KiB JSON limit of this server

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(size // 65536):
            yield b"\xab" * 65536

    async with api_client(served.hub, served.app, role="writer") as http:
        await http.post("/v1/runs", json={"agent_id": "bot", "run_id": "r"})
        stored = await http.post(
            "/v1/runs/r/artifacts",
            params={"name": "blob.bin", "metadata": '{"kind": "weights"}'},
            content=chunks(),
            headers={"content-type": "application/octet-stream"},
        )
        assert stored.status_code == 201, stored.text
        info = stored.json()
        assert info["size"] == size and info["metadata"] == {"kind": "weights"}
        finished = await http.post("/v1/runs/r/finish", json={"status": "success"})
        assert finished.json()["status"] == "success"
        again = await http.post("/v1/runs/r/finish", json={"status": "success"})
        assert again.status_code == 200  # a retried finish is answered again
        clash = await http.post("/v1/runs/r/finish", json={"status": "failed"})
        assert clash.status_code == 409
        got = (await http.get(f"/v1/artifacts/{info['artifact_id']}")).json()
        assert got["sha256"] == info["sha256"]
    data = await (await served.hub.runtime.blob_store()).get(
        f"artifacts/{served.hub.settings.tenant}/{info['key']}"
    )
    assert data == b"\xab" * size


async def test_browser_guards_and_the_rate_limit(served: Served, hub_settings: HubSettings) -> None:
    hub = served.hub
    async with api_client(hub, served.app, role="writer") as http:
        rebinding = await http.get("/v1/agents", headers={"host": "evil.example:8000"})
        assert rebinding.status_code == 400 and rebinding.json()["error"]["field"] == "Host"
        form = await http.post(
            "/v1/threads",
            content=b"agent_id=x",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert form.status_code == 415
        plain = await http.post(
            "/v1/threads", content=b'{"agent_id": "x"}', headers={"content-type": "text/plain"}
        )
        assert plain.status_code == 415
        preflight = await http.options(
            "/v1/agents",
            headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
        )
        assert "access-control-allow-origin" not in preflight.headers
        listed = await http.get("/v1/agents", headers={"origin": "https://evil.example"})
        assert "access-control-allow-origin" not in listed.headers

    limited = hub_settings.model_copy(
        update={
            "api_rate_limit": 5,
            "api_rate_burst": 3,
            "api_cors_origins": "https://app.example",
            "api_allowed_hosts": "hub.example.com",
        }
    )
    hub.settings = limited
    app = create_app(hub)
    async with api_client(hub, app, role="reader") as http:
        answers = [await http.get("/v1/agents") for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert int(answers[3].headers["retry-after"]) >= 1
        assert answers[3].json()["error"]["type"] == "RateLimitedError"
        named = await http.get("/v1/agents/x", headers={"host": "hub.example.com"})
        assert named.status_code in (404, 429)
        preflight = await http.options(
            "/v1/agents",
            headers={"origin": "https://app.example", "access-control-request-method": "GET"},
        )
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"


async def test_messages_with_integers_beyond_64_bits_read_back_exactly(served: Served) -> None:
    """Regression: the fast JSON path (orjson) cannot write integers beyond 64 bits; the
    messages read falls back to the standard encoder for them."""
    big = {"huge": 2**70, "negative": -(2**64) - 1, "ok": 1}
    async with api_client(served.hub, served.app, role="writer") as http:
        await http.post("/v1/threads", json={"agent_id": "bot", "thread_id": "t"})
        written = await http.post(
            "/v1/threads/t/messages",
            json={"messages": [{"role": "user", "content": "big", "metadata": big}]},
        )
        assert written.status_code == 201, written.text
        read = await http.get("/v1/threads/t/messages")
        assert read.status_code == 200, read.text
        assert read.json()["messages"][0]["metadata"] == big


async def test_a_redaction_over_http_may_show_parts(served: Served) -> None:
    async with api_client(served.hub, served.app, role="writer") as http:
        await http.post("/v1/threads", json={"agent_id": "bot", "thread_id": "r"})
        written = await http.post(
            "/v1/threads/r/messages",
            json={"messages": [{"role": "assistant", "content": "card 4111 1111 1111 1111"}]},
        )
        (message_id,) = written.json()["message_ids"]
        shown = [
            {"type": "text", "text": "[removed]"},
            {"type": "blob", "data_base64": "JVBERi0=", "content_type": "application/pdf"},
        ]
        redacted = await http.post(
            f"/v1/threads/r/messages/{message_id}/redact",
            json={"reason": "pii", "replacement": shown},
        )
        assert redacted.status_code == 204, redacted.text
        (message,) = (await http.get("/v1/threads/r/messages")).json()["messages"]
        assert message["redacted"] and message["text"] == "[removed]"
        assert [p["type"] for p in message["parts"]] == ["text", "blob"]
        assert message["parts"][1]["size"] == 5
        bad = await http.post(
            f"/v1/threads/r/messages/{message_id}/redact",
            json={"replacement": [{"type": "blob", "data_base64": "%%%"}]},
        )
        assert (
            bad.status_code == 400 and bad.json()["error"]["field"] == "replacement.0.data_base64"
        )
