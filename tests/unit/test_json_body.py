"""A route that reads its JSON body itself (``hub.http.json_body``) answers exactly as a
route taking the body as a FastAPI parameter: the same 400 for every wrong body, and
the same values for every right one."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from hub.http.errors import install_error_handlers, install_openapi
from hub.http.json_body import json_request_body, read_json, read_json_fast, validate
from hub.http.thread_writes import AppendMessages, _plain_texts

pytestmark = pytest.mark.anyio


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    install_openapi(app)

    @app.post("/param")
    async def param(body: AppendMessages) -> Any:
        return {"repr": repr(body.model_dump())}  # a lone surrogate is no JSON

    @app.post("/own", openapi_extra={"requestBody": json_request_body(AppendMessages)})
    async def own(request: Request) -> Any:
        plain = _plain_texts(await read_json_fast(request))
        if plain is not None:  # taken as it came: it must be what validation gives
            checked = validate(AppendMessages, await read_json(request))
            assert [m.model_dump(exclude_none=True) for m in checked.messages] == [
                {k: v for k, v in m.items() if v is not None} | _uuid(m) for m in plain
            ]
        return {"repr": repr(validate(AppendMessages, await read_json(request)).model_dump())}

    return app


def _uuid(message: dict[str, Any]) -> dict[str, Any]:
    from uuid import UUID

    given = message.get("message_id")
    return {"message_id": UUID(given)} if given else {}


BODIES: list[bytes] = [
    b"",
    b"{",
    b"[]",
    b"null",
    b'{"messages": []}',
    b'{"messages": {}}',
    b'{"messages": [1]}',
    b'{"messages": [{"role": "user"}]}',
    b'{"messages": [{"role": 1, "content": "x"}]}',
    b'{"messages": [{"role": "user", "content": "x", "extra": 1}]}',
    b'{"messages": [{"role": "user", "content": "x"}], "more": 1}',
    b'{"messages": [{"role": "user", "content": "x", "message_id": "nope"}]}',
    b'{"messages": [{"role": "user", "content": "x", "message_id": 7}]}',
    b'{"messages": [{"role": "user", "content": "x", "usage": {"in": 1.5}}]}',
    b'{"messages": [{"role": "user", "content": "x", "metadata": {"n": NaN}}]}',
    b'{"messages": [{"role": "user", "content": "x", "metadata": {"n": 1180591620717411303424}}]}',
    b'{"messages": [{"role": "user", "content": "lone \\ud800"}]}',
    b'{"messages": [{"role": "user", "content": "x", "message_id": '
    b'"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"}]}',
    b'{"messages": [{"role": "user", "content": "x", "message_id": '
    b'"{0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b}"}]}',
    b'{"messages": [{"role": "user", "content": "x", "message_id": '
    b'"0190a1b2_c3d4_7e5f_8a9b_0c1d2e3f4a5b"}]}',
    b'{"messages": [{"role": "user", "content": "x", "message_id": null, "model": null}]}',
    b'{"messages": [{"role": "user", "content": [{"type": "text", "text": "parts"}]}]}',
    b'{"messages": [' + b",".join([b'{"role": "user", "content": "x"}'] * 1001) + b"]}",
    b'\xff\xfe{"messages": []}',
]


@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
async def test_the_same_answer_as_a_body_parameter(body: bytes) -> None:
    transport = httpx.ASGITransport(app=_app())
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        theirs = await http.post("/param", content=body, headers=headers)
        ours = await http.post("/own", content=body, headers=headers)
    assert theirs.status_code < 500  # FastAPI's own path handles every body above
    assert (ours.status_code, ours.json()) == (theirs.status_code, theirs.json())


def test_the_same_openapi_body_as_a_body_parameter() -> None:
    document = _app().openapi()
    paths = document["paths"]
    assert paths["/own"]["post"]["requestBody"] == paths["/param"]["post"]["requestBody"]
    assert {"AppendMessages", "MessageIn"} <= set(document["components"]["schemas"])
