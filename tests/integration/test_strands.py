"""A real ``strands.Agent`` (with a scripted stub model: no network, no LLM) whose session
lives in Agent Hub: two turns, a restore in a new Agent, then a fork a third Agent
continues without touching the original."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from strands import Agent
from strands.types.session import Session, SessionAgent, SessionMessage, SessionType

from hub.bridge import SyncHub
from hub.integrations.strands import HubSessionManager, HubSessionRepository
from hub.settings import HubSettings
from tests.support.scripted_model import ScriptedModel


@pytest.fixture
def sync(backend: str, log_url: str, database_url: str, tmp_path: Any) -> Iterator[SyncHub]:
    from tests.conftest import settings_for

    settings: HubSettings = settings_for(
        backend,
        log_url,
        database_url,
        tmp_path / "home",
        run_projectors="always",
        archive_url=(tmp_path / "blobs").as_uri(),
    )
    hub = SyncHub(settings).start()
    yield hub
    hub.stop()


def texts(messages: list[Any]) -> list[tuple[str, str]]:
    return [(m["role"], " ".join(b["text"] for b in m["content"] if "text" in b)) for m in messages]


def thread_texts(sync: SyncHub, thread_id: str) -> list[tuple[str, str]]:
    found = sync.call(lambda hub: hub.sessions.messages(thread_id))
    return [(m.role, m.text) for m in found]


def test_agent_restores_and_forks_through_the_hub(sync: SyncHub) -> None:
    first = Agent(
        model=ScriptedModel("Hi! How can I help?", "Lisbon is lovely in May."),
        session_manager=HubSessionManager("trip", hub=sync),
        agent_id="planner",
        callback_handler=None,
    )
    first("Hello")
    first.state.set("city", "Lisbon")
    first("When should I visit Lisbon?")
    two_turns = [
        ("user", "Hello"),
        ("assistant", "Hi! How can I help?"),
        ("user", "When should I visit Lisbon?"),
        ("assistant", "Lisbon is lovely in May."),
    ]
    assert texts(first.messages) == two_turns
    assert thread_texts(sync, "trip/planner") == two_turns

    # a new Agent (a new process, say) picks the conversation up from the hub
    second_model = ScriptedModel("Yes, book it.")
    second = Agent(
        model=second_model,
        session_manager=HubSessionManager("trip", hub=sync),
        agent_id="planner",
        callback_handler=None,
    )
    assert texts(second.messages) == two_turns
    assert second.state.get("city") == "Lisbon"

    # fork the session; a third Agent continues the fork only
    fork_manager = HubSessionManager("trip", hub=sync).fork("trip-porto")
    third_model = ScriptedModel("Porto is lovely too.")
    third = Agent(
        model=third_model, session_manager=fork_manager, agent_id="planner", callback_handler=None
    )
    assert texts(third.messages) == two_turns and third.state.get("city") == "Lisbon"
    third("What about Porto?")
    assert texts(third_model.seen[0]) == [*two_turns, ("user", "What about Porto?")]
    assert thread_texts(sync, "trip-porto/planner") == [
        *two_turns,
        ("user", "What about Porto?"),
        ("assistant", "Porto is lovely too."),
    ]
    assert thread_texts(sync, "trip/planner") == two_turns  # the original is untouched
    info = sync.call(lambda hub: hub.sessions.get("trip-porto/planner"))
    assert info is not None and info.forked_from == "trip/planner"

    # and the original goes on independently
    second("Shall I book?")
    assert thread_texts(sync, "trip/planner")[-2:] == [
        ("user", "Shall I book?"),
        ("assistant", "Yes, book it."),
    ]
    assert len(thread_texts(sync, "trip-porto/planner")) == 6


def test_redaction_tool_use_and_images_round_trip(sync: SyncHub) -> None:
    repo = HubSessionRepository(sync)
    repo.create_session(Session(session_id="s", session_type=SessionType.AGENT))
    repo.create_agent(
        "s", SessionAgent(agent_id="a", state={"k": 1}, conversation_manager_state={})
    )
    image = bytes(range(256)) * 100
    messages = [
        {
            "role": "user",
            "content": [{"text": "look"}, {"image": {"format": "png", "source": {"bytes": image}}}],
        },
        {
            "role": "assistant",
            "content": [{"toolUse": {"toolUseId": "t1", "name": "lookup", "input": {"q": "cat"}}}],
        },
        {
            "role": "user",
            "content": [
                {
                    "toolResult": {
                        "toolUseId": "t1",
                        "status": "success",
                        "content": [{"text": "a cat"}],
                    }
                }
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"reasoningContent": {"reasoningText": {"text": "hmm", "signature": "x"}}},
                {"text": "It is a cat."},
            ],
        },
    ]
    for i, m in enumerate(messages):
        repo.create_message("s", "a", SessionMessage(m, i))  # type: ignore[arg-type]
    back = repo.list_messages("s", "a")
    assert [sm.message for sm in back] == messages  # bytes, tool use, reasoning: all kept
    assert [sm.message_id for sm in back] == [0, 1, 2, 3]
    assert repo.list_messages("s", "a", limit=2, offset=1)[0].message == messages[1]
    one = repo.read_message("s", "a", 3)
    assert one is not None and one.message == messages[3]

    hidden: Any = {"role": "assistant", "content": [{"text": "[hidden]"}]}
    redacted = SessionMessage(messages[3], 3, redact_message=hidden)
    repo.update_message("s", "a", redacted)
    after = repo.read_message("s", "a", 3)
    assert after is not None and after.to_message()["content"] == [{"text": "[hidden]"}]
    agent = repo.read_agent("s", "a")
    assert agent is not None and agent.state == {"k": 1}
    assert repo.read_agent("s", "nobody") is None and repo.read_session("missing") is None


@pytest.fixture
def seed_env(
    monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Any
) -> Iterator[dict[str, str]]:
    """The seed's environment variables, pointing at this test's database."""
    import hub.bridge
    import hub.compat.config

    monkeypatch.setenv("HUB_DATABASE_URL", database_url)
    monkeypatch.setenv("HUB_RUN_PROJECTORS", "always")
    monkeypatch.setenv("AGENT_HUB_LOCAL_DIR", str(tmp_path / "local"))
    for name in ("USE_S3", "AGENT_HUB_BUCKET", "HUB_LOG_URL", "HUB_ARCHIVE_URL"):
        monkeypatch.delenv(name, raising=False)
    hub.compat.config.set_config(hub.compat.config.HubConfig())
    yield {}
    hub.bridge._close_all()
    hub.compat.config._config = None


def test_seed_create_session_manager_local_and_s3(
    seed_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    moto_endpoint: str,
    aws_env: dict[str, str],
) -> None:
    from hub.compat.config import HubConfig, set_config
    from hub.compat.session import create_session_manager, generate_run_id
    from schemas.errors import ConfigError

    run_id = generate_run_id("my-agent")
    assert re.fullmatch(r"my-agent_\d{8}_\d{6}_[0-9a-f]{4}", run_id), run_id
    assert generate_run_id("my-agent") != run_id  # unique even within one second
    manager = create_session_manager(agent_id="my-agent", run_id=run_id)
    agent = Agent(
        model=ScriptedModel("hello back"),
        session_manager=manager,
        agent_id="my-agent",
        callback_handler=None,
    )
    agent("hello")
    again = Agent(
        model=ScriptedModel(),
        session_manager=create_session_manager(agent_id="my-agent", run_id=run_id),
        agent_id="my-agent",
        callback_handler=None,
    )
    assert texts(again.messages) == [("user", "hello"), ("assistant", "hello back")]

    monkeypatch.setenv("USE_S3", "true")
    set_config(HubConfig())
    with pytest.raises(ConfigError, match=r"^AGENT_HUB_BUCKET must be set when USE_S3=true$"):
        create_session_manager(agent_id="my-agent")

    monkeypatch.setenv("AGENT_HUB_BUCKET", "seed-bucket")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    set_config(HubConfig())
    s3_manager = create_session_manager(agent_id="my-agent", run_id="s3-run")
    picture = bytes(range(256)) * 4
    s3_manager.repository.create_agent(
        "s3-run", SessionAgent(agent_id="pic", state={}, conversation_manager_state={})
    )
    message: Any = {
        "role": "user",
        "content": [{"image": {"format": "png", "source": {"bytes": picture}}}],
    }
    s3_manager.repository.create_message("s3-run", "pic", SessionMessage(message, 0))
    stored = s3_manager.repository.list_messages("s3-run", "pic")
    assert stored[0].message == message
    uri = s3_manager.repository.hub.call(lambda hub: hub.sessions.messages("s3-run/pic"))[0].parts[
        0
    ]["uri"]
    assert uri.startswith("s3://seed-bucket/agent-hub/blobs/")
