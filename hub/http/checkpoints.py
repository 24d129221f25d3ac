"""HTTP routes of framework checkpoints (``/v1/checkpoints``), what remote mode reads
LangGraph's checkpoints through: list (one thread's, or every thread's) and delete the
checkpoints of runs. Values travel base64-encoded with their serializer's type tag."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Query, Response
from pydantic import BaseModel, ConfigDict

from hub.http.params import json_object

if TYPE_CHECKING:
    from hub.checkpoints.client import Serialized, StoredCheckpoint
    from hub.client import HubScope
    from hub.http.auth import Access

__all__ = ["add_checkpoint_routes", "checkpoint_json"]

MAX_LIMIT = 1000
MAX_OFFSET = 10_000_000


class DeleteRuns(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_ids: list[str]


def _value(value: Serialized) -> dict[str, str]:
    return {"type": value.type, "data": base64.b64encode(value.data).decode()}


def checkpoint_json(found: StoredCheckpoint) -> dict[str, Any]:
    """A stored checkpoint as JSON (bytes as base64)."""
    return {
        "thread_id": found.thread_id,
        "checkpoint_ns": found.checkpoint_ns,
        "checkpoint_id": found.checkpoint_id,
        "parent_checkpoint_id": found.parent_checkpoint_id,
        "checkpoint": _value(found.checkpoint),
        "metadata": _value(found.metadata),
        "metadata_json": found.metadata_json,
        "values": {ch: _value(v) for ch, v in found.values.items()},
        "writes": [
            {
                "task_id": w.task_id,
                "task_path": w.task_path,
                "idx": w.idx,
                "channel": w.channel,
                "value": _value(w.value),
            }
            for w in found.writes
        ],
    }


def add_checkpoint_routes(app: FastAPI, access: Access) -> None:
    reader = Depends(access.reader)
    writer = Depends(access.writer)

    @app.get("/v1/checkpoints")
    async def list_checkpoints(
        thread_id: str | None = None,
        checkpoint_ns: str | None = None,
        checkpoint_id: str | None = None,
        before: str | None = None,
        metadata: str | None = Query(None, description="A JSON object the metadata matches"),
        limit: int = Query(100, ge=1, le=MAX_LIMIT),
        offset: int = Query(0, ge=0, le=MAX_OFFSET, description="Skip this many (next pages)"),
        hub: HubScope = reader,
    ) -> dict[str, list[dict[str, Any]]]:
        """Checkpoints newest first: of one thread (every thread if none is given, thread
        by thread), one namespace, older than ``before``, whose metadata has each key of
        ``metadata``."""
        found = hub.checkpoints.list(
            thread_id,
            checkpoint_ns=checkpoint_ns,
            checkpoint_id=checkpoint_id,
            before=before,
            metadata=json_object(metadata, "metadata"),
            limit=offset + limit,
        )
        page: list[dict[str, Any]] = []
        seen = 0
        async for checkpoint in found:  # streamed: the skipped ones are not kept
            seen += 1
            if seen > offset:
                page.append(checkpoint_json(checkpoint))
        return {"checkpoints": page}

    @app.post("/v1/checkpoints/delete-for-runs", status_code=204)
    async def delete_for_runs(body: DeleteRuns, hub: HubScope = writer) -> Response:
        """Delete the checkpoints (and writes) of these runs, in every thread."""
        await hub.checkpoints.delete_for_runs(body.run_ids)
        return Response(status_code=204)
