"""The remote SDK (issue 12): with HUB_URL and HUB_API_KEY the same Python API works over
HTTP with the same errors, and a key of tenant B reaches nothing of tenant A through
any public method (each is listed below; a method added without an entry fails)."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hub import Hub
from hub.access.keys import KeysClient
from hub.agents.client import RegistryClient
from hub.checkpoints.client import CHECKPOINTS, CheckpointsClient, Serialized
from hub.infra.ports import TopicPartition
from hub.integrations.langgraph import HubStore
from hub.memory.client import MemoryClient
from hub.memory.items import ItemsClient
from hub.prompts.client import PromptsClient
from hub.runs.client import RunsClient
from hub.runs.run import Run
from hub.sessions.client import SessionsClient
from hub.settings import HubSettings, load_settings
from schemas.errors import ForbiddenError, HubError, NotFoundError
from schemas.events import AgentRegistered
from tests.support.api import key_of, served_api

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("backend", ["postgres"])]

LATER = datetime(2100, 1, 1, tzinfo=UTC)


@dataclass
class Remote:
    server: Hub
    url: str
    home: Path

    def client(self, token: str, name: str) -> Hub:
        return Hub(load_settings(url=self.url, api_key=token, home=self.home / name))


@pytest.fixture
async def remote(hub_settings: HubSettings, tmp_path: Path) -> AsyncIterator[Remote]:
    settings = hub_settings.model_copy(update={"run_projectors": "always", "api_rate_limit": 0})
    async with Hub.connect(settings) as server, served_api(server) as url:
        yield Remote(server, url, tmp_path)


async def _seed(hub: Hub) -> dict[str, Any]:
    await hub.registry.register("agent-a", description="acme's agent", tags=["t"])
    thread = await hub.sessions.start_thread(agent_id="agent-a", thread_id="thread-a")
    first = await thread.append("user", "acme secret hello")
    await thread.append("assistant", "hi")
    await hub.sessions.save_agent_state("thread-a", "agent-a", {"k": 1})
    run = hub.runs.start("agent-a", run_id="run-a")
    await run.begin()
    await run.metric("acme_metric", 1.5)
    artifact = await run.store_artifact("a.txt", b"acme bytes")
    await run.flush()
    await hub.prompts.set("prompt-a", "acme prompt", "v1")
    await _checkpoint(hub, "thread-a", "c1")
    await hub.memory.set("user-a", "city", "acme city")
    return {"message_id": first, "artifact_id": artifact.artifact_id}


A = "thread-a"
BYTES = Serialized("json", b"1")

# What a call on tenant A's data does with tenant B's key: "404" raises NotFoundError,
# "none" answers None or nothing, "own" acts in B's own namespace, "local" needs no
# server data, "direct" is for direct mode only (a HubError says so).
Call = Callable[[Hub, dict[str, Any]], Awaitable[Any]]
CALLS: dict[tuple[str, str], tuple[str, Call]] = {
    ("sessions", "start_thread"): (
        "own",
        lambda h, i: h.sessions.start_thread(agent_id="agent-a", thread_id="thread-a"),
    ),
    ("sessions", "append"): ("404", lambda h, i: h.sessions.append("thread-a", "user", "x")),
    ("sessions", "append_many"): (
        "404",
        lambda h, i: h.sessions.append_many("thread-a", [{"role": "user", "content": "x"}]),
    ),
    ("sessions", "fork"): ("404", lambda h, i: h.sessions.fork("thread-a")),
    ("sessions", "branch"): ("404", lambda h, i: h.sessions.branch("thread-a", i["message_id"])),
    ("sessions", "edit"): ("404", lambda h, i: h.sessions.edit("thread-a", i["message_id"], "x")),
    ("sessions", "rename"): ("404", lambda h, i: h.sessions.rename("thread-a", "x")),
    ("sessions", "archive"): ("404", lambda h, i: h.sessions.archive("thread-a")),
    ("sessions", "unarchive"): ("404", lambda h, i: h.sessions.unarchive("thread-a")),
    ("sessions", "save_agent_state"): (
        "404",
        lambda h, i: h.sessions.save_agent_state("thread-a", "x", {}),
    ),
    ("sessions", "redact"): ("404", lambda h, i: h.sessions.redact("thread-a", i["message_id"])),
    ("sessions", "message"): ("404", lambda h, i: h.sessions.message("thread-a", i["message_id"])),
    ("sessions", "get"): ("none", lambda h, i: h.sessions.get("thread-a")),
    ("sessions", "list"): ("none", lambda h, i: h.sessions.list()),
    ("sessions", "list_archived"): ("none", lambda h, i: h.sessions.list_archived()),
    ("sessions", "messages"): ("404", lambda h, i: h.sessions.messages("thread-a")),
    ("sessions", "stats"): ("404", lambda h, i: h.sessions.stats("thread-a")),
    ("sessions", "tree"): ("404", lambda h, i: h.sessions.tree("thread-a")),
    ("sessions", "search"): ("none", lambda h, i: h.sessions.search("acme")),
    ("sessions", "agent_state"): ("404", lambda h, i: h.sessions.agent_state("thread-a")),
    ("sessions", "as_of"): ("404", lambda h, i: h.sessions.as_of("thread-a", LATER)),
    ("sessions", "last_n"): ("404", lambda h, i: h.sessions.last_n("thread-a", 5)),
    ("sessions", "first_last"): ("404", lambda h, i: h.sessions.first_last("thread-a", 1, 1)),
    ("sessions", "token_window"): ("404", lambda h, i: h.sessions.token_window("thread-a", 100)),
    ("runs", "start"): ("own", lambda h, i: _own_run(h)),
    ("runs", "attach"): ("404", lambda h, i: h.runs.attach("run-a")),
    ("runs", "get"): ("none", lambda h, i: h.runs.get("run-a")),
    ("runs", "artifact"): ("404", lambda h, i: h.runs.artifact(i["artifact_id"])),
    ("runs", "list"): ("none", lambda h, i: h.runs.list()),
    ("runs", "aggregate"): ("none", lambda h, i: h.runs.aggregate("acme_metric")),
    ("registry", "register"): ("own", lambda h, i: h.registry.register("agent-a", description="b")),
    ("registry", "retire"): ("none", lambda h, i: h.registry.retire("agent-z")),
    ("registry", "add_tags"): ("404", lambda h, i: h.registry.add_tags("agent-z", "x")),
    ("registry", "remove_tags"): ("404", lambda h, i: h.registry.remove_tags("agent-z", "t")),
    ("registry", "record_run"): ("own", lambda h, i: h.registry.record_run("agent-b", "run-a")),
    ("registry", "as_of"): ("none", lambda h, i: h.registry.as_of("agent-z", LATER)),
    ("registry", "get"): ("none", lambda h, i: h.registry.get("agent-z")),
    ("registry", "list"): ("none", lambda h, i: h.registry.list(tag="t")),
    ("prompts", "ensure_exists"): (
        "own",
        lambda h, i: h.prompts.ensure_exists("prompt-a", "b", "v1"),
    ),
    ("prompts", "set"): ("own", lambda h, i: h.prompts.set("prompt-b", "b", "v1")),
    ("prompts", "move_label"): ("404", lambda h, i: h.prompts.move_label("prompt-z", "prod", "v1")),
    ("prompts", "rollback"): ("404", lambda h, i: h.prompts.rollback("prompt-z", "v1")),
    ("prompts", "get"): ("none", lambda h, i: h.prompts.get("prompt-z")),
    ("prompts", "get_version"): ("none", lambda h, i: h.prompts.get_version("prompt-z", "v1")),
    ("prompts", "list_versions"): ("none", lambda h, i: h.prompts.list_versions("prompt-z")),
    ("prompts", "labels_at"): ("none", lambda h, i: h.prompts.labels_at("prompt-z", LATER)),
    ("prompts", "as_of"): ("none", lambda h, i: h.prompts.as_of("prompt-z", LATER)),
    ("prompts", "diff"): ("404", lambda h, i: h.prompts.diff("prompt-z", "v1", "v1")),
    ("prompts", "refresh"): ("404", lambda h, i: h.prompts.refresh("prompt-z")),
    ("prompts", "refresh_soon"): ("local", lambda h, i: _sync(h.prompts.refresh_soon, "prompt-z")),
    ("prompts", "get_current"): ("404", lambda h, i: h.prompts.get_current("prompt-z")),
    ("keys", "create"): ("own", lambda h, i: h.keys.create(tenant=h.context.tenant, role="reader")),
    ("keys", "get"): ("none", lambda h, i: h.keys.get(i["key_id"])),
    ("keys", "list"): ("none", lambda h, i: _foreign_keys(h, i)),
    ("keys", "revoke"): ("404", lambda h, i: h.keys.revoke(i["key_id"])),
    ("keys", "authenticate"): ("direct", lambda h, i: h.keys.authenticate("x")),
    ("keys", "local_admin"): ("direct", lambda h, i: h.keys.local_admin(Path("."), tenant="x")),
    ("keys", "any_active"): ("direct", lambda h, i: h.keys.any_active()),
    ("hub", "emit"): (
        "own",
        lambda h, i: h.emit(
            AgentRegistered(tenant_id=h.context.tenant, actor=h.context.actor, agent_id="agent-a")
        ),
    ),
    ("hub", "sync"): ("local", lambda h, i: h.sync()),
    ("hub", "flush"): ("local", lambda h, i: h.flush()),
    ("hub", "wait_for_projections"): ("local", lambda h, i: h.wait_for_projections()),
    ("hub", "catch_up"): ("local", lambda h, i: h.catch_up()),
    ("hub", "scope"): ("direct", lambda h, i: _sync(h.scope, None)),
    ("hub", "stop_projectors"): ("local", lambda h, i: _sync(h.stop_projectors)),
    ("hub", "child_env"): ("local", lambda h, i: _sync(h.child_env)),
    # checkpoints: writes are events (B's own tenant); reads over HTTP
    ("checkpoints", "save"): ("own", lambda h, i: _checkpoint(h, "thread-a", "c9")),
    ("checkpoints", "save_writes"): (
        "own",
        lambda h, i: h.checkpoints.save_writes(
            "thread-a", checkpoint_id="c1", task_id="t", writes=[(0, "ch", BYTES)]
        ),
    ),
    ("checkpoints", "copy_thread"): ("own", lambda h, i: h.checkpoints.copy_thread(A, "b")),
    ("checkpoints", "prune"): ("own", lambda h, i: h.checkpoints.prune([A])),
    ("checkpoints", "delete_thread"): ("own", lambda h, i: h.checkpoints.delete_thread(A)),
    ("checkpoints", "delete_for_runs"): ("own", lambda h, i: h.checkpoints.delete_for_runs([A])),
    ("checkpoints", "get"): ("none", lambda h, i: h.checkpoints.get("thread-a")),
    ("checkpoints", "list"): ("none", lambda h, i: _drain(h.checkpoints.list(None))),
    ("checkpoints", "changed_since"): (
        "none",
        lambda h, i: h.checkpoints.changed_since("thread-a", {TopicPartition(CHECKPOINTS, 0): 0}),
    ),
    ("items", "get"): ("none", lambda h, i: h.memory.items.get(("memories", "user-a"), "city")),
    ("items", "search"): ("none", lambda h, i: h.memory.items.search(("memories",))),
    ("items", "namespaces"): ("none", lambda h, i: h.memory.items.namespaces()),
    ("items", "history"): (
        "none",
        lambda h, i: h.memory.items.history(("memories", "user-a"), "city"),
    ),
    ("items", "as_of"): ("none", lambda h, i: h.memory.items.as_of(("memories", "user-a"), LATER)),
    ("items", "put"): ("own", lambda h, i: h.memory.items.put(("memories", "user-a"), "city", {})),
    ("items", "delete"): ("own", lambda h, i: h.memory.items.delete(("memories", "user-a"), "x")),
    ("items", "touch"): (
        "own",
        lambda h, i: h.memory.items.touch(("memories", "user-a"), "city", LATER),
    ),
    ("items", "erase"): ("own", lambda h, i: h.memory.items.erase(("memories", "user-a"))),
    ("memory", "get"): ("none", lambda h, i: h.memory.get("user-a", "city")),
    ("memory", "get_all"): ("none", lambda h, i: h.memory.get_all("user-a")),
    ("memory", "history"): ("none", lambda h, i: h.memory.history("user-a", "city")),
    ("memory", "as_of"): ("none", lambda h, i: h.memory.as_of("user-a", LATER)),
    ("memory", "format_for_prompt"): ("local", lambda h, i: _sync(h.memory.format_for_prompt, [])),
    ("memory", "set"): ("own", lambda h, i: h.memory.set("user-a", "city", "b's")),
    ("memory", "delete"): ("own", lambda h, i: h.memory.delete("user-a", "city")),
    ("memory", "erase"): ("own", lambda h, i: h.memory.erase("user-a")),
    ("memory", "extract_and_save"): (
        "own",
        lambda h, i: h.memory.extract_and_save("user-a", [], extractor=lambda m: {"k": "v"}),
    ),
}


async def _checkpoint(hub: Hub, thread: str, checkpoint_id: str) -> None:
    await hub.checkpoints.save(
        thread, checkpoint_id=checkpoint_id, checkpoint=BYTES, metadata=BYTES, run_id="r"
    )


async def _drain(items: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in items]


RUN_METHODS = {
    "begin",
    "finish",
    "metric",
    "set_stats",
    "set_timing",
    "record_result",
    "flush",
    "store_artifact",
    "attached",
}
CLIENTS = {
    "sessions": SessionsClient,
    "runs": RunsClient,
    "registry": RegistryClient,
    "prompts": PromptsClient,
    "keys": KeysClient,
    "hub": Hub,
    "checkpoints": CheckpointsClient,
    "memory": MemoryClient,
    "items": ItemsClient,
}


async def _sync(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


async def _own_run(hub: Hub) -> Any:
    """Every method of a run, on B's own run named like A's."""

    class Metrics:
        accumulated_usage = {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7}
        accumulated_metrics = {"latencyMs": 12}
        cycle_count = 1

    class Result:  # shaped as a Strands AgentResult
        metrics = Metrics()

    async with hub.runs.start("agent-b", run_id="run-a") as run:
        await run.metric("m", 1.0)
        await run.set_stats("s", 2.0)
        await run.set_timing("t", 0.5)
        await run.record_result(Result())
        await run.flush()
        await run.store_artifact("b.txt", b"b bytes")
    return run


async def _foreign_keys(hub: Hub, ids: dict[str, Any]) -> list[Any]:
    return [k for k in await hub.keys.list(include_revoked=True) if k.key_id == ids["key_id"]]


def public_methods(cls: type) -> set[str]:
    """The public methods of one of our classes (``start``/``stop`` are the lifecycle,
    except for ``RunsClient.start``, which starts a run)."""
    lifecycle = set() if cls is RunsClient else {"start", "stop", "connect"}
    return {
        name
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_")
        and (inspect.isfunction(member) or inspect.ismethod(member))
        and getattr(member, "__module__", "").startswith("hub.")
        and name not in lifecycle
    }


def _empty(value: Any) -> bool:
    if value is None or value is False or value == [] or value == {}:
        return True
    threads = getattr(value, "threads", None)
    return threads == []


async def test_every_public_method_is_scoped_to_the_keys_tenant(remote: Remote) -> None:
    for group, cls in CLIENTS.items():
        missing = public_methods(cls) - {name for g, name in CALLS if g == group}
        assert not missing, f"{group} methods with no entry in CALLS: {sorted(missing)}"
    assert public_methods(Run) <= RUN_METHODS, public_methods(Run) - RUN_METHODS

    a_token = await key_of(remote.server, "acme", "admin")
    async with remote.client(a_token, "a") as a:
        ids = await _seed(a)
        ids["key_id"] = (await a.keys.create(tenant="acme", role="reader")).key.key_id
    b_token = await key_of(remote.server, "globex", "admin")
    async with remote.client(b_token, "b") as b:
        assert b.remote and b.context.tenant == "globex"
        # creations in B's own namespace last: they reuse A's names
        for (group, name), (expected, call) in sorted(
            CALLS.items(), key=lambda c: c[1][0] == "own"
        ):
            where = f"{group}.{name}"
            if expected == "404":
                with pytest.raises(NotFoundError):
                    await call(b, ids)
            elif expected == "direct":
                with pytest.raises(HubError):
                    await call(b, ids)
            elif expected == "none":
                assert _empty(await call(b, ids)), where
            else:
                await call(b, ids)
        with pytest.raises(ForbiddenError):  # B cannot write as A, even by building events
            await b.emit(AgentRegistered(tenant_id="acme", actor=b.context.actor, agent_id="x"))

    async with remote.client(a_token, "a") as a:  # A's data is as A left it
        agent = await a.registry.get("agent-a")
        assert agent is not None and agent.description == "acme's agent" and agent.tags == ("t",)
        messages = await a.sessions.messages("thread-a")
        assert [m.text for m in messages] == ["acme secret hello", "hi"]
        assert (await a.sessions.get("thread-a")).title is None  # type: ignore[union-attr]
        run = await a.runs.get("run-a")
        assert run is not None and run.run.status == "running" and len(run.metrics) == 1
        assert [v.version for v in await a.prompts.list_versions("prompt-a")] == ["v1"]
        assert (await a.prompts.get_version("prompt-a", "v1")).content == "acme prompt"  # type: ignore[union-attr]
        assert (await a.keys.get(ids["key_id"])).revoked_at is None  # type: ignore[union-attr]
        assert (await a.memory.get("user-a", "city")).value == "acme city"  # type: ignore[union-attr]
        assert [v.value for v in await a.memory.history("user-a", "city")] == ["acme city"]
        mine = await a.checkpoints.get("thread-a")
        assert mine is not None and mine.checkpoint.data == b"1" and mine.writes == []
        assert [c.checkpoint_id async for c in a.checkpoints.list(None)] == ["c1"]
        store = HubStore(a)  # LangGraph's store, remotely
        await store.aput(("docs",), "d1", {"text": "remote item"}, ttl=5)
        item = await store.aget(("docs",), "d1")
        assert item is not None and item.value == {"text": "remote item"}
        assert [i.key for i in await store.asearch(("docs",), filter={"text": "remote item"})] == [
            "d1"
        ]
        assert ("docs",) in await store.alist_namespaces()
    acme = CheckpointsClient(remote.server.context.scoped("acme", "check"))  # direct
    kept = await acme.get("thread-a")
    assert kept is not None and kept.checkpoint_id == "c1" and kept.writes == []
