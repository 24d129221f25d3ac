"""One process of the LangGraph restore test (``tests/e2e/test_langgraph_processes.py``).

    python -m tests.support.langgraph_run write|read|memory DIR

A ``StateGraph`` chat agent (``MessagesState``, a fake chat model from ``langchain_core``:
no network) with ``HubCheckpointSaver`` on embedded defaults under ``DIR``.
``write``: two turns, synchronously (``invoke``, the saver on a ``SyncHub``).
``read``: in a new process, asynchronously (``ainvoke``, the saver on a ``Hub``): the
restored state, a third turn, the state history, then a fork from the checkpoint after
the first turn with ``update_state`` and a turn on it; prints what it saw as JSON,
including the thread as ``hub.sessions`` shows it. ``memory``: the same with LangGraph's
``InMemorySaver``, both halves in one process (what the hub must match).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph

from hub import Hub
from hub.bridge import SyncHub
from hub.integrations.langgraph import HubCheckpointSaver
from hub.settings import HubSettings

THREAD = "trip-planner"
CONFIG: Any = {"configurable": {"thread_id": THREAD}}


def graph(saver: BaseCheckpointSaver[Any], answers: list[str]) -> CompiledStateGraph[Any]:
    model = GenericFakeChatModel(messages=iter([AIMessage(a) for a in answers]))

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_edge(START, "agent")
    return builder.compile(checkpointer=saver)


def texts(state: Any) -> list[str]:
    return [str(m.content) for m in state.values["messages"]]


def write(saver: BaseCheckpointSaver[Any]) -> None:
    app = graph(saver, ["Hello! Where to?", "Lisbon, in spring."])
    app.invoke({"messages": [HumanMessage("hello")]}, CONFIG)
    app.invoke({"messages": [HumanMessage("Where should I go?")]}, CONFIG)


async def read(saver: BaseCheckpointSaver[Any]) -> dict[str, Any]:
    app = graph(saver, ["Then Porto.", "Seville, it is sunny."])
    out: dict[str, Any] = {"restored": texts(await app.aget_state(CONFIG))}
    await app.ainvoke({"messages": [HumanMessage("And after that?")]}, CONFIG)
    main = await app.aget_state(CONFIG)
    out["third_turn"] = texts(main)
    history = [s async for s in app.aget_state_history(CONFIG)]
    out["history"] = [(s.metadata or {}).get("step") for s in history]
    after_first = next(s for s in history if len(s.values.get("messages", [])) == 2 and not s.next)
    fork = await app.aupdate_state(
        after_first.config,
        {"messages": [HumanMessage("Actually, somewhere sunny?")]},
        as_node=START,
    )
    await app.ainvoke(None, fork)
    out["fork"] = texts(await app.aget_state(CONFIG))
    out["main_still"] = texts(await app.aget_state(main.config))
    return out


async def read_hub(settings: HubSettings) -> dict[str, Any]:
    async with Hub(settings) as hub:
        out = await read(HubCheckpointSaver(hub))
        messages = await hub.sessions.messages(THREAD, limit=100)
        out["sessions"] = [(m.role, m.text) for m in messages]
        out["search"] = [hit.thread_id for hit in await hub.sessions.search("Lisbon")]
        return out


def main() -> None:
    action, directory = sys.argv[1], Path(sys.argv[2])
    settings = HubSettings(home=directory / "hub", run_projectors="always")
    if action == "write":
        sync = SyncHub(settings).start()
        try:
            write(HubCheckpointSaver(sync))
        finally:
            sync.stop()
    elif action == "read":
        print("RESULT " + json.dumps(asyncio.run(read_hub(settings))))
    else:  # LangGraph's own in-memory saver, both halves in this process
        memory = InMemorySaver()
        write(memory)
        print("RESULT " + json.dumps(asyncio.run(read(memory))))


if __name__ == "__main__":
    main()
