"""``agent-hub memory``: users' facts from the shell (list, get, set, delete, history,
erase). Values are JSON when they parse as JSON, else taken as text."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from hub.core.inputs import parse_time
from schemas.errors import NotFoundError

if TYPE_CHECKING:
    from hub.memory.client import Fact
    from hub.settings import HubSettings

__all__ = ["register"]


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _line(fact: Fact) -> str:
    value = json.dumps(fact.value, ensure_ascii=False)
    return f"{fact.key}\t{value}\t{fact.category or ''}\t{fact.updated_at.isoformat()}"


async def cmd_memory(settings: HubSettings, args: argparse.Namespace) -> int:
    """Users' facts: list, get, set, delete, history, erase."""
    from hub.client import Hub

    async with Hub(settings) as hub:
        m = hub.memory
        if args.action == "list":
            if args.as_of is not None:
                facts = await m.as_of(
                    args.user_id, parse_time(args.as_of, "as_of", shown="--as-of")
                )
            else:
                facts = await m.get_all(args.user_id, category=args.category)
            for fact in facts:
                print(_line(fact))
        elif args.action == "get":
            found = await m.get(args.user_id, args.key)
            if found is None:
                raise NotFoundError(f"user {args.user_id!r} has no fact {args.key!r}")
            print(json.dumps(found.value, ensure_ascii=False))
        elif args.action == "set":
            await m.set(args.user_id, args.key, _value(args.value), category=args.category)
            print(f"{args.user_id}: {args.key} remembered")
        elif args.action == "delete":
            await m.delete(args.user_id, args.key)
            print(f"{args.user_id}: {args.key} forgotten")
        elif args.action == "history":
            for v in await m.history(args.user_id, args.key):
                shown = "(deleted)" if v.deleted else json.dumps(v.value, ensure_ascii=False)
                print(f"{v.at.isoformat()}\t{shown}\t{v.category or ''}")
        else:
            await m.erase(args.user_id)
            print(f"{args.user_id}: every fact and its history erased")
    return 0


def register(sub: Any) -> None:
    """Add ``memory`` to the ``agent-hub`` parser."""
    p = sub.add_parser("memory", help="what agents remember about users, across threads")
    memory = p.add_subparsers(dest="action", required=True)
    a = memory.add_parser("list", help="a user's facts: key, value (JSON), category, updated")
    a.add_argument("user_id")
    a.add_argument("--category")
    a.add_argument("--as-of", help="as they were at this time (ISO 8601 with a timezone)")
    a = memory.add_parser("get", help="one fact's value (JSON)")
    a.add_argument("user_id")
    a.add_argument("key")
    a = memory.add_parser("set", help="remember a fact (the value: JSON, or else text)")
    a.add_argument("user_id")
    a.add_argument("key")
    a.add_argument("value")
    a.add_argument("--category")
    a = memory.add_parser("delete", help="forget one fact (its history stays)")
    a.add_argument("user_id")
    a.add_argument("key")
    a = memory.add_parser("history", help="every value a fact had, oldest first")
    a.add_argument("user_id")
    a.add_argument("key")
    a = memory.add_parser("erase", help="forget everything about a user, history too")
    a.add_argument("user_id")
    p.set_defaults(fn=cmd_memory)
