"""``hub.sessions`` on each log: threads, forks, edits, redaction, stats, tree, search,
time travel, memory windows, bad input, orphans, and the d+1 range scans of a read."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from hub import Hub, InputError, NotFoundError
from hub.infra.ports import TopicPartition
from hub.sessions.models import Message
from hub.settings import HubSettings
from schemas.events import DeadLettered, MessageAppended, Role, TextPart, ThreadForked, Topic
from schemas.ids import uuid7
from tests.conftest import TEST_PARTITIONS
from tests.support.identical import assert_identical

pytestmark = pytest.mark.anyio

SESSIONS = str(Topic.SESSIONS)


@pytest.fixture
async def hub(hub_settings: HubSettings, tmp_path: Path) -> AsyncIterator[Hub]:
    settings = hub_settings.model_copy(
        update={"run_projectors": "always", "archive_url": (tmp_path / "blobs").as_uri()}
    )
    async with Hub.connect(settings) as h:
        yield h


async def texts(thread: Any) -> list[str]:
    return [m.text for m in await thread.messages()]


async def produced(hub: Hub) -> int:
    tps = [TopicPartition(SESSIONS, p) for p in range(TEST_PARTITIONS)]
    return sum((await hub.runtime.log.end_offsets(tps)).values())


async def test_append_fork_branch_edit(hub: Hub) -> None:
    s = hub.sessions
    t = await s.start_thread(agent_id="bot", user_id="ana", title="Trip")
    ids = [await t.append("user" if i % 2 == 0 else "assistant", f"m{i}") for i in range(6)]
    assert await texts(t) == [f"m{i}" for i in range(6)]
    assert [m.seq for m in await t.messages()] == list(range(1, 7))

    head = await t.fork(title="whole")  # at the head
    assert await texts(head) == [f"m{i}" for i in range(6)]
    await head.append("user", "head-1")

    mid = await s.branch(t.thread_id, ids[2], title="from m2")
    await mid.append("user", "mid-1")
    assert await texts(mid) == ["m0", "m1", "m2", "mid-1"]
    assert [m.seq for m in await mid.messages()] == [1, 2, 3, 4]

    # a fork of a fork at a message the grandparent owns points its lineage at the owner
    deep = await mid.fork(ids[1])
    await deep.append("assistant", "deep-1")
    assert await texts(deep) == ["m0", "m1", "deep-1"]
    deep_info = await deep.info()
    assert (deep_info.parent_id, deep_info.forked_from, deep_info.depth) == (
        t.thread_id,
        mid.thread_id,
        1,
    )

    edited = await t.edit(ids[3], "m3 edited")
    assert await texts(edited) == ["m0", "m1", "m2", "m3 edited"]
    first = await t.edit(ids[0], "m0 edited")
    assert await texts(first) == ["m0 edited"]
    assert (await first.messages())[0].role == "user"
    # the original is untouched by all of it
    assert await texts(t) == [f"m{i}" for i in range(6)]

    tree = await t.tree()
    assert tree.thread_id == t.thread_id
    children = {c.thread_id: c for c in tree.children}
    assert set(children) == {head.thread_id, mid.thread_id, edited.thread_id, first.thread_id}
    assert [g.thread_id for g in children[mid.thread_id].children] == [deep.thread_id]
    assert children[mid.thread_id].fork_seq == 3 and children[first.thread_id].fork_seq == 0


async def test_a_threads_later_appends_are_encoded_without_an_event_each(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a thread's first message was built and checked, its later plain text messages
    (one at a time too; with a model name and string metadata, as a framework's mirror
    writes them) are encoded directly; they read back as given, and anything else still
    takes the usual path with its errors."""
    import hub.sessions.client as client

    built: list[str] = []
    real_build = client.build_event  # type: ignore[attr-defined]

    def counting_build(cls: Any, **fields: Any) -> Any:
        built.append(cls.__name__)
        return real_build(cls, **fields)

    monkeypatch.setattr(client, "build_event", counting_build)
    t = await hub.sessions.start_thread(agent_id="bot")
    given = uuid7()
    ids = [await t.append("user", "first")]
    ids += [await t.append("assistant", f"reply {i}") for i in range(3)]
    ids.append(await t.append("tool", "with an id", message_id=given))
    framework = {"langgraph_message_id": "lc-1", "name": "planner \u00e9"}
    ids.append(await t.append("assistant", "a model's", model="m-1", metadata=framework))
    assert built == ["ThreadStarted", "MessageAppended"]
    ids.append(await t.append("user", "with metadata", metadata={"k": 1}))  # the usual path
    with pytest.raises(InputError, match="role"):
        await t.append("robot", "no such role")
    limit = hub.settings.max_message_bytes
    with pytest.raises(InputError, match="HUB_MAX_MESSAGE_BYTES"):
        await t.append("user", "x" * (limit + 1))
    messages = await t.messages()
    assert [m.message_id for m in messages] == ids and ids[4] == given
    assert [(str(m.role), m.text) for m in messages] == [
        ("user", "first"),
        *[("assistant", f"reply {i}") for i in range(3)],
        ("tool", "with an id"),
        ("assistant", "a model's"),
        ("user", "with metadata"),
    ]
    assert (messages[5].model, messages[5].metadata) == ("m-1", framework)
    assert messages[6].metadata == {"k": 1}
    assert len({m.created_at for m in messages}) == 7  # each append occurs when it is made


async def test_stats_are_inherited_in_o1_and_count_forks(hub: Hub) -> None:
    s = hub.sessions
    t = await s.start_thread(agent_id="bot")
    await t.append("user", "hello there")
    await t.append(
        "assistant", "hi", usage={"input_tokens": 7, "output_tokens": 3, "total_tokens": 10}
    )
    fork = await t.fork()
    await fork.append(
        "user", "more", usage={"input_tokens": 1, "output_tokens": 1, "total_tokens": 2}
    )
    base, forked = await t.stats(), await fork.stats()
    assert (base.message_count, base.own_message_count, base.total_tokens, base.fork_count) == (
        2,
        2,
        10,
        1,
    )
    assert (forked.message_count, forked.own_message_count, forked.total_tokens) == (3, 1, 12)
    assert forked.forked_from == t.thread_id and forked.depth == 1
    assert forked.total_bytes > base.total_bytes > 0


async def test_redaction_reaches_every_thread_that_shows_the_message(hub: Hub) -> None:
    s = hub.sessions
    t = await s.start_thread(agent_id="bot")
    secret = await t.append("user", "my card is 4111 1111 1111 1111")
    await t.append("assistant", "noted")
    fork = await t.fork()
    await s.redact(fork.thread_id, secret, reason="pii", replacement="[card removed]")
    for thread in (t, fork):
        first = (await thread.messages())[0]
        assert (first.text, first.redacted, first.redaction_reason) == (
            "[card removed]",
            True,
            "pii",
        )
        assert first.parts == [{"type": "text", "text": "[card removed]"}]
    assert await s.search("4111") == []


async def test_a_redaction_may_show_parts_of_any_kind(hub: Hub) -> None:
    """MessageRedacted v2: the replacement may hold tool calls, data and blobs; text-only
    replacements keep v1's field, which every reader shows."""
    s = hub.sessions
    t = await s.start_thread(agent_id="bot")
    secret = await t.append("assistant", "calling the bank with 4111 1111 1111 1111")
    shown = [
        {"type": "text", "text": "[call removed]"},
        {"type": "tool_call", "tool_call_id": "c1", "name": "bank", "input": {"card": "****"}},
        {"type": "blob", "data": b"%PDF-", "content_type": "application/pdf", "name": "r.pdf"},
    ]
    await s.redact(t.thread_id, secret, reason="pii", replacement=shown)
    (first,) = await t.messages()
    assert first.redacted and first.text == "[call removed]"
    assert [p["type"] for p in first.parts] == ["text", "tool_call", "blob"]
    assert first.parts[1]["input"] == {"card": "****"}
    assert first.parts[2]["size"] == 5 and first.parts[2]["name"] == "r.pdf"
    assert await s.search("4111") == []
    with pytest.raises(InputError, match=r"replacement\.0"):
        await s.redact(t.thread_id, secret, replacement=[{"type": "nope"}])


async def test_a_renamed_title_reads_back_exactly(hub: Hub) -> None:
    """Regression: the sessions batch wrote its array arguments (a rename and a redaction
    go in them) past the text escaping: a title or a redaction holding the escape's own
    characters read back changed."""
    t = await hub.sessions.start_thread(agent_id="bot", title="first")
    assert (await t.info()).title == "first"  # applied: the rename updates a stored row
    odd = "a\ue000\ue001b\ue000"
    await hub.sessions.rename(t.thread_id, odd)
    info = await t.info()
    assert info.title == odd
    secret = await t.append("user", "to redact")
    assert (await t.messages())[-1].text == "to redact"  # applied before the redaction
    shown = "shown: " + odd  # a redaction's text goes in an array argument too
    await hub.sessions.redact(t.thread_id, secret, reason=odd, replacement=shown)
    (last,) = await t.messages()
    assert (last.text, last.parts, last.redaction_reason) == (
        shown,
        [{"type": "text", "text": shown}],
        odd,
    )


@pytest.mark.parametrize("remembered", [100_000, 1])
async def test_a_thread_written_by_raw_events_is_read_at_once(
    hub: Hub, remembered: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read your writes keys on the thread's family: a fork emitted as a raw event (not
    through hub.sessions) is readable at once, also once the client has written to more
    threads than it remembers (it then waits for all its writes, as before)."""
    from hub.core import context

    monkeypatch.setattr(context, "THREADS_REMEMBERED", remembered)
    t = await hub.sessions.start_thread(agent_id="bot")
    await t.append("user", "hi")
    for n in range(3):
        fork_id = f"raw-fork-{remembered}-{n}"
        await hub.emit(
            ThreadForked(
                **hub.context.envelope(),
                root_thread_id=t.thread_id,
                thread_id=fork_id,
                source_thread_id=t.thread_id,
            )
        )
        info = await hub.sessions.get(fork_id)
        assert info is not None and info.root_id == t.thread_id and info.message_count == 1
    assert await hub.sessions.get("never-written") is None
    assert hub.context.forgot_threads is (remembered == 1)


async def test_a_fork_may_carry_its_first_agent_state(hub: Hub) -> None:
    t = await hub.sessions.start_thread(agent_id="bot")
    await t.append("user", "hi")
    fork = await hub.sessions.fork(
        t.thread_id, new_thread_id="with-state", agent_state=("planner", {"step": 1})
    )
    assert await hub.sessions.agent_state(fork.thread_id) == {
        "agent_id": "planner",
        "state": {"step": 1},
    }
    assert [m.text for m in await fork.messages()] == ["hi"]
    with pytest.raises(InputError, match="state"):
        await hub.sessions.fork(t.thread_id, agent_state=("planner", {"bad": float("nan")}))
    assert await hub.sessions.get("with-state") is not None


async def test_archive_list_cursor_and_search(hub: Hub) -> None:
    s = hub.sessions
    threads = [await s.start_thread(agent_id="bot", user_id="bo", title=f"t{i}") for i in range(5)]
    for i, t in enumerate(threads):
        await t.append("user", f"we should plan the project budget number {i}")
    await threads[1].archive()
    await threads[3].archive()
    await threads[3].unarchive()
    listed = await s.list(user_id="bo", limit=2)
    rest = await s.list(user_id="bo", limit=10, cursor=listed.next_cursor)
    assert listed.next_cursor is not None and rest.next_cursor is None
    active = [t.thread_id for t in listed.threads + rest.threads]
    assert sorted(active) == sorted(t.thread_id for i, t in enumerate(threads) if i != 1)
    assert [t.thread_id for t in (await s.list_archived("bo")).threads] == [threads[1].thread_id]
    assert len((await s.list(user_id="bo", archived=None)).threads) == 5
    hits = await s.search("projects budgets", user_id="bo")  # stemmed
    assert len(hits) == 5 and all("<b>" in h.snippet for h in hits)
    assert await s.search("budget", user_id="nobody") == []
    with pytest.raises(InputError, match="cursor"):
        await s.list(cursor="garbage")


async def test_time_travel_by_position_and_time(hub: Hub) -> None:
    s = hub.sessions
    t = await s.start_thread(agent_id="bot", title="before")
    await t.append("user", "one")
    [pos] = await hub.emit(
        MessageAppended(
            tenant_id=hub.settings.tenant,
            actor="test",
            root_thread_id=t.thread_id,
            thread_id=t.thread_id,
            message_id=uuid7(),
            role=Role.ASSISTANT,
            parts=(TextPart(text="two"),),
        )
    )
    await anyio.sleep(0.01)
    moment = datetime.now(UTC)
    await anyio.sleep(0.01)
    await t.rename("after")
    await t.append("user", "three")
    await t.archive()
    snap = await t.as_of(pos)
    assert [m.text for m in snap.messages] == ["one", "two"]
    assert (snap.thread.title, snap.thread.archived, snap.thread.message_count) == (
        "before",
        False,
        2,
    )
    by_time = await t.as_of(moment)
    assert [m.text for m in by_time.messages] == ["one", "two"] and by_time.thread.title == "before"
    now = await t.as_of(datetime.now(UTC))
    assert (now.thread.title, now.thread.archived, len(now.messages)) == ("after", True, 3)
    with pytest.raises(NotFoundError, match="did not exist"):
        await t.as_of(moment - timedelta(hours=1))


async def test_memory_windows(hub: Hub) -> None:
    t = await hub.sessions.start_thread(agent_id="bot")
    await t.append_many([{"role": "user", "content": f"message {i:02d}"} for i in range(30)])
    assert [m.text for m in await t.last_n(3)] == ["message 27", "message 28", "message 29"]
    window = await t.first_last(2, 3)
    assert [m.text for m in window] == [
        "message 00",
        "message 01",
        "message 27",
        "message 28",
        "message 29",
    ]
    assert [m.text for m in await t.first_last(20, 20)] == [f"message {i:02d}" for i in range(30)]
    by_words = await t.token_window(7, tokenizer=lambda text: len(text.split()))  # 2 words each
    assert [m.text for m in by_words] == ["message 27", "message 28", "message 29"]
    assert len(await t.token_window(10_000)) == 30


async def test_bad_input_is_refused_and_nothing_is_produced(hub: Hub, tmp_path: Path) -> None:
    s = hub.sessions
    t = await s.start_thread(agent_id="bot")
    other = await s.start_thread(agent_id="bot")
    foreign = await other.append("user", "not yours")
    before = await produced(hub)
    with pytest.raises(NotFoundError, match="no thread 'nope'"):
        await s.append("nope", "user", "hi")
    with pytest.raises(NotFoundError, match="is not in thread"):
        await s.fork(t.thread_id, foreign)
    with pytest.raises(InputError, match="over the 1048576-byte limit"):
        await t.append("user", "x" * (1 << 20))
    with pytest.raises(InputError, match="role: must be one of"):
        await t.append("robot", "hi")
    with pytest.raises(InputError, match=r"content.1.type: must be one of"):
        await t.append("user", [{"type": "text", "text": "ok"}, {"type": "video"}])
    with pytest.raises(InputError, match="tool_call_id"):
        await t.append("assistant", [{"type": "tool_call", "name": "f"}])
    with pytest.raises(InputError, match="agent_id"):
        await s.start_thread(agent_id="")
    with pytest.raises(InputError, match="exists already"):
        await s.start_thread(agent_id="bot", thread_id=t.thread_id)
    with pytest.raises(InputError, match="titel: unknown field"):
        await s.start_thread(agent_id="bot", titel="typo")
    assert await produced(hub) == before


async def test_binary_content_goes_to_the_blob_store_by_reference(hub: Hub, tmp_path: Path) -> None:
    t = await hub.sessions.start_thread(agent_id="bot")
    image = bytes(range(256)) * 8192  # 2 MiB: over the message limit if it were inline
    await t.append(
        "user",
        [
            {"type": "text", "text": "look"},
            {"type": "blob", "data": image, "content_type": "image/png", "name": "cat.png"},
        ],
    )
    message = (await t.messages())[0]
    blob = message.parts[1]
    assert blob["type"] == "blob" and blob["size"] == len(image) and blob["name"] == "cat.png"
    assert blob["uri"].startswith((tmp_path / "blobs").as_uri())
    store = await hub.runtime.blob_store()
    key = blob["uri"].removeprefix(store.url + "/")
    assert await store.get(key) == image
    assert message.total_tokens == 0 and len(json.dumps(message.parts)) < 1000


async def dead_letters(hub: Hub, count: int) -> list[DeadLettered]:
    dlq = [TopicPartition(str(Topic.DLQ), p) for p in range(TEST_PARTITIONS)]
    found: list[DeadLettered] = []
    async with hub.runtime.log.consumer(group_id=None, partitions=dlq) as consumer:
        with anyio.fail_after(20):
            while len(found) < count:
                for rec in await consumer.fetch(10, 0.5):
                    event = hub.runtime.codec.decode(rec.value)
                    assert isinstance(event, DeadLettered)
                    found.append(event)
    return found


async def test_orphan_events_are_dead_lettered(hub: Hub) -> None:
    t = await hub.sessions.start_thread(agent_id="bot")
    await t.append("user", "fine")
    orphan = MessageAppended(
        tenant_id=hub.settings.tenant,
        actor="test",
        root_thread_id="ghost",
        thread_id="ghost",
        message_id=uuid7(),
        role=Role.USER,
        parts=(TextPart(text="nobody's"),),
    )
    [pos] = await hub.emit(orphan)
    await t.append("user", "still fine")
    assert await texts(t) == ["fine", "still fine"]
    found = await dead_letters(hub, 1)
    assert found[0].reason == "MessageAppended for unknown thread 'ghost'"
    assert (found[0].source_partition, found[0].source_offset) == (pos.partition, pos.offset)


async def test_a_message_id_appended_again_is_dead_lettered(hub: Hub) -> None:
    """A message id stored by an earlier batch, or twice in one batch: the copy is
    dead-lettered with the id named, and the batch's other messages are applied."""
    t = await hub.sessions.start_thread(agent_id="bot")
    first = await t.append("user", "first")

    def again(message_id: uuid.UUID, text: str) -> MessageAppended:
        return MessageAppended(
            tenant_id=hub.settings.tenant,
            actor="test",
            root_thread_id=t.thread_id,
            thread_id=t.thread_id,
            message_id=message_id,
            role=Role.USER,
            parts=(TextPart(text=text),),
        )

    twice = uuid7()
    await hub.emit(
        again(first, "stored before"),
        again(uuid7(), "fine"),
        again(twice, "once"),
        again(twice, "twice in one batch"),
    )
    await t.append("user", "still fine")
    assert await texts(t) == ["first", "fine", "once", "still fine"]
    reasons = sorted(d.reason for d in await dead_letters(hub, 2))
    assert reasons == sorted(
        [f"message {first} was appended before", f"message {twice} was appended before"]
    )


async def test_reading_a_thread_of_depth_d_is_d_plus_1_range_scans(hub: Hub) -> None:
    s = hub.sessions
    thread = await s.start_thread(agent_id="bot")
    for depth in range(5):
        await thread.append_many([{"role": "user", "content": f"d{depth}-{i}"} for i in range(3)])
        thread = await thread.fork()
    await thread.append("user", "leaf")
    info = await thread.info()
    assert info.depth == 5 and info.message_count == 16
    assert len(await thread.messages(limit=50)) == 16
    from projections.sessions.queries import MESSAGES_DESC

    plan = await hub.runtime.pool.fetchval(
        "EXPLAIN (ANALYZE, FORMAT JSON) " + MESSAGES_DESC,
        hub.settings.tenant,
        thread.thread_id,
        0,
        2**63 - 1,
        50,
        2**63 - 1,
        datetime(9999, 1, 1, tzinfo=UTC),
    )
    scans: list[dict[str, Any]] = []

    def walk(node: dict[str, Any]) -> None:
        if "Scan" in node["Node Type"] and node.get("Relation Name") == "messages":
            scans.append(node)
        for child in node.get("Plans", ()):
            walk(child)

    walk(plan[0]["Plan"] if isinstance(plan, list) else json.loads(plan)[0]["Plan"])
    assert len(scans) == 1 and scans[0]["Node Type"].startswith("Index")
    assert scans[0]["Actual Loops"] == info.depth + 1  # one range scan per thread in the lineage


async def test_messages_read_are_the_models_validation_would_build(hub: Hub) -> None:
    """Reads build each Message from its row without validating it: the same values, of
    the same types, as validating the row gives."""
    thread = await hub.sessions.start_thread(agent_id="a")
    await thread.append("user", "plain", metadata={"k": [1, {"x": None}]})
    await thread.append(
        "assistant",
        [{"type": "text", "text": "é"}, {"type": "tool_call", "tool_call_id": "c", "name": "f"}],
        model="m",
        usage={"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
    )
    await hub.flush()
    messages = await thread.messages()
    assert len(messages) == 2
    for message in messages:
        assert_identical(message, Message.model_validate(dict(message.__dict__)))
