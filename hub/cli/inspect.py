"""Commands that look at the hub: ``status``, ``agents``, ``threads`` and ``schemas``."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from hub.cli.args import positive_int
from schemas.errors import HubError

if TYPE_CHECKING:
    from hub.settings import HubSettings

__all__ = ["register"]


async def cmd_status(settings: HubSettings, args: argparse.Namespace) -> int:
    """Each projection's version, state, positions and lag."""
    from hub.infra.db import redact
    from hub.ops.status import format_status, projection_status
    from hub.runtime import Runtime

    async with Runtime(settings) as runtime:
        statuses = await projection_status(runtime)
        info = {"log": runtime.log.name, "database": redact(runtime.database_url or "")}
        if args.json:
            print(json.dumps({**info, "projections": [s.model_dump() for s in statuses]}, indent=2))
        else:
            print(format_status(statuses, info))
    return 1 if any(s.errors for s in statuses) else 0


async def cmd_agents(settings: HubSettings, args: argparse.Namespace) -> int:
    """The agent registry."""
    from hub.client import Hub

    async with Hub(settings) as hub:
        if args.action == "register":
            metadata = json.loads(args.metadata) if args.metadata else None
            result = await hub.registry.register(
                args.agent_id,
                description=args.description,
                tags=args.tag if args.tag else None,
                metadata=metadata,
            )
            print(f"{args.agent_id}: {result.value}")
        elif args.action == "retire":
            retired = await hub.registry.retire(args.agent_id, reason=args.reason)
            print(f"{args.agent_id}: {'retired' if retired else 'not active (nothing done)'}")
        elif args.action == "show":
            agent = await hub.registry.get(args.agent_id)
            if agent is None:
                raise HubError(f"no agent {args.agent_id!r}")
            print(agent.model_dump_json(indent=2))
        else:
            for agent in await hub.registry.list(
                tag=args.tag, status=args.status, limit=args.limit
            ):
                tags = ",".join(agent.tags)
                print(f"{agent.agent_id}\t{agent.status}\t{tags}\t{agent.description}")
    return 0


async def cmd_threads(settings: HubSettings, args: argparse.Namespace) -> int:
    """Conversation threads."""
    from hub.client import Hub

    async with Hub(settings) as hub:
        s = hub.sessions
        if args.action == "list":
            page = await s.list(
                agent_id=args.agent, user_id=args.user, archived=args.archived, limit=args.limit
            )
            for t in page.threads:
                state = "archived" if t.archived else "active"
                print(f"{t.thread_id}\t{t.message_count}\t{state}\t{t.title or ''}")
        elif args.action == "show":
            info = await s.get(args.thread_id)
            if info is None:
                raise HubError(f"no thread {args.thread_id!r}")
            print(f"# {info.title or info.thread_id}  ({info.message_count} messages)")
            for m in await s.messages(args.thread_id, limit=args.limit):
                print(f"[{m.seq}] {m.role}: {m.text}")
        elif args.action == "fork":
            fork = await s.fork(args.thread_id, args.at, title=args.title)
            print(fork.thread_id)
        else:
            for hit in await s.search(args.query, user_id=args.user, agent_id=args.agent):
                print(f"{hit.thread_id}\t{hit.seq}\t{hit.snippet}")
    return 0


async def cmd_schemas(settings: HubSettings, args: argparse.Namespace) -> int:
    """Check the event contracts, or release compatible changes."""
    from schemas.derive import drift
    from schemas.events import EVENT_TYPES
    from schemas.registry import SchemaRegistry

    registry = SchemaRegistry()
    if args.action == "release":
        released = registry.release(mode=args.mode)
        print("released: " + (", ".join(released) if released else "nothing new"))
        return 0
    problems = registry.problems(mode=args.mode)
    problems += [
        p for name, cls in EVENT_TYPES.items() for p in drift(cls, registry.current(name).schema)
    ]
    for problem in problems:
        print(problem)
    print(f"{len(registry.names)} schemas, {len(problems)} problem(s)")
    return 1 if problems else 0


def register(sub: Any) -> None:
    """Add the inspecting commands to the ``agent-hub`` parser."""
    p = sub.add_parser("status", help="projections: versions, states, positions, lag")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(fn=cmd_status)

    p = sub.add_parser("agents", help="the agent registry")
    agents = p.add_subparsers(dest="action", required=True)
    a = agents.add_parser("register", help="register an agent or update it")
    a.add_argument("agent_id")
    a.add_argument("--description")
    a.add_argument("--tag", action="append", help="a tag (repeat for more)")
    a.add_argument("--metadata", help="a JSON object")
    a = agents.add_parser("retire", help="retire an agent")
    a.add_argument("agent_id")
    a.add_argument("--reason")
    a = agents.add_parser("show", help="show one agent")
    a.add_argument("agent_id")
    a = agents.add_parser("list", help="list agents")
    a.add_argument("--tag")
    a.add_argument("--status", choices=["active", "retired"])
    a.add_argument("--limit", type=positive_int, default=100)
    p.set_defaults(fn=cmd_agents)

    p = sub.add_parser("threads", help="conversation threads")
    threads = p.add_subparsers(dest="action", required=True)
    a = threads.add_parser("list", help="list threads, most recent first")
    a.add_argument("--agent")
    a.add_argument("--user")
    a.add_argument("--archived", action="store_true", help="list archived threads")
    a.add_argument("--limit", type=positive_int, default=50)
    a = threads.add_parser("show", help="a thread's newest messages")
    a.add_argument("thread_id")
    a.add_argument("--limit", type=positive_int, default=50)
    a = threads.add_parser("fork", help="fork a thread (at a message, or at its head)")
    a.add_argument("thread_id")
    a.add_argument("--at", help="the last message id the fork keeps")
    a.add_argument("--title")
    a = threads.add_parser("search", help="full-text search over messages")
    a.add_argument("query")
    a.add_argument("--user")
    a.add_argument("--agent")
    p.set_defaults(fn=cmd_threads)

    p = sub.add_parser("schemas", help="event contracts: check or release")
    p.add_argument("action", choices=["check", "release"])
    p.add_argument("--mode", choices=["full", "backward", "forward"], default="full")
    p.set_defaults(fn=cmd_schemas)
