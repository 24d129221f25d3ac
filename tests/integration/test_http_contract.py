"""The HTTP API's error contract (regression for issue 11, finding 6): a body limit
answered with 413 before the body is read whole; every error in the documented
``{"error": ...}`` shape with the right status; OpenAPI documenting what the server
answers; ``/docs`` served without a CDN."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from httpx import AsyncClient

from hub import Hub
from hub.http.app import create_app
from hub.settings import HubSettings
from tests.support.api import api_client

pytestmark = pytest.mark.anyio


@pytest.fixture
async def http(hub_settings: HubSettings, tmp_path: Path) -> AsyncIterator[AsyncClient]:
    settings = hub_settings.model_copy(
        update={"run_projectors": "always", "api_max_body_bytes": 64 * 1024}
    )
    async with Hub.connect(settings) as hub:
        thread = await hub.sessions.start_thread(agent_id="a", thread_id="t1")
        await thread.append("user", "hello")
        async with api_client(hub, create_app(hub)) as client:
            yield client


def assert_error(response: object, status: int, kind: str | None = None) -> dict[str, object]:
    from httpx import Response

    assert isinstance(response, Response)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"type", "message", "field"} and error["message"]
    if kind is not None:
        assert error["type"] == kind
    return dict(error)


@pytest.mark.parametrize("backend", ["postgres"])
async def test_bodies_over_the_limit_get_413_before_being_read(http: AsyncClient) -> None:
    big = b"{" + b" " * (200 * 1024) + b"}"
    json_body = {"content-type": "application/json"}
    assert_error(
        await http.post("/v1/threads/t1/fork", content=big, headers=json_body),
        413,
        "RequestTooLarge",
    )

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        for _ in range(100):
            yield b" " * 4096

    response = await http.post("/v1/threads/t1/fork", content=chunks(), headers=json_body)
    assert_error(response, 413, "RequestTooLarge")
    ok = await http.post("/v1/threads/t1/fork", json={"title": "small"})
    assert ok.status_code == 201, ok.text


@pytest.mark.parametrize("backend", ["postgres"])
async def test_every_error_has_the_documented_shape(http: AsyncClient) -> None:
    assert_error(await http.get("/no/such/route"), 404, "NotFoundError")
    assert_error(await http.delete("/v1/agents"), 405, "MethodNotAllowed")
    bad = await http.post(
        "/v1/threads/t1/fork", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_error(bad, 400, "InputError")
    assert_error(await http.post("/v1/threads/t1/fork", json={"bogus": 1}), 400, "InputError")
    overflow = await http.get("/v1/threads/t1/messages", params={"before": "9" * 20})
    assert assert_error(overflow, 400, "InputError")["field"] == "before"
    assert_error(await http.get("/v1/runs", params={"cursor": "garbage"}), 400, "InputError")
    assert_error(await http.get("/v1/agents/a%00b"), 404, "NotFoundError")
    assert_error(await http.get("/v1/threads/t%001"), 404, "NotFoundError")
    for path, params in [
        ("/v1/agents", {"tag": "x\x00"}),
        ("/v1/search", {"q": "hello\x00"}),
        ("/v1/threads", {"agent_id": "\x00"}),
        ("/v1/runs", {"agent_id": "\x00"}),
    ]:
        response = await http.get(path, params=params)
        assert response.status_code == 200, (path, response.text)


@pytest.mark.parametrize("backend", ["postgres"])
async def test_openapi_documents_the_real_statuses(http: AsyncClient) -> None:
    spec = (await http.get("/openapi.json")).json()
    assert "ErrorBody" in spec["components"]["schemas"]
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            codes = set(operation["responses"])
            assert "422" not in codes, (method, path)
            assert {"400", "404", "409", "413", "503"} <= codes, (method, path)
            if path != "/healthz":  # every other route needs a key
                assert {"401", "403", "429"} <= codes, (method, path)
                assert operation["security"] == [{"HTTPBearer": []}], (method, path)


@pytest.mark.parametrize("backend", ["postgres"])
async def test_docs_work_offline(http: AsyncClient) -> None:
    page = await http.get("/docs")
    assert page.status_code == 200
    assert "/docs-assets/swagger-ui-bundle.js" in page.text and "cdn" not in page.text.lower()
    script = await http.get("/docs-assets/swagger-ui-bundle.js")
    assert script.status_code == 200 and len(script.content) > 100_000
    assert (await http.get("/docs-assets/swagger-ui.css")).status_code == 200
    redoc = await http.get("/redoc")
    assert redoc.status_code == 200 and "/docs-assets/redoc.standalone.js" in redoc.text
