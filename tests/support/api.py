"""An HTTP client of a hub's API with a key of one tenant and role (through ASGI, no
socket): ``async with api_client(hub, tenant="acme", role="writer") as http``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from hub import Hub

__all__ = [
    "KEY_TENANTS",
    "api_client",
    "events_of",
    "key_of",
    "send_dead_letter",
    "served_api",
]

KEY_TENANTS: dict[str, str] = {}
"""Key id -> tenant of the keys clients here were made with."""

BASE_URL = "http://127.0.0.1"


async def key_of(hub: Hub, tenant: str, role: str, name: str | None = None) -> str:
    """A new key's token."""
    token = (await hub.keys.create(tenant=tenant, role=role, name=name)).token
    KEY_TENANTS[token.split("_")[1]] = tenant
    return token


@asynccontextmanager
async def api_client(
    hub: Hub,
    app: FastAPI,
    *,
    tenant: str | None = None,
    role: str = "admin",
    token: str | None = None,
) -> AsyncIterator[AsyncClient]:
    """A client of ``app`` holding a new key (or ``token``); ``tenant`` defaults to the
    hub's own tenant."""
    if token is None:
        token = await key_of(hub, tenant or hub.settings.tenant, role)
    if token.count("_") >= 2:
        KEY_TENANTS[token.split("_")[1]] = tenant or hub.settings.tenant
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = ASGITransport(app=app)
    async with AsyncClient(transport=transport, base_url=BASE_URL, headers=headers) as client:
        yield client


async def events_of(hub: Hub, topic: str) -> list[Any]:
    """Every event in ``topic`` now, decoded, in partition and offset order."""
    from hub.infra.ports import TopicPartition

    log = hub.runtime.log
    tps = [TopicPartition(topic, p) for p in range(await log.partitions_for(topic))]
    ends = await log.end_offsets(tps)
    events: list[Any] = []
    async with log.consumer(group_id=None, partitions=tps) as consumer:
        for tp in tps:
            await consumer.seek(tp, 0)
        seen = 0
        while seen < sum(ends.values()):
            records = await consumer.fetch(1000, 1.0)
            seen += len(records)
            events += [hub.runtime.codec.decode(r.value) for r in records]
    return events


async def send_dead_letter(hub: Hub, tenant: str, agent_id: str) -> None:
    """A dead letter of the registry projection whose original event (registering
    ``agent_id``) is ``tenant``'s, sent as a projector sends one."""
    from consumers.dead_letters import dead_letter_record
    from hub.infra.ports import ConsumerRecord, TopicPartition
    from schemas.events import AgentRegistered

    codec = hub.runtime.codec
    event = AgentRegistered(tenant_id=tenant, actor="key:x", agent_id=agent_id)
    tp = TopicPartition(str(event.topic), 0)
    original = ConsumerRecord(tp.topic, 0, 0, event.partition_key(), codec.encode(event), (), 0, tp)
    letter = dead_letter_record(
        codec,
        original,
        consumer="proj_registry_v1",
        error=ValueError(f"{tenant} poison"),
        event_type="AgentRegistered",
    )
    await hub.runtime.producer.send([letter])


@asynccontextmanager
async def served_api(hub: Hub) -> AsyncIterator[str]:
    """``hub``'s HTTP API on a real socket (uvicorn, in this event loop); yields its URL."""
    import socket

    import anyio
    import uvicorn

    from hub.http.app import create_app

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    config = uvicorn.Config(create_app(hub), log_level="warning", lifespan="off")

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:  # the test process keeps its own
            yield

    server = Server(config)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            while not server.started:
                await anyio.sleep(0.01)
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
            server.should_exit = True
    finally:
        sock.close()
