"""Determinism: for hypothesis-generated streams (threads with forks, edits, redactions;
runs with metrics; registry changes; prompt versions; checkpoints with copies, prunes
and deletions; users' facts and store items), a rebuild from scratch gives every
read model table the same checksum as the live one, on each log."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub import Hub
from hub.checkpoints.client import Serialized
from hub.ops.verify import verify
from hub.settings import HubSettings
from tests.integration.test_sessions_property import ops as session_ops

pytestmark = pytest.mark.anyio

_example = itertools.count()

run_ops = st.lists(
    st.tuples(
        st.sampled_from(["alpha", "beta"]),
        st.lists(st.floats(-1e6, 1e6, allow_nan=False), max_size=6),
        st.sampled_from(["success", "failed", "cancelled"]),
    ),
    max_size=4,
)
registry_ops = st.lists(
    st.tuples(st.sampled_from(["register", "retire"]), st.sampled_from(["a1", "a2", "a3"])),
    max_size=6,
)
prompt_ops = st.lists(st.tuples(st.sampled_from(["v1", "v2", "v3"]), st.booleans()), max_size=4)
checkpoint_ops = st.lists(
    st.tuples(
        st.sampled_from(["put", "put", "writes", "copy", "prune", "delete", "runs"]),
        st.integers(0, 3),
        st.integers(0, 3),
    ),
    max_size=12,
)


@pytest.fixture
async def hub(hub_settings: HubSettings) -> AsyncIterator[Hub]:
    settings_ = hub_settings.model_copy(update={"run_projectors": "always"})
    async with Hub.connect(settings_) as h:
        yield h


memory_ops = st.lists(
    st.tuples(
        st.sampled_from(["set", "set", "delete", "erase", "item"]),
        st.sampled_from(["u1", "u2"]),
        st.integers(0, 2),
    ),
    max_size=10,
)


async def apply_memory(hub: Hub, operations: list[tuple[str, str, int]], n: int) -> None:
    """Users' facts set, deleted and erased, and store items with embeddings."""
    for i, (op, user, k) in enumerate(operations):
        user = f"{user}-{n}"
        if op == "set":
            await hub.memory.set(user, f"k{k}", {"i": i}, category="c" if k else None)
        elif op == "delete":
            await hub.memory.delete(user, f"k{k}")
        elif op == "erase":
            await hub.memory.erase(user)
        else:
            vectors = {"text": [float(i), float(k), 1.0]}
            await hub.memory.items.put(("docs", user), f"d{k}", {"i": i}, vectors=vectors)


async def apply_checkpoints(hub: Hub, operations: list[tuple[str, int, int]], n: int) -> None:
    """Checkpoints of four threads: saved, written to, copied (copies of copies too),
    pruned, deleted, and runs deleted, interleaved."""
    c = hub.checkpoints
    latest: dict[int, str] = {}
    for i, (op, a, b) in enumerate(operations):
        thread = f"cp-{n}-{a}"
        if op == "put":
            value = Serialized("json", f"{i}".encode())
            await c.save(
                thread,
                checkpoint_id=f"{i:04}",
                parent_checkpoint_id=latest.get(a),
                checkpoint=value,
                metadata=value,
                metadata_json={"step": i},
                run_id=f"run-{b}",
                values={"ch": (str(i), value)},
            )
            latest[a] = f"{i:04}"
        elif op == "writes" and a in latest:
            write = (b - 2, "ch", Serialized("json", b"1"))
            await c.save_writes(thread, checkpoint_id=latest[a], task_id=f"t{b}", writes=[write])
        elif op == "copy":
            await c.copy_thread(thread, f"cp-{n}-{b}")
        elif op == "prune":
            await c.prune([thread], strategy="delete" if b == 0 else "keep_latest")
        elif op == "delete":
            await c.delete_thread(thread)
        elif op == "runs":
            await c.delete_for_runs([f"run-{b}"])


async def apply_sessions(hub: Hub, operations: list[tuple[object, ...]], user: str) -> None:
    s = hub.sessions
    threads = [await s.start_thread(agent_id="det", user_id=user, title="first")]
    for op in operations:
        if op[0] == "start":
            threads.append(await s.start_thread(agent_id="det", user_id=user, title=str(op[1])))
            continue
        t = threads[int(op[1]) % len(threads)]  # type: ignore[call-overload]
        messages = await t.messages(limit=1000)
        if op[0] == "append":
            await t.append(str(op[2]), str(op[3]))
        elif op[0] == "fork":
            at = None if op[2] is None or not messages else messages[int(op[2]) % len(messages)]  # type: ignore[call-overload]
            threads.append(await t.fork(at.message_id if at else None))
        elif op[0] == "edit" and messages:
            target = messages[int(op[2]) % len(messages)]  # type: ignore[call-overload]
            threads.append(await t.edit(target.message_id, str(op[3])))
        elif op[0] == "redact" and messages:
            target = messages[int(op[2]) % len(messages)]  # type: ignore[call-overload]
            await s.redact(t.thread_id, target.message_id, reason="r", replacement="[x]")
        elif op[0] == "rename":
            await s.rename(t.thread_id, str(op[2]))
        elif op[0] == "archive":
            await (s.archive if op[2] else s.unarchive)(t.thread_id)


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    sessions=session_ops,
    runs=run_ops,
    registry=registry_ops,
    prompts=prompt_ops,
    checkpoints=checkpoint_ops,
    memory=memory_ops,
)
async def test_a_rebuild_from_scratch_matches_the_live_read_models(
    hub: Hub,
    sessions: list[tuple[object, ...]],
    runs: list[tuple[str, list[float], str]],
    registry: list[tuple[str, str]],
    prompts: list[tuple[str, bool]],
    checkpoints: list[tuple[str, int, int]],
    memory: list[tuple[str, str, int]],
) -> None:
    n = next(_example)
    await apply_sessions(hub, sessions, f"user-{n}")
    for agent, values, status in runs:
        run = await hub.runs.start(agent, input={"n": n}, provenance={"seed": n}).begin()
        for i, value in enumerate(values):
            await run.metric(f"m{i % 2}", value, tags={"i": str(i)})
        await run.finish(status, error=None if status == "success" else "x")
    for kind, agent in registry:
        if kind == "register":
            await hub.registry.register(agent, description=f"{agent} {n}", tags=[f"t{n}"])
        else:
            await hub.registry.retire(agent, reason="gone")
    for version, current in prompts:
        content = f"prompt {version} of {n}"
        if await hub.prompts.get_version(f"p{n}", version) is None:
            await hub.prompts.set(f"p{n}", content, version, make_current=current)
    await apply_checkpoints(hub, checkpoints, n)
    await apply_memory(hub, memory, n)
    await hub.wait_for_projections()

    for name in ("sessions", "runs", "registry", "prompts", "checkpoints", "memory"):
        checks = await verify(hub.runtime, name)
        assert checks, name
        different = [c.table for c in checks if not c.same]
        assert different == [], f"{name}: {different} differ after a rebuild"
