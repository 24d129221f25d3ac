"""Strands session benchmark (issue 14), all in one run.

    python -m tests.bench.strands [--sessions 200] [--turns 2]

``--sessions`` real ``strands.Agent``\\s (a scripted model: no network, no LLM), each in
a session of its own, each answering ``--turns`` prompts: Strands calls its session
manager to create the session and the agent, append every message and sync the agent
after each turn. Timed with ``HubSessionManager`` on embedded defaults (the Postgres log,
the projectors in this process, as ``agent-hub`` runs with nothing configured) against
Strands' own ``FileSessionManager`` on the same disk and ``S3SessionManager`` on moto's S3
server (a real HTTP endpoint on 127.0.0.1). Then a restore: a new Agent per session reads
it back; the restored conversations must be the same for all of them.
Ratio = the other store's time / the hub's (above 1: the hub is faster). Goals: >= 1
against the file store, >= 3 against S3.

Also timed, on the hub's own database and through the same thread hop: the floor
(``tests.bench.strands_floor``), a working store that makes each Strands call one Postgres
statement and does nothing else. The file store's ratio to the floor is the most any
store that commits every call to Postgres from here could reach.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from strands import Agent
from strands.session.file_session_manager import FileSessionManager
from strands.session.repository_session_manager import RepositorySessionManager

from hub.bridge import SyncHub
from hub.infra.logs import configure_logging
from hub.integrations.strands import HubSessionManager
from hub.settings import HubSettings
from tests.bench.strands_floor import TableRepository, create_floor_table
from tests.support.scripted_model import ScriptedModel

Manager = Callable[[str], Any]


def conversations(sessions: int, turns: int, manager: Manager) -> float:
    started = time.perf_counter()
    for n in range(sessions):
        agent = Agent(
            model=ScriptedModel(*(f"answer {t}" for t in range(turns))),
            agent_id="assistant",
            session_manager=manager(f"session-{n}"),
            callback_handler=None,
        )
        for t in range(turns):
            agent(f"question {t} of session {n}")
    return time.perf_counter() - started


def restores(sessions: int, manager: Manager) -> tuple[float, list[Any]]:
    started = time.perf_counter()
    restored = []
    for n in range(sessions):
        agent = Agent(
            model=ScriptedModel(),
            agent_id="assistant",
            session_manager=manager(f"session-{n}"),
            callback_handler=None,
        )
        # every run draws its own tracking ids: the rest must be equal
        restored.append(
            [{k: v for k, v in m.items() if k != "tracking_id"} for m in agent.messages]
        )
    return time.perf_counter() - started, restored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--turns", type=int, default=2)
    args = parser.parse_args()
    configure_logging("warning")
    home = Path(tempfile.mkdtemp(prefix="hub-bench-strands-"))
    hub = SyncHub(HubSettings(home=home / "hub", run_projectors="always")).start()
    try:  # embedded defaults: the Postgres under home, for the log and the read models
        ours = conversations(args.sessions, args.turns, lambda s: HubSessionManager(s, hub=hub))
        ours_restore, ours_seen = restores(args.sessions, lambda s: HubSessionManager(s, hub=hub))
        create_floor_table(hub)
        floor_repository = TableRepository(hub)
        floor_manager: Manager = lambda s: RepositorySessionManager(  # noqa: E731
            session_id=s, session_repository=floor_repository
        )
        floor = conversations(args.sessions, args.turns, floor_manager)
        floor_restore, floor_seen = restores(args.sessions, floor_manager)
    finally:
        hub.stop()
    files = str(home / "strands")
    file_manager: Manager = lambda s: FileSessionManager(s, storage_dir=files)  # noqa: E731
    theirs = conversations(args.sessions, args.turns, file_manager)
    theirs_restore, theirs_seen = restores(args.sessions, file_manager)
    assert ours_seen == theirs_seen, "the hub restored other conversations than the file store"
    assert floor_seen == theirs_seen, "the floor restored other conversations than the file store"
    s3, s3_restore = s3_runs(args.sessions, args.turns, theirs_seen)
    n = args.sessions
    print(f"Strands sessions: {n} agents x {args.turns} turns, then a restore of each")
    for label, a, b, c, f in (
        ("conversations", ours, theirs, s3, floor),
        ("restores", ours_restore, theirs_restore, s3_restore, floor_restore),
    ):
        print(
            f"  {label:14} HubSessionManager {a:6.2f}s ({1000 * a / n:5.1f} ms/session)   "
            f"FileSessionManager {b:6.2f}s: ratio {b / a:5.2f} (goal >= 1)   "
            f"S3SessionManager {c:6.2f}s: ratio {c / a:5.2f} (goal >= 3)"
        )
        print(
            f"  {'':14} floor (one Postgres statement per call) {f:6.2f}s: the file store's "
            f"ratio to it {b / f:5.2f}, the hub's time over it {a / f:5.2f}"
        )


def s3_runs(sessions: int, turns: int, expected: list[Any]) -> tuple[float, float]:
    """Strands' ``S3SessionManager`` on moto's S3 server."""
    import os

    import boto3  # type: ignore[import-untyped]
    from strands.session.s3_session_manager import S3SessionManager

    from tests.support.moto import start_moto

    server, url = start_moto()
    try:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            os.environ.setdefault(name, "bench")
        boto3.client("s3", endpoint_url=url, region_name="us-east-1").create_bucket(
            Bucket="strands"
        )

        def manager(session_id: str) -> Any:
            return S3SessionManager(
                session_id, bucket="strands", endpoint_url=url, region_name="us-east-1"
            )

        written = conversations(sessions, turns, manager)
        restore, seen = restores(sessions, manager)
        assert seen == expected, "S3SessionManager restored other conversations"
        return written, restore
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
