"""``HubSessionRepository`` answers every ``SessionRepository`` method as Strands' own
``FileSessionManager`` does: the same scenario runs against both, and every answer
(value, ``None`` or exception type) must be the same. Then what only the hub must show:
over 10,000 messages restored whole, and no id collision between sessions and agents."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from strands.session.file_session_manager import FileSessionManager
from strands.session.session_repository import SessionRepository
from strands.types.session import Session, SessionAgent, SessionMessage, SessionType

from hub.bridge import SyncHub
from hub.integrations.strands import HubSessionRepository
from tests.integration.test_strands import sync  # noqa: F401 (the fixture)

CREATED = "2024-01-02T03:04:05+00:00"


def Multi(id: str, state: dict[str, Any]) -> Any:
    """The part of a Swarm or Graph that a repository sees: its id and its state."""

    class _Multi:
        def serialize_state(self) -> dict[str, Any]:
            return dict(state)

    multi = _Multi()
    multi.id = id  # type: ignore[attr-defined]
    return multi


def _message(index: int, text: str, role: str = "user") -> SessionMessage:
    return SessionMessage(
        {"role": role, "content": [{"text": text}]},  # type: ignore[typeddict-item]
        index,
        created_at=CREATED,
        updated_at=CREATED,
    )


def _agent(agent_id: str, **state: Any) -> SessionAgent:
    return SessionAgent(
        agent_id=agent_id,
        state=state,
        conversation_manager_state={},
        created_at=CREATED,
        updated_at=CREATED,
    )


def _seen(value: Any) -> Any:
    """An answer as the scenario compares it."""
    if isinstance(value, SessionMessage):
        return ("message", value.message_id, value.to_message(), value.created_at)
    if isinstance(value, SessionAgent):
        return ("agent", value.agent_id, value.state, value.created_at)
    if isinstance(value, Session):
        return ("session", value.to_dict())
    if isinstance(value, list):
        return [_seen(v) for v in value]
    return value


def recorder(answers: list[Any]) -> Callable[[str, Callable[[], Any]], None]:
    """``answer(step, call)``: adds to ``answers`` what ``call`` returns, as compared, or
    which error it raises."""

    def answer(step: str, call: Callable[[], Any]) -> None:
        try:
            answers.append((step, _seen(call())))
        except Exception as exc:  # the answer is which error
            answers.append((step, "raises", type(exc).__name__))

    return answer


def scenario(repo: SessionRepository) -> list[Any]:
    """Every method, on present and missing items, good ids and bad."""
    answers: list[Any] = []
    answer = recorder(answers)

    session = Session("s1", SessionType.AGENT, created_at=CREATED, updated_at=CREATED)
    answer("read missing session", lambda: repo.read_session("s1"))
    answer("create session", lambda: repo.create_session(session))
    answer("read session", lambda: repo.read_session("s1"))
    answer("create it again", lambda: repo.create_session(session))
    answer("session id with a separator", lambda: repo.read_session("s1/planner"))
    answer("read missing agent", lambda: repo.read_agent("s1", "planner"))
    answer("update missing agent", lambda: repo.update_agent("s1", _agent("planner")))
    answer("agent id with a separator", lambda: repo.create_agent("s1", _agent("a/b")))
    answer("create agent", lambda: repo.create_agent("s1", _agent("planner", step=1)))
    answer("read agent", lambda: repo.read_agent("s1", "planner"))
    later = _agent("planner", step=2)
    later.created_at = "2030-01-01T00:00:00+00:00"
    answer("update agent", lambda: repo.update_agent("s1", later))
    answer("updated agent keeps its created_at", lambda: repo.read_agent("s1", "planner"))
    for i in range(5):
        role = "user" if i % 2 == 0 else "assistant"
        answer(
            f"create message {i}",
            lambda i=i, r=role: repo.create_message(  # type: ignore[misc]
                "s1", "planner", _message(i, f"text {i}", r)
            ),
        )
    answer("read message 2", lambda: repo.read_message("s1", "planner", 2))
    answer("read missing message", lambda: repo.read_message("s1", "planner", 9))
    answer("message id not an int", lambda: repo.read_message("s1", "planner", "2"))  # type: ignore[arg-type]
    answer("list all", lambda: repo.list_messages("s1", "planner"))
    answer("list a page", lambda: repo.list_messages("s1", "planner", limit=2, offset=1))
    answer("list past the end", lambda: repo.list_messages("s1", "planner", offset=7))
    answer("list a missing agent", lambda: repo.list_messages("s1", "nobody"))
    answer("list none of a missing agent", lambda: repo.list_messages("s1", "nobody", limit=0))
    answer("list none", lambda: repo.list_messages("s1", "planner", limit=0))
    answer("a message of a missing agent", lambda: repo.read_message("s1", "nobody", 0))
    answer("update missing message", lambda: repo.update_message("s1", "planner", _message(9, "x")))
    redacted = _message(1, "text 1", "assistant")
    redacted.redact_message = {"role": "assistant", "content": [{"text": "[redacted]"}]}
    answer("redact message 1", lambda: repo.update_message("s1", "planner", redacted))
    answer("read the redaction", lambda: repo.read_message("s1", "planner", 1))
    alias = _message(3, "[redacted]", "assistant")  # an alias record rewritten, no redact_message
    answer("rewrite message 3", lambda: repo.update_message("s1", "planner", alias))
    answer("read the rewrite", lambda: repo.read_message("s1", "planner", 3))
    tool_use = {"toolUse": {"toolUseId": "u1", "name": "lookup", "input": {"q": "x"}}}
    rewritten = SessionMessage(
        {"role": "user", "content": [{"text": "see"}, tool_use]},  # type: ignore[list-item]
        4,
        created_at=CREATED,
        updated_at=CREATED,
    )
    answer(
        "rewrite message 4 with a tool use", lambda: repo.update_message("s1", "planner", rewritten)
    )
    answer("read it", lambda: repo.read_message("s1", "planner", 4))
    answer("read missing multi-agent", lambda: repo.read_multi_agent("s1", "swarm"))
    answer("update missing multi-agent", lambda: repo.update_multi_agent("s1", Multi("swarm", {})))
    answer("create multi-agent", lambda: repo.create_multi_agent("s1", Multi("swarm", {"n": 1})))
    answer("read multi-agent", lambda: repo.read_multi_agent("s1", "swarm"))
    answer("update multi-agent", lambda: repo.update_multi_agent("s1", Multi("swarm", {"n": 2})))
    answer("read updated multi-agent", lambda: repo.read_multi_agent("s1", "swarm"))
    answer("an agent of the same id", lambda: repo.read_agent("s1", "swarm"))
    return answers


@pytest.fixture
def strands_own(tmp_path: Path) -> Iterator[SessionRepository]:
    manager = FileSessionManager.__new__(FileSessionManager)  # its repository part only
    manager.storage_dir = str(tmp_path / "strands")
    yield manager


def test_every_method_answers_as_strands_own_store(
    sync: SyncHub,  # noqa: F811
    strands_own: SessionRepository,
) -> None:
    theirs = scenario(strands_own)
    ours = scenario(HubSessionRepository(sync))
    for mine, expected in zip(ours, theirs, strict=True):
        assert mine == expected
    assert ("create it again", "raises", "SessionException") in theirs  # errors are compared
    assert ("message id not an int", "raises", "ValueError") in theirs


def two_writers(
    first: SessionRepository, second: SessionRepository, reader: SessionRepository
) -> list[Any]:
    """What a second repository (another process: nothing remembered) meets of what the
    first wrote: the session exists, an agent created again is overwritten. A third one
    reads the result (a writer reads back what it wrote itself, as one writer per session
    at a time would have it)."""
    answers: list[Any] = []
    answer = recorder(answers)

    session = Session("s2", SessionType.AGENT, created_at=CREATED, updated_at=CREATED)
    answer("first creates the session", lambda: first.create_session(session))
    answer("second creates it too", lambda: second.create_session(session))
    answer("first creates an agent", lambda: first.create_agent("s2", _agent("p", step=1)))
    answer("second creates it again", lambda: second.create_agent("s2", _agent("p", step=2)))
    answer("first updates it", lambda: first.update_agent("s2", _agent("p", step=3)))
    answer("a third reads it", lambda: reader.read_agent("s2", "p"))
    return answers


def test_a_second_writer_meets_what_the_first_wrote_as_strands_own_store_does(
    sync: SyncHub,  # noqa: F811
    strands_own: SessionRepository,
) -> None:
    others = [FileSessionManager.__new__(FileSessionManager) for _ in range(2)]
    for other in others:
        other.storage_dir = strands_own.storage_dir  # type: ignore[attr-defined]
    theirs = two_writers(strands_own, *others)
    ours = two_writers(*(HubSessionRepository(sync) for _ in range(3)))
    for mine, expected in zip(ours, theirs, strict=True):
        assert mine == expected
    assert ("second creates it too", "raises", "SessionException") in theirs
    assert theirs[-1][1][2] == {"step": 3}  # the last write wins


def test_the_alias_of_a_redacted_message_shows_no_secret(sync: SyncHub) -> None:  # noqa: F811
    repo = HubSessionRepository(sync)
    repo.create_session(Session("s", SessionType.AGENT))
    repo.create_agent("s", _agent("a"))
    repo.create_message("s", "a", _message(0, "my password is hunter2"))
    repo.create_message("s", "a", _message(1, "my password is hunter2"))
    secret = _message(1, "my password is hunter2")
    secret.redact_message = {"role": "user", "content": [{"text": "[User input redacted.]"}]}
    repo.update_message("s", "a", secret)
    repo.update_message("s", "a", _message(0, "[User input redacted.]"))  # Strands' alias rewrite
    found = sync.call(lambda hub: hub.sessions.search("hunter2"))
    assert list(found) == []
    texts = [m.text for m in sync.call(lambda hub: hub.sessions.messages("s/a"))]
    assert texts == ["[User input redacted.]", "[User input redacted.]"]


def test_over_ten_thousand_messages_come_back_whole(sync: SyncHub) -> None:  # noqa: F811
    repo = HubSessionRepository(sync)
    repo.create_session(Session("long", SessionType.AGENT))
    repo.create_agent("long", _agent("a"))
    n = 10_007
    batch = [
        {
            "role": "user",
            "content": [{"type": "text", "text": f"m{i}"}],
            "metadata": {"strands_index": i, "strands": {"created_at": CREATED}},
        }
        for i in range(n)
    ]
    for start in range(0, n, 1000):
        chunk = batch[start : start + 1000]

        async def append(hub: Any, chunk: list[dict[str, Any]] = chunk) -> None:
            await hub.sessions.append_many("long/a", chunk)

        sync.call(append)
    listed = repo.list_messages("long", "a")
    assert [m.message_id for m in listed] == list(range(n))
    assert listed[-1].to_message()["content"] == [{"text": f"m{n - 1}"}]
    assert [m.message_id for m in repo.list_messages("long", "a", offset=9_999, limit=3)] == [
        9_999,
        10_000,
        10_001,
    ]


def test_sessions_and_agents_never_share_a_thread(sync: SyncHub) -> None:  # noqa: F811
    repo = HubSessionRepository(sync)
    repo.create_session(Session("a", SessionType.AGENT))
    with pytest.raises(ValueError, match="path separators"):
        repo.create_session(Session("a/b", SessionType.AGENT))
    with pytest.raises(ValueError, match="path separators"):
        repo.create_agent("a", _agent("b/c"))
    repo.create_agent("a", _agent("planner"))
    assert repo.read_session("a") is not None
    with pytest.raises(ValueError, match="path separators"):
        repo.read_session("a/planner")


def test_a_swarm_keeps_its_state_in_the_hub_and_restores_it(sync: SyncHub) -> None:  # noqa: F811
    from strands import Agent
    from strands.multiagent import Swarm

    from hub.integrations.strands import HubSessionManager
    from tests.support.scripted_model import ScriptedModel

    def team() -> list[Agent]:
        return [
            Agent(name="writer", model=ScriptedModel("draft done"), callback_handler=None),
            Agent(name="editor", model=ScriptedModel("edit done"), callback_handler=None),
        ]

    swarm = Swarm(team(), id="team", session_manager=HubSessionManager("crew", hub=sync))
    result = swarm("write a note")
    assert result.status.value == "completed"
    saved = HubSessionRepository(sync).read_multi_agent("crew", "team")
    assert saved is not None and saved["status"] == "completed"
    assert saved["node_history"] == ["writer"]

    # as if the process had died after the writer, with the editor next
    interrupted = {**saved, "status": "executing", "next_nodes_to_execute": ["editor"]}
    HubSessionRepository(sync).update_multi_agent("crew", Multi("team", interrupted))
    again = Swarm(team(), id="team", session_manager=HubSessionManager("crew", hub=sync))
    assert again._resume_from_session  # restored from the hub, to resume at the editor
    assert [n.node_id for n in again.state.node_history] == ["writer"]
    assert again.state.current_node is not None and again.state.current_node.node_id == "editor"


def test_strands_redaction_of_a_real_agents_message(sync: SyncHub) -> None:  # noqa: F811
    """Strands' own redaction path (``redact_latest_message``, as a guardrail calls it) on
    an Agent's messages, which carry keys besides role and content (tracking ids)."""
    from strands import Agent

    from hub.integrations.strands import HubSessionManager
    from tests.support.scripted_model import ScriptedModel

    manager = HubSessionManager("guarded", hub=sync)
    agent = Agent(
        model=ScriptedModel("noted"), agent_id="a", session_manager=manager, callback_handler=None
    )
    agent("my card is 4111 1111 1111 1111")
    hidden = {"role": "assistant", "content": [{"text": "[redacted]"}]}
    manager.redact_latest_message(hidden, agent)  # type: ignore[arg-type]
    texts = [m.text for m in sync.call(lambda hub: hub.sessions.messages("guarded/a"))]
    assert texts == ["my card is 4111 1111 1111 1111", "[redacted]"]
    restored = Agent(
        model=ScriptedModel(),
        agent_id="a",
        session_manager=HubSessionManager("guarded", hub=sync),
        callback_handler=None,
    )
    assert [m["content"] for m in restored.messages] == [
        [{"text": "my card is 4111 1111 1111 1111"}],
        [{"text": "[redacted]"}],
    ]
