"""``hub.checkpoints`` in remote mode: the direct client's events, with reads (and the
deletion of runs, which reads first) over HTTP."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from hub.checkpoints.client import (
    CheckpointsClient,
    Serialized,
    StoredCheckpoint,
    StoredWrite,
)
from hub.infra.ports import TopicPartition
from hub.remote.context import RemoteContext

__all__ = ["RemoteCheckpoints"]

PAGE = 100


def _value(found: dict[str, str]) -> Serialized:
    return Serialized(found["type"], base64.b64decode(found["data"]))


def _checkpoint(found: dict[str, Any]) -> StoredCheckpoint:
    return StoredCheckpoint(
        thread_id=found["thread_id"],
        checkpoint_ns=found["checkpoint_ns"],
        checkpoint_id=found["checkpoint_id"],
        parent_checkpoint_id=found["parent_checkpoint_id"],
        checkpoint=_value(found["checkpoint"]),
        metadata=_value(found["metadata"]),
        metadata_json=found["metadata_json"],
        values={ch: _value(v) for ch, v in found["values"].items()},
        writes=[
            StoredWrite(w["task_id"], w["task_path"], w["idx"], w["channel"], _value(w["value"]))
            for w in found["writes"]
        ],
    )


class RemoteCheckpoints(CheckpointsClient):
    """Framework checkpoints over HTTP."""

    def __init__(self, ctx: RemoteContext) -> None:
        super().__init__(ctx)
        self._api = ctx.api
        self._outbox = ctx.outbox

    async def changed_since(
        self, thread_id: str, marks: Mapping[TopicPartition, int]
    ) -> bool | None:
        """Not known over HTTP: the caller reads the thread back."""
        return None

    async def get(
        self, thread_id: str, *, checkpoint_ns: str = "", checkpoint_id: str | None = None
    ) -> StoredCheckpoint | None:
        async for found in self.list(
            thread_id, checkpoint_ns=checkpoint_ns, checkpoint_id=checkpoint_id, limit=1
        ):
            return found
        return None

    async def list(
        self,
        thread_id: str | None,
        *,
        checkpoint_ns: str | None = None,
        checkpoint_id: str | None = None,
        before: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[StoredCheckpoint]:
        if limit is not None and limit <= 0:
            return
        await self._outbox.flush()
        params = {
            "thread_id": thread_id,
            "checkpoint_ns": checkpoint_ns,
            "checkpoint_id": checkpoint_id,
            "before": before,
            "metadata": json.dumps(dict(metadata)) if metadata else None,
        }
        asked = {k: v for k, v in params.items() if v is not None}
        left, offset = limit, 0
        while True:
            page = PAGE if left is None else min(PAGE, left)
            found = await self._api.get(
                "/v1/checkpoints", {**asked, "limit": page, "offset": offset}
            )
            rows = [_checkpoint(c) for c in found["checkpoints"]]
            for row in rows:
                yield row
            offset += len(rows)
            if left is not None:
                left -= len(rows)
            if len(rows) < page or left == 0:
                return

    async def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        runs = [str(r) for r in run_ids]
        if runs:
            await self._outbox.flush()
            await self._api.call("POST", "/v1/checkpoints/delete-for-runs", json={"run_ids": runs})
