"""The HTTP API's error contract: every error is ``{"error": {"type", "message",
"field"}}`` with the status of its kind (400 bad input, 401 no or bad key, 403 a role that
may not, 404, 405, 409, 413 body too large, 415 not JSON, 429 over the rate limit, 503 a
component unreachable, 500 a bug), and OpenAPI documents exactly those."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

import structlog
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from schemas.errors import (
    AuthError,
    ConflictError,
    ForbiddenError,
    HubError,
    InputError,
    NotFoundError,
    RateLimitedError,
)

__all__ = ["BodyLimit", "ErrorBody", "install_error_handlers", "install_openapi"]

log = structlog.get_logger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ErrorDetail(BaseModel):
    type: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    """What every error response holds."""

    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "Bad input; `field` names what is wrong"},
    404: {"description": "Not found (or not the caller's tenant's)"},
    409: {"description": "Conflicts with what is stored"},
    413: {"description": "Request body over HUB_API_MAX_BODY_BYTES"},
    503: {"description": "A component (database, log) cannot be reached; try again"},
}
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "No API key, or one that is malformed, unknown or revoked"},
    403: {"description": "The key's role may not do this"},
    429: {"description": "Over the key's rate limit (HUB_API_RATE_LIMIT); see Retry-After"},
}
WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    415: {"description": "The body is not application/json"},
}
_HTTP_TYPES = {
    404: "NotFoundError",
    405: "MethodNotAllowed",
    413: "RequestTooLarge",
    415: "UnsupportedMediaType",
}
_STATUS: tuple[tuple[type[HubError], int], ...] = (
    (InputError, 400),
    (AuthError, 401),
    (ForbiddenError, 403),
    (NotFoundError, 404),
    (ConflictError, 409),
    (RateLimitedError, 429),
)


def status_of(exc: HubError) -> int:
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 503 if exc.retriable else 500


def headers_of(exc: HubError) -> dict[str, str] | None:
    """What an error's answer must say besides its body (how to authenticate, when to
    come back)."""
    if isinstance(exc, AuthError):
        return {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, RateLimitedError):
        return {"Retry-After": str(math.ceil(exc.retry_after))}
    return None


def error_response(
    kind: str,
    message: str,
    field: str | None,
    status: int,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"type": kind, "message": message, "field": field}}
    return JSONResponse(body, status_code=status, headers=dict(headers) if headers else None)


def install_error_handlers(app: FastAPI) -> None:
    """Every error the app can answer, in the one shape."""

    @app.exception_handler(HubError)
    async def hub_error(_: Request, exc: HubError) -> JSONResponse:
        return error_response(
            type(exc).__name__,
            exc.message,
            getattr(exc, "field", None),
            status_of(exc),
            headers_of(exc),
        )

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"] if p not in ("query", "path", "body"))
        message = f"{field}: {err['msg']}" if field else f"request body: {err['msg']}"
        return error_response("InputError", message, field or None, 400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = _HTTP_TYPES.get(exc.status_code, "HTTPError")
        return error_response(kind, str(exc.detail), None, exc.status_code, exc.headers)

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        log.error("http.unhandled", path=request.url.path, error=f"{type(exc).__name__}: {exc}")
        return error_response("InternalError", "internal error (see the server log)", None, 500)


def install_openapi(app: FastAPI) -> None:
    """OpenAPI as the server answers: 400 (not FastAPI's 422) and the error shape."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["ErrorBody"] = ErrorBody.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        components.update(components["ErrorBody"].pop("$defs", {}))
        for methods in schema.get("paths", {}).values():  # bodies routes read themselves
            for operation in methods.values():
                for media in operation.get("requestBody", {}).get("content", {}).values():
                    components.update(media.get("schema", {}).pop("$defs", {}))
        for methods in schema.get("paths", {}).values():
            for method, operation in methods.items():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                errors = dict(ERROR_RESPONSES)
                if operation.get("security"):
                    errors |= AUTH_RESPONSES
                if method in ("post", "put", "patch") and "requestBody" in operation:
                    errors |= WRITE_RESPONSES
                for status, info in errors.items():
                    responses.setdefault(
                        str(status),
                        info
                        | {
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/ErrorBody"}
                                }
                            }
                        },
                    )
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


class BodyLimit:
    """Refuses request bodies over ``max_bytes`` with 413 before reading them whole: at
    once when Content-Length says so, else as soon as the streamed body passes it.
    Requests ``raw`` accepts (artifact uploads, streamed to the store) get ``raw_max_bytes``."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        *,
        raw: Callable[[Scope], bool] | None = None,
        raw_max_bytes: int | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.raw = raw
        self.raw_max_bytes = raw_max_bytes or max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = self.raw is not None and self.raw(scope)
        limit, setting = (
            (self.raw_max_bytes, "HUB_API_MAX_ARTIFACT_BYTES")
            if raw
            else (self.max_bytes, "HUB_API_MAX_BODY_BYTES")
        )
        message = f"request body over {limit} bytes ({setting})"
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            response = error_response(
                "RequestTooLarge", message, None, 413, {"Connection": "close"}
            )
            await response(scope, receive, send)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            received = await receive()
            if received["type"] == "http.request":
                seen += len(received.get("body", b""))
                if seen > limit:  # answered 413 by the app's error handler
                    raise HTTPException(413, message, {"Connection": "close"})
            return received

        await self.app(scope, limited_receive, send)
