"""The HTTP API (FastAPI). Errors are JSON: ``{"error": {"type", "message", "field"}}``."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from hub.client import Hub
from hub.http.agents import add_agent_routes
from hub.http.docs import install_docs
from hub.http.errors import BodyLimit, install_error_handlers, install_openapi
from hub.http.prompts import add_prompt_routes
from hub.http.runs import add_run_routes
from hub.http.sessions import add_thread_routes
from hub.infra.db import redact
from hub.infra.ports import TopicPartition
from hub.ops.status import ProjectionStatus, projection_status
from schemas.events import Topic

__all__ = ["create_app"]


def create_app(hub: Hub) -> FastAPI:
    """The API over a started ``hub``."""
    app = FastAPI(title="Agent Hub", version="0.1.0", docs_url=None, redoc_url=None)
    install_error_handlers(app)
    install_openapi(app)
    install_docs(app)
    app.add_middleware(BodyLimit, max_bytes=hub.settings.api_max_body_bytes)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
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
        healthy = all(checks[k] == "ok" for k in ("database", "log", "projections"))
        return JSONResponse(
            {"status": "ok" if healthy else "degraded", **checks},
            status_code=200 if healthy else 503,
        )

    @app.get("/v1/projections")
    async def projections() -> dict[str, Any]:
        statuses: list[ProjectionStatus] = await projection_status(hub.runtime)
        return {
            "log": hub.runtime.log.name,
            "database": redact(hub.runtime.database_url or ""),
            "projections": [s.model_dump() for s in statuses],
        }

    add_agent_routes(app, hub)
    add_thread_routes(app, hub)
    add_run_routes(app, hub)
    add_prompt_routes(app, hub)
    return app
