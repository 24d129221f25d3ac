"""Property: any sequence of appends, forks, edits, redactions, renames and archives
leaves the ``sessions`` projection equal to a plain in-memory model of threads.

The model keeps each thread as a list of shared message objects: a fork copies the list
(the objects stay shared), an edit copies up to the message and adds a new one, and a
redaction changes the shared object, so every thread showing it sees the change.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub import Hub
from hub.settings import HubSettings

pytestmark = pytest.mark.anyio

_example = itertools.count()


@dataclass
class MsgModel:
    role: str
    text: str
    redacted: bool = False
    message_id: UUID | None = None


@dataclass
class ThreadModel:
    thread_id: str
    messages: list[MsgModel]
    forked_from: str | None = None
    title: str | None = None
    archived: bool = False
    children: list[str] = field(default_factory=list)


# An operation is a tuple; indexes are taken modulo what exists when it runs.
ops = st.lists(
    st.one_of(
        st.tuples(st.just("start"), st.text(min_size=1, max_size=8, alphabet="abcdef ")),
        st.tuples(
            st.just("append"),
            st.integers(0, 50),
            st.sampled_from(["user", "assistant"]),
            st.text(max_size=12, alphabet="ghijklm xyz"),
        ),
        st.tuples(st.just("fork"), st.integers(0, 50), st.one_of(st.none(), st.integers(0, 50))),
        st.tuples(
            st.just("edit"),
            st.integers(0, 50),
            st.integers(0, 50),
            st.text(max_size=12, alphabet="nopq"),
        ),
        st.tuples(st.just("redact"), st.integers(0, 50), st.integers(0, 50)),
        st.tuples(
            st.just("rename"), st.integers(0, 50), st.text(min_size=1, max_size=8, alphabet="rstu")
        ),
        st.tuples(st.just("archive"), st.integers(0, 50), st.booleans()),
    ),
    min_size=1,
    max_size=25,
)


@pytest.fixture
async def hub(hub_settings: HubSettings, tmp_path: Path) -> AsyncIterator[Hub]:
    settings = hub_settings.model_copy(update={"run_projectors": "always"})
    async with Hub.connect(settings) as h:
        yield h


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=ops)
async def test_projection_matches_the_model(hub: Hub, operations: list[tuple[object, ...]]) -> None:
    s = hub.sessions
    user = f"user-{next(_example)}"  # each example only looks at its own threads
    model: dict[str, ThreadModel] = {}
    order: list[str] = []

    async def start(title: str) -> None:
        thread = await s.start_thread(agent_id="prop", user_id=user, title=title)
        model[thread.thread_id] = ThreadModel(thread.thread_id, [], title=title)
        order.append(thread.thread_id)

    await start("first")
    for op in operations:
        kind = op[0]
        if kind == "start":
            await start(str(op[1]))
            continue
        tid = order[int(op[1]) % len(order)]  # type: ignore[call-overload]
        m = model[tid]
        if kind == "append":
            role, text = str(op[2]), str(op[3])
            mid = await s.append(tid, role, text)
            m.messages.append(MsgModel(role, text, message_id=mid))
        elif kind == "fork":
            at = op[2]
            if at is None or not m.messages:
                fork = await s.fork(tid)
                visible = list(m.messages)
            else:
                i = int(at) % len(m.messages)  # type: ignore[call-overload]
                fork = await s.fork(tid, m.messages[i].message_id)
                visible = m.messages[: i + 1]
            model[fork.thread_id] = ThreadModel(fork.thread_id, visible, tid, m.title)
            m.children.append(fork.thread_id)
            order.append(fork.thread_id)
        elif kind == "edit" and m.messages:
            i = int(op[2]) % len(m.messages)  # type: ignore[call-overload]
            target = m.messages[i]
            fork = await s.edit(tid, target.message_id, str(op[3]))
            new = (await fork.messages())[-1]
            visible = [
                *m.messages[:i],
                MsgModel(target.role, str(op[3]), message_id=new.message_id),
            ]
            model[fork.thread_id] = ThreadModel(fork.thread_id, visible, tid, m.title)
            m.children.append(fork.thread_id)
            order.append(fork.thread_id)
        elif kind == "redact" and m.messages:
            i = int(op[2]) % len(m.messages)  # type: ignore[call-overload]
            await s.redact(tid, m.messages[i].message_id, reason="test", replacement="[x]")
            m.messages[i].text, m.messages[i].redacted = "[x]", True
        elif kind == "rename":
            await s.rename(tid, str(op[2]))
            m.title = str(op[2])
        elif kind == "archive":
            if op[2]:
                await s.archive(tid)
            else:
                await s.unarchive(tid)
            m.archived = bool(op[2])

    for tid, m in model.items():
        got = await s.messages(tid, limit=1000)
        assert [(x.role, x.text, x.redacted) for x in got] == [
            (x.role, x.text, x.redacted) for x in m.messages
        ], tid
        assert [x.seq for x in got] == list(range(1, len(got) + 1))
        info = await s.get(tid)
        assert info is not None
        assert (info.title, info.archived, info.forked_from, info.message_count) == (
            m.title,
            m.archived,
            m.forked_from,
            len(m.messages),
        )
        stats = await s.stats(tid)
        assert stats.fork_count == len(m.children)
    archived = {t.thread_id for t in (await s.list_archived(user, limit=1000)).threads}
    assert archived == {tid for tid, m in model.items() if m.archived}
    listed = {t.thread_id for t in (await s.list(user_id=user, archived=None, limit=1000)).threads}
    assert listed == set(model)
