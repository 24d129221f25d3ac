"""The HTTP API (FastAPI). Errors are JSON: ``{"error": {"type", "message", "field"}}``.

Every route but ``/healthz`` needs an API key; the key's tenant scopes every read and
write (see :mod:`hub.http.auth`). Middleware, outermost first: the Host check, CORS (only
when origins are listed), the body limit, JSON-only writes, and idempotent retries."""

from __future__ import annotations

import re
from typing import Any

import anyio
from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from hub.access.keys import Principal
from hub.client import Hub
from hub.http.agents import add_agent_routes
from hub.http.auth import Access
from hub.http.checkpoints import add_checkpoint_routes
from hub.http.consistency import WrittenPositions
from hub.http.docs import install_docs
from hub.http.errors import BodyLimit, install_error_handlers, install_openapi
from hub.http.events import add_event_routes
from hub.http.guards import HostCheck, JsonWrites, allowed_hosts, split_list
from hub.http.idempotency import Idempotency, Scope
from hub.http.items import add_item_routes
from hub.http.keys import add_key_routes
from hub.http.memory import add_memory_routes
from hub.http.ops import add_ops_routes
from hub.http.prompts import add_prompt_routes
from hub.http.run_writes import add_run_write_routes
from hub.http.runs import add_run_routes
from hub.http.sessions import add_thread_routes
from hub.http.thread_writes import add_thread_write_routes
from hub.infra.db import redact
from hub.infra.ports import TopicPartition
from hub.ops.status import ProjectionStatus, projection_status
from schemas.events import Topic

__all__ = ["create_app"]

_UPLOADS = re.compile(r"^/v1/runs/.+/artifacts$|^/v1/blobs$")
_RECORDS = re.compile(r"^/v1/events$")


def _is_upload(scope: Scope) -> bool:
    """Raw bodies streamed to the blob store (not JSON, not held whole)."""
    return scope.get("method") == "POST" and bool(_UPLOADS.match(scope.get("path", "")))


def _is_raw(scope: Scope) -> bool:
    """Requests whose body is not JSON: uploads, and the SDK's batches of records."""
    return _is_upload(scope) or bool(_RECORDS.match(scope.get("path", "")))


def _is_key_management(scope: Scope) -> bool:
    return str(scope.get("path", "")).startswith("/v1/keys")


def create_app(hub: Hub) -> FastAPI:
    """The API over a started ``hub``."""
    s = hub.settings
    app = FastAPI(title="Agent Hub", version="0.1.0", docs_url=None, redoc_url=None)
    access = Access(hub)
    install_error_handlers(app)
    install_openapi(app)
    install_docs(app)
    app.add_middleware(WrittenPositions, producer=lambda: hub.runtime.producer)
    app.add_middleware(
        Idempotency,
        pool=lambda: hub.runtime.pool,
        tenant_of=access.tenant_of,
        streamed=_is_upload,
        skip=_is_key_management,  # a created key's token must never be stored
        keep_s=s.api_idempotency_s,
    )
    app.add_middleware(JsonWrites, raw=_is_raw)
    app.add_middleware(
        BodyLimit,
        max_bytes=s.api_max_body_bytes,
        raw=_is_upload,
        raw_max_bytes=s.api_max_artifact_bytes,
    )
    origins = split_list(s.api_cors_origins)
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
        )
    app.add_middleware(HostCheck, hosts=allowed_hosts(s.api_allowed_hosts, s.api_host))

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """Liveness and readiness, without a key: each check is ok or error (details at
        ``/v1/projections`` and in the server log)."""
        checks = await _health(hub)
        healthy = all(checks[k] == "ok" for k in ("database", "log", "projections"))
        public = {
            k: (v if not isinstance(v, str) or v == "ok" else "error") for k, v in checks.items()
        }
        return JSONResponse(
            {"status": "ok" if healthy else "degraded", **public},
            status_code=200 if healthy else 503,
        )

    @app.get("/v1/projections")
    async def projections(
        _: Principal = Depends(access.operator_principal),  # noqa: B008
    ) -> dict[str, Any]:
        """Every projection's state, lag and errors (operators)."""
        statuses: list[ProjectionStatus] = await projection_status(hub.runtime)
        return {
            "log": hub.runtime.log.name,
            "database": redact(hub.runtime.database_url or ""),
            "health": await _health(hub),
            "projections": [s.model_dump() for s in statuses],
        }

    add_agent_routes(app, access)
    add_thread_routes(app, access)
    add_thread_write_routes(app, access)
    add_run_routes(app, access)
    add_run_write_routes(app, access)
    add_prompt_routes(app, access)
    add_memory_routes(app, access)
    add_checkpoint_routes(app, access)
    add_item_routes(app, access)
    add_key_routes(app, access)
    add_event_routes(app, access)
    add_ops_routes(app, access)
    _bare_path_routes_last(app)
    return app


def _bare_path_routes_last(app: FastAPI) -> None:
    """Ids may contain ``/`` (``{thread_id:path}``): a route ending in such an id
    (``/v1/threads/{thread_id:path}``) would also match ``/v1/threads/t/messages``, so it
    is tried after the routes that have something after the id."""
    routes = app.router.routes
    routes.sort(key=lambda r: str(getattr(r, "path", "")).endswith(":path}"))


async def _health(hub: Hub) -> dict[str, Any]:
    runtime = hub.runtime
    checks: dict[str, Any] = {}
    try:
        await runtime.pool.fetchval("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # health checks report, they do not raise
        checks["database"] = f"error: {exc}"
    try:
        with anyio.fail_after(5):  # a real round trip: the partition count is cached
            await runtime.log.end_offsets([TopicPartition(str(Topic.REGISTRY), 0)])
        checks["log"] = "ok"
    except Exception as exc:
        checks["log"] = f"error: {exc or type(exc).__name__}"
    spool = runtime.spool
    if spool.has_pending():
        checks["spooled"] = spool.count()  # writes waiting for the log
    try:
        errors = [e for s in await projection_status(runtime) for e in s.errors]
        checks["projections"] = "ok" if not errors else "error: " + "; ".join(errors)
    except Exception as exc:
        checks["projections"] = f"error: {exc}"
    checks["projectors"] = len([p for p in hub.projectors if not p.stopping])
    checks["archiver"] = hub.archiver is not None and not hub.archiver.stopping
    return checks
