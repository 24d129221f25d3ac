"""What the Python SDK needs to work over HTTP: who the key is (``/v1/whoami``), a batch
of events its clients built and checked (``/v1/events``, as a Kafka producer sends
records), and content-addressed message blobs (``/v1/blobs``).

Events are checked here again, whatever the client did: each must decode against its
schema, belong to the key's tenant, name the key as its actor, be of a type a writer may
write, and point only at the tenant's own blobs. The batch is appended all or none; the
answer gives each event's position, which the client sends back on reads
(``X-Hub-Read-After``) to read its own writes on any server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Query, Request, Response
from pydantic import BaseModel

from hub.access.keys import Principal
from hub.infra.spool import RECORDS_MEDIA_TYPE, decode_batch
from schemas.errors import ForbiddenError, InputError, SchemaError
from schemas.events import (
    ApiKeyCreated,
    ApiKeyRevoked,
    ArtifactStored,
    BlobPart,
    DeadLettered,
    Event,
    MessageAppended,
)

if TYPE_CHECKING:
    from hub.client import Hub
    from hub.http.auth import Access
    from hub.infra.ports import BlobStore, ProducerRecord

__all__ = ["EVENTS_MEDIA_TYPE", "add_event_routes", "blob_key"]

EVENTS_MEDIA_TYPE = RECORDS_MEDIA_TYPE
NOT_OVER_HTTP: dict[type[Event], str] = {
    ApiKeyCreated: "keys are made with POST /v1/keys",
    ApiKeyRevoked: "keys are revoked with POST /v1/keys/{id}/revoke",
    DeadLettered: "dead letters are the projections' own",
    ArtifactStored: "artifacts are uploaded with POST /v1/runs/{id}/artifacts",
}
_BINARY = {"schema": {"type": "string", "format": "binary"}}
RAW_BODY = {"content": {EVENTS_MEDIA_TYPE: _BINARY, "application/octet-stream": _BINARY}}
OCTETS = {
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
}


def blob_key(tenant: str, sha256: str) -> str:
    """Where a message blob with this digest lives (content-addressed, per tenant)."""
    return f"blobs/{tenant}/{sha256[:2]}/{sha256}"


class WhoAmI(BaseModel):
    key_id: str
    tenant: str
    role: str
    actor: str
    name: str | None
    max_event_bytes: int
    max_message_bytes: int


class Appended(BaseModel):
    positions: list[tuple[str, int, int]]
    spooled: bool = False


def add_event_routes(app: FastAPI, access: Access) -> None:
    hub = access.hub
    reader = Depends(access.reader_principal)
    writer = Depends(access.writer_principal)

    @app.get("/v1/whoami")
    async def whoami(caller: Principal = reader) -> WhoAmI:
        s = hub.settings
        return WhoAmI(
            key_id=caller.key_id,
            tenant=caller.tenant,
            role=str(caller.role),
            actor=caller.actor,
            name=caller.name,
            max_event_bytes=s.max_event_bytes,
            max_message_bytes=s.max_message_bytes,
        )

    @app.post("/v1/events", status_code=201, openapi_extra={"requestBody": RAW_BODY})
    async def append_events(
        request: Request, response: Response, caller: Principal = writer
    ) -> Appended:
        """Append a batch of events built by the SDK (its record format), all or none."""
        body = await request.body()
        try:
            records = decode_batch(body, "request body")
        except Exception as exc:  # a damaged or foreign body
            raise InputError(f"request body: not a batch of records ({exc})") from None
        if not records:
            raise InputError("request body: no records")
        store = await hub.runtime.blob_store()
        checked = [_check(hub, store, caller, i, r) for i, r in enumerate(records)]
        positions = await hub.runtime.producer.send(checked)
        if not positions:  # the log is down: the server spooled them, durably
            response.status_code = 202
        return Appended(positions=[tuple(p) for p in positions], spooled=not positions)

    @app.post("/v1/blobs", status_code=201, openapi_extra={"requestBody": OCTETS})
    async def upload_blob(
        request: Request,
        sha256: str = Query(..., pattern="^[0-9a-f]{64}$"),
        content_type: str = Query("application/octet-stream"),
        name: str | None = None,
        caller: Principal = writer,
    ) -> dict[str, Any]:
        """A message blob, streamed to the store under its SHA-256 (the bytes must have
        that digest); answered as the blob part to put in a message."""
        store = await hub.runtime.blob_store()
        key = blob_key(caller.tenant, sha256)
        if await store.exists(key):
            size = -1
        else:

            async def chunks() -> AsyncIterator[bytes]:
                async for chunk in request.stream():
                    if chunk:
                        yield chunk

            stored = await store.put_stream(key, chunks(), content_type=content_type)
            if stored.sha256 != sha256:
                await store.delete(key)
                raise InputError(f"sha256: the body's digest is {stored.sha256}", field="sha256")
            size = stored.size
        return {
            "type": "blob",
            "uri": store.uri(key),
            "content_type": content_type,
            "size": size,
            "sha256": sha256,
            "name": name,
        }


def _check(
    hub: Hub, store: BlobStore, caller: Principal, i: int, record: ProducerRecord
) -> ProducerRecord:
    where = f"records.{i}"
    try:
        event = hub.runtime.codec.decode(record.value)
    except SchemaError as exc:
        raise InputError(f"{where}: {exc.message}", field=where) from None
    refused = NOT_OVER_HTTP.get(type(event))
    if refused is not None:
        raise ForbiddenError(f"{where}: {type(event).__name__} cannot be sent here: {refused}")
    if event.tenant_id != caller.tenant or event.actor != caller.actor:
        raise ForbiddenError(
            f"{where}: events written with this key must have tenant_id {caller.tenant!r} "
            f"and actor {caller.actor!r}"
        )
    if str(event.topic) != record.topic or event.partition_key() != record.key:
        raise InputError(f"{where}: topic or key do not match the event", field=where)
    limit = hub.settings.max_message_bytes if isinstance(event, MessageAppended) else None
    size_limit = min(limit or hub.settings.max_event_bytes, hub.settings.max_event_bytes)
    if len(record.value) > size_limit:
        raise InputError(
            f"{where}: {len(record.value)} bytes, over the {size_limit}-byte limit", field=where
        )
    if isinstance(event, MessageAppended):
        for part in event.parts:
            if isinstance(part, BlobPart) and part.uri != store.uri(
                blob_key(caller.tenant, part.sha256)
            ):
                raise ForbiddenError(f"{where}: blob {part.uri} is not one of this tenant's")
    hub.scope(caller).context.note_written([event])  # the caller's reads wait for it
    return hub.runtime.producer.record_of(event, record.value)
