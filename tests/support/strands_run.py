"""One process of the Strands restore test (``tests/e2e/test_strands_processes.py``).

    python -m tests.support.strands_run write|read hub|file DIR

``write``: a real ``Agent`` answers two prompts, a ``Swarm`` and a ``Graph`` of two agents
each run a task (scripted models: no network), all with a session manager: Agent Hub's
(embedded defaults under ``DIR``) or Strands' ``FileSessionManager`` (files under ``DIR``).
``read``: in a new process, restore them and print, as JSON, what came back: the Agent's
messages, state and conversation-manager state, and the Swarm's and Graph's saved
states, without what differs on every run (tracking ids, timings, the order of a Graph's
sets of nodes).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from strands import Agent
from strands.multiagent import GraphBuilder, Swarm
from strands.session.file_session_manager import FileSessionManager
from strands.session.repository_session_manager import RepositorySessionManager

from hub.integrations.strands import HubSessionManager
from hub.settings import HubSettings
from tests.support.scripted_model import ScriptedModel

VOLATILE = {"tracking_id", "execution_time", "accumulated_metrics", "metrics", "latencyMs"}
SETS = {"completed_nodes", "failed_nodes", "interrupted_nodes"}  # a Graph's sets, as lists


def manager(store: str, directory: Path, session_id: str) -> RepositorySessionManager:
    if store == "hub":
        settings = HubSettings(home=directory / "hub", run_projectors="always")
        return HubSessionManager(session_id, settings=settings)
    return FileSessionManager(session_id, storage_dir=str(directory / "files"))


def agent(name: str, *replies: str, session: RepositorySessionManager | None = None) -> Agent:
    return Agent(
        name=name,
        agent_id=name,
        model=ScriptedModel(*replies),
        session_manager=session,
        callback_handler=None,
    )


def write(store: str, directory: Path) -> None:
    solo = agent("solo", "first answer", "second answer", session=manager(store, directory, "s1"))
    solo.state.set("city", "Lisbon")
    solo("plan a trip")
    solo("and a budget")
    team = Swarm(
        [agent("writer", "draft"), agent("editor", "edited")],
        id="team",
        session_manager=manager(store, directory, "s2"),
    )
    team("write a note")
    builder = GraphBuilder()
    builder.add_node(agent("research", "facts"), "research")
    builder.add_node(agent("report", "summary"), "report")
    builder.add_edge("research", "report")
    builder.set_entry_point("research")
    builder.set_session_manager(manager(store, directory, "s3"))
    builder.set_graph_id("flow")
    builder.set_execution_timeout(300)
    builder.build()("study the market")


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: sorted(v) if k in SETS else _stable(v) for k, v in value.items() if k not in VOLATILE
        }
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def read(store: str, directory: Path) -> dict[str, Any]:
    restored = agent("solo", session=manager(store, directory, "s1"))
    repo = manager(store, directory, "s2").session_repository
    graph_repo = manager(store, directory, "s3").session_repository
    found: dict[str, Any] = _stable(
        {
            "messages": restored.messages,
            "state": restored.state.get(),
            "conversation_manager": restored.conversation_manager.get_state(),
            "swarm": repo.read_multi_agent("s2", "team"),
            "graph": graph_repo.read_multi_agent("s3", "flow"),
        }
    )
    return found


def main() -> None:
    action, store, directory = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    if action == "write":
        write(store, directory)
    else:
        print("RESTORED " + json.dumps(read(store, directory), sort_keys=True))


if __name__ == "__main__":
    main()
