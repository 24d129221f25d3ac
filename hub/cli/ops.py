"""``agent-hub replay|rebuild|dlq|verify``: operating on history from the shell (direct,
or through the hub's API in remote mode: :mod:`hub.cli.ops_remote`)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

import anyio

from hub.cli.args import non_negative_seconds, workers
from schemas.errors import InputError

if TYPE_CHECKING:
    from hub.settings import HubSettings

__all__ = ["register"]


async def cmd_replay(settings: HubSettings, args: argparse.Namespace) -> int:
    """Replay a projection from a point (archive first, then the log)."""
    from hub.ops.replay import Progress, parse_start, replay
    from hub.runtime import Runtime

    start = parse_start(args.start)
    if settings.url:  # remote mode: a job on that hub
        from hub.cli.ops_remote import remote_job

        spec = {"kind": "replay", "projection": args.projection, "start": args.start}
        spec |= {"reset": True} if args.reset else {}
        result = await remote_job(settings, spec, f"replay {args.projection}")
        print(f"{args.projection}: replayed {result['events']:,} events, caught up")
        return 0

    def report(p: Progress) -> None:
        print(p.line(f"replay {args.projection}"), file=sys.stderr, flush=True)

    async with Runtime(settings) as runtime:
        done = await replay(runtime, args.projection, start, reset=args.reset, report=report)
    print(f"{args.projection}: replayed {done.done:,} events, caught up")
    return 0


async def cmd_rebuild(settings: HubSettings, args: argparse.Namespace) -> int:
    """Rebuild a projection beside the live one, then swap it in (zero downtime)."""
    from hub.ops.rebuild import drop_retired, rebuild
    from hub.ops.replay import Progress
    from hub.runtime import Runtime

    if settings.url:  # remote mode: a job on that hub; its projector drops the old tables
        from hub.cli.ops_remote import remote_job

        if args.wait:
            raise InputError("--wait: not in remote mode (the hub drops the old tables itself)")

        spec = {"kind": "rebuild", "projection": args.name, "grace_s": args.grace}
        spec["workers"] = args.workers
        result = await remote_job(settings, spec, f"rebuild {args.name}")
        print(f"{args.name}: rebuilt from {result['events']:,} events and swapped in")
        return 0

    def report(p: Progress) -> None:
        print(p.line(f"rebuild {args.name}"), file=sys.stderr, flush=True)

    async with Runtime(settings) as runtime:
        done = await rebuild(
            runtime, args.name, report=report, grace_s=args.grace, workers=args.workers
        )
        print(f"{args.name}: rebuilt from {done.done:,} events and swapped in", flush=True)
        if args.grace > 0 and not args.wait:
            print(
                f"{args.name}: the old tables are kept {args.grace:g}s for readers still on "
                "them; the projection's running projector drops them after that (or give "
                "--wait to stay until they are dropped)",
                file=sys.stderr,
            )
            return 0
        if args.grace > 0:
            print(f"{args.name}: dropping the old tables in {args.grace:g}s", file=sys.stderr)
            await anyio.sleep(args.grace)
        await drop_retired(runtime, args.name)
    return 0


async def cmd_dlq(settings: HubSettings, args: argparse.Namespace) -> int:
    """Dead letters: list, show one, replay into their projection."""
    from hub.ops.dead_letters import dead_letters, get_dead_letter, replay_dead_letter
    from hub.runtime import Runtime

    if settings.url:  # remote mode: that hub's /v1/dead-letters
        from hub.cli.ops_remote import remote_dlq

        return await remote_dlq(settings, args)

    async with Runtime(settings) as runtime:
        if args.action == "list":
            async for dead in dead_letters(runtime, args.consumer):
                s = dead.summary()
                mark = "replayed" if s["replayed"] else "pending"
                reason = " ".join(str(s["reason"]).split())  # one line per dead letter
                print(f"{s['id']}\t{mark}\t{s['consumer']}\t{s['event_type']}\t{reason}")
            return 0
        if args.action == "show":
            dead = await get_dead_letter(runtime, args.id)
            info = dead.summary()
            info["event"] = dead.event.model_dump(mode="json") if dead.event else None
            print(json.dumps(info, indent=2, default=str))
            return 0
        if args.all:
            targets = [d async for d in dead_letters(runtime, args.consumer) if not d.replayed]
        elif args.id:
            targets = [await get_dead_letter(runtime, args.id)]
        else:
            raise InputError("dlq replay: give a dead-letter id or --all")
        failed = 0
        for dead in targets:
            result = await replay_dead_letter(runtime, dead)
            failed += result.outcome == "failed"
            print(f"{result.id}\t{result.outcome}\t{result.detail}".rstrip())
    return 1 if failed else 0


async def cmd_verify(settings: HubSettings, args: argparse.Namespace) -> int:
    """Rebuild a projection into a scratch schema and compare every table's checksum."""
    from hub.ops.replay import Progress
    from hub.ops.verify import TableCheck, verify
    from hub.runtime import Runtime

    def report(p: Progress) -> None:
        print(p.line(f"verify {args.name}"), file=sys.stderr, flush=True)

    if settings.url:  # remote mode: a job on that hub
        from hub.cli.ops_remote import remote_job

        spec = {"kind": "verify", "projection": args.name}
        result = await remote_job(settings, spec, f"verify {args.name}")
        checks = [
            TableCheck(t["table"], t["live"], t["rebuilt"], t["rows"]) for t in result["tables"]
        ]
    else:
        async with Runtime(settings) as runtime:
            checks = await verify(runtime, args.name, report=report)
    for c in checks:
        print(f"{c.table}\t{c.rows}\t{'same' if c.same else 'DIFFERENT'}\t{c.live[:12]}")
    return 0 if all(c.same for c in checks) else 1


def register(sub: Any) -> None:
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
    p.set_defaults(fn=cmd_replay)

    p = sub.add_parser("rebuild", help="rebuild a projection beside the live one, then swap it in")
    p.add_argument("name", help="the projection's name")
    p.add_argument(
        "--grace",
        type=non_negative_seconds,
        default=60.0,
        help="seconds to keep the old tables after the swap (default 60)",
    )
    p.add_argument(
        "--wait",
        action="store_true",
        help="stay until the old tables are dropped (else the running projector drops them)",
    )
    p.add_argument(
        "--workers",
        type=workers,
        default=1,
        help="processes sharing the work by partition: a number, or 'auto' for one per "
        "CPU core (default 1)",
    )
    p.set_defaults(fn=cmd_rebuild)

    p = sub.add_parser("dlq", help="dead letters: list, show, replay into their projection")
    dlq = p.add_subparsers(dest="action", required=True)
    a = dlq.add_parser("list", help="every dead letter, oldest first")
    a.add_argument("--consumer", help="only this consumer's (e.g. proj_registry_v1)")
    a = dlq.add_parser("show", help="one dead letter with its original event (JSON)")
    a.add_argument("id", help="partition:offset, as listed")
    a = dlq.add_parser("replay", help="apply dead letters to their projection (once)")
    a.add_argument("id", nargs="?", help="partition:offset, as listed")
    a.add_argument("--all", action="store_true", help="every pending dead letter")
    a.add_argument("--consumer", help="with --all: only this consumer's")
    p.set_defaults(fn=cmd_dlq)

    p = sub.add_parser(
        "verify", help="rebuild a projection aside and compare table checksums (determinism)"
    )
    p.add_argument("name", help="the projection's name")
    p.set_defaults(fn=cmd_verify)
