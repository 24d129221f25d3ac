"""``agent-hub replay``: operating on history from the shell."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any

from hub.settings import HubSettings
from schemas.errors import InputError

__all__ = ["add_ops_commands", "cmd_replay", "parse_start"]


def parse_start(value: str) -> str | int | datetime:
    """``earliest``, an offset, or an ISO time with a timezone."""
    if value == "earliest":
        return value
    if value.isdigit():
        return int(value)
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"--from: use earliest, an offset or an ISO time, not {value!r}") from None
    if at.tzinfo is None:
        raise InputError("--from: add a timezone, such as 2025-01-01T00:00+00:00")
    return at


async def cmd_replay(settings: HubSettings, args: argparse.Namespace) -> int:
    """Replay a projection from a point (archive first, then the log)."""
    from hub.replay import Progress, replay
    from hub.runtime import Runtime

    start = parse_start(args.start)

    def report(p: Progress) -> None:
        print(p.line(f"replay {args.projection}"), file=sys.stderr, flush=True)

    async with Runtime(settings) as runtime:
        done = await replay(runtime, args.projection, start, reset=args.reset, report=report)
    print(f"{args.projection}: replayed {done.done:,} events, caught up")
    return 0


def add_ops_commands(sub: Any, commands: dict[str, Any]) -> None:
    p = sub.add_parser(
        "replay", help="replay a projection from a point in history (archive, then log)"
    )
    p.add_argument("--projection", required=True, help="the projection's name")
    p.add_argument(
        "--from", dest="start", default="earliest", help="earliest, an offset, or an ISO time"
    )
    p.add_argument(
        "--reset",
        action="store_true",
        help="empty the projection first and apply everything again",
    )
    p.set_defaults(fn=commands["replay"])
