"""JSON request bodies a route reads itself (the hot batch writes), with the same
answers FastAPI gives for a body parameter: the same OpenAPI document, and the same
400 naming the first wrong field.

A route that takes ``body: Model`` has FastAPI parse the JSON with the standard library
and validate every item into a model, which the route then takes apart again. For a
batch of 50 plain messages that was a fifth of an API worker's time. :func:`read_json_fast`
parses with orjson and lets the route take plain data as it is; whatever the route does
not recognise is parsed by :func:`read_json` and checked by :func:`validate`, which is
exactly FastAPI's path.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

__all__ = ["json_request_body", "read_json", "read_json_fast", "validate"]

M = TypeVar("M", bound=BaseModel)


def json_request_body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of a route whose body is ``model`` as JSON.

    Its schema and the schemas it refers to ride along under ``$defs``; the app's
    OpenAPI builder moves them to the document's components (``hub.http.errors``)."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "$ref": f"#/components/schemas/{model.__name__}",
                    "$defs": {model.__name__: schema, **defs},
                }
            }
        },
    }


async def read_json_fast(request: Request) -> Any:
    """The request's body as orjson parses it, or ``None`` where orjson refuses it.

    orjson's values are the standard library's for strings, lists, objects, booleans,
    null and integers of up to 64 bits, but not beyond (it reads 2**70 as a float): a
    route may take this only for data of such values, and otherwise :func:`read_json`."""
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return None


async def read_json(request: Request) -> Any:
    """The request's body parsed as ``json.loads`` does, or FastAPI's 400 for it."""
    body = await request.body()
    if not body:
        raise _invalid("missing", ("body",), "Field required", None)
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise _invalid("json_invalid", ("body", exc.pos), "JSON decode error", exc.msg) from None
    except UnicodeDecodeError as exc:  # bytes in no encoding JSON allows
        raise _invalid("json_invalid", ("body", exc.start), "JSON decode error", str(exc)) from None


def _invalid(kind: str, loc: tuple[Any, ...], msg: str, error: str | None) -> Exception:
    detail: dict[str, Any] = {"type": kind, "loc": loc, "msg": msg, "input": None}
    if error is not None:
        detail |= {"input": {}, "ctx": {"error": error}}
    return RequestValidationError([detail])


def validate(model: type[M], data: Any) -> M:
    """``data`` validated as ``model``, or the 400 FastAPI answers for a body parameter."""
    try:
        return model.model_validate(data, from_attributes=True)  # as FastAPI does
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(errors, body=data) from None
