"""Operations from the shell in remote mode (``HUB_URL``): ``replay``, ``rebuild`` and
``verify`` start a job on the hub (``POST /v1/ops/jobs``, an operator's key) and follow
it; ``dlq`` uses ``/v1/dead-letters``. Ctrl-C stops following, not the job."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio

from hub.ops.replay import Progress
from schemas.errors import HubError, InputError

if TYPE_CHECKING:
    from hub.remote.api import HubApi
    from hub.settings import HubSettings

__all__ = ["remote_dlq", "remote_job"]

POLL_S = 2.0


@asynccontextmanager
async def _api(settings: HubSettings) -> AsyncIterator[HubApi]:
    from hub.client import Hub
    from hub.remote.context import RemoteContext

    async with Hub(settings) as hub:
        assert isinstance(hub.context, RemoteContext)
        yield hub.context.api


async def remote_job(settings: HubSettings, spec: dict[str, Any], what: str) -> Any:
    """Run one job on the hub at ``HUB_URL`` and return its result; progress goes to
    stderr. A job that fails raises :class:`HubError` with its error."""
    async with _api(settings) as api:
        job = await api.call("POST", "/v1/ops/jobs", json=spec)
        job_id = job["job_id"]
        print(f"{what}: job {job_id} on {settings.url}", file=sys.stderr, flush=True)
        while job["state"] in ("queued", "running"):
            await anyio.sleep(POLL_S)
            job = await api.get(f"/v1/ops/jobs/{job_id}")
            if job["progress"]:
                line = Progress(**job["progress"]).line(what)
                print(line, file=sys.stderr, flush=True)
    if job["state"] != "succeeded":
        raise HubError(f"{what}: job {job_id} {job['state']}: {job['error']}")
    return job["result"]


async def remote_dlq(settings: HubSettings, args: argparse.Namespace) -> int:
    """``agent-hub dlq list|show|replay`` through the hub's API."""
    async with _api(settings) as api:
        if args.action == "list":
            async for dead in _all_dead_letters(api, args.consumer, pending=False):
                mark = "replayed" if dead["replayed"] else "pending"
                reason = " ".join(str(dead["reason"]).split())
                print(f"{dead['id']}\t{mark}\t{dead['consumer']}\t{dead['event_type']}\t{reason}")
            return 0
        if args.action == "show":
            print(json.dumps(await api.get(f"/v1/dead-letters/{args.id}"), indent=2))
            return 0
        if args.all:
            ids = [d["id"] async for d in _all_dead_letters(api, args.consumer, pending=True)]
        elif args.id:
            ids = [args.id]
        else:
            raise InputError("dlq replay: give a dead-letter id or --all")
        failed = 0
        for dead_id in ids:
            result = await api.call("POST", f"/v1/dead-letters/{dead_id}/replay", json={})
            failed += result["outcome"] == "failed"
            print(f"{result['id']}\t{result['outcome']}\t{result['detail']}".rstrip())
    return 1 if failed else 0


async def _all_dead_letters(
    api: HubApi, consumer: str | None, *, pending: bool
) -> AsyncIterator[dict[str, Any]]:
    cursor = None
    while True:
        params = {
            "consumer": consumer,
            "pending": str(pending).lower(),
            "limit": 1000,
            "cursor": cursor,
        }
        page = await api.get("/v1/dead-letters", params)
        for dead in page["dead_letters"]:
            yield dead
        cursor = page["next_cursor"]
        if cursor is None:
            return
