"""``agent-hub runs|prompts|sync``: runs, prompts and the offline spool from the shell."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hub.cli.args import positive_int
from hub.core.inputs import parse_time
from schemas.errors import HubError, InputError, NotFoundError

if TYPE_CHECKING:
    from hub.settings import HubSettings

__all__ = ["register"]


def _since(value: str | None) -> datetime | None:
    return None if value is None else parse_time(value, "since", shown="--since")


async def cmd_runs(settings: HubSettings, args: argparse.Namespace) -> int:
    """Runs: list, show one, or aggregate a metric."""
    from hub.client import Hub

    async with Hub(settings) as hub:
        if args.action == "list":
            for r in await hub.runs.list(
                agent_id=args.agent, status=args.status, since=_since(args.since), limit=args.limit
            ):
                took = f"{r.duration_s:.3f}s" if r.duration_s is not None else "-"
                print(f"{r.run_id}\t{r.agent_id}\t{r.status}\t{r.started_at.isoformat()}\t{took}")
        elif args.action == "show":
            detail = await hub.runs.get(args.run_id)
            if detail is None:
                raise NotFoundError(f"no run {args.run_id!r}")
            print(detail.model_dump_json(indent=2))
        else:
            rows = await hub.runs.aggregate(
                args.metric, agent_id=args.agent, group_by=args.by, since=_since(args.since)
            )
            print("group\tcount\tmean\tp50\tp95")
            for row in rows:
                print(
                    f"{row.group or 'all'}\t{row.count}\t{row.mean:.6g}\t{row.p50:.6g}\t"
                    f"{row.p95:.6g}"
                )
    return 0


def _content(args: argparse.Namespace) -> str:
    if (args.file is None) == (args.content is None):
        raise InputError("give the prompt with exactly one of --file or --content")
    if args.content is not None:
        return str(args.content)
    try:
        return Path(args.file).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"--file: cannot read {args.file}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InputError(f"--file: {args.file} is not UTF-8 text") from None


async def cmd_prompts(settings: HubSettings, args: argparse.Namespace) -> int:
    """Prompts: versions, show, set, rollback, diff."""
    from hub.client import Hub

    async with Hub(settings) as hub:
        p = hub.prompts
        if args.action == "versions":
            versions = await p.list_versions(args.name)
            if not versions:
                raise NotFoundError(f"no prompt {args.name!r}")
            for v in versions:
                labels = ",".join(v.labels)
                print(f"{v.version}\t{v.created_at.isoformat()}\t{labels}\t{v.note or ''}")
        elif args.action == "show":
            found = (
                await p.get_version(args.name, args.version)
                if args.version
                else await p.get(args.name, label=args.label)
            )
            if found is None:
                raise NotFoundError(f"prompt {args.name!r} has no such version or label")
            sys.stdout.write(
                found.content if found.content.endswith("\n") else found.content + "\n"
            )
        elif args.action == "set":
            created = await p.set(
                args.name,
                _content(args),
                args.version,
                make_current=not args.no_current,
                note=args.note,
            )
            print(f"{args.name}@{created.version}\t{','.join(created.labels)}")
        elif args.action == "rollback":
            await p.rollback(args.name, args.version, label=args.label)
            print(f"{args.name}: {args.label} -> {args.version}")
        else:
            sys.stdout.write(await p.diff(args.name, args.a, args.b))
    return 0


async def cmd_sync(settings: HubSettings, args: argparse.Namespace) -> int:
    """Forward events spooled while the log was unreachable."""
    from hub.infra.spool import Spool
    from hub.runtime import Runtime

    waiting = Spool.of_home(settings.home).count()
    if waiting == 0:
        print(json.dumps({"forwarded": 0, "waiting": 0}) if args.json else "nothing to sync")
        return 0
    if settings.url is not None:  # remote mode: through the hub's API
        from hub.client import Hub

        async with Hub(settings) as hub:
            sent = await hub.context.producer.forward_spool(max_records=args.batch)
            left = hub.runtime.spool.count()
    else:
        async with Runtime(settings) as runtime:
            sent = await runtime.producer.forward_spool(max_records=args.batch)
            left = runtime.spool.count()
    report: dict[str, Any] = {"forwarded": sent, "waiting": left}
    print(json.dumps(report) if args.json else f"forwarded {sent} events ({left} still waiting)")
    if left:
        raise HubError(f"{left} events still wait in the spool (another sync is running?)")
    return 0


def register(sub: Any) -> None:
    """Add ``runs``, ``prompts`` and ``sync`` to the ``agent-hub`` parser."""
    p = sub.add_parser("runs", help="agent runs, their metrics and artifacts")
    runs = p.add_subparsers(dest="action", required=True)
    a = runs.add_parser("list", help="runs, newest first")
    a.add_argument("--agent")
    a.add_argument("--status", choices=["running", "success", "failed", "cancelled"])
    a.add_argument("--since", help="ISO time with a timezone")
    a.add_argument("--limit", type=positive_int, default=50)
    a = runs.add_parser("show", help="one run with its metrics and artifacts (JSON)")
    a.add_argument("run_id")
    a = runs.add_parser("aggregate", help="count, mean, p50, p95 of a metric")
    a.add_argument("metric")
    a.add_argument("--agent")
    a.add_argument("--by", choices=["day", "prompt_version"])
    a.add_argument("--since", help="ISO time with a timezone")
    p.set_defaults(fn=cmd_runs)

    p = sub.add_parser("prompts", help="versioned prompts")
    prompts = p.add_subparsers(dest="action", required=True)
    a = prompts.add_parser("versions", help="every version, oldest first, with labels")
    a.add_argument("name")
    a = prompts.add_parser("show", help="the content of a label (default current) or version")
    a.add_argument("name")
    a.add_argument("--label", default="current")
    a.add_argument("--version")
    a = prompts.add_parser("set", help="add a version (and make it current)")
    a.add_argument("name")
    a.add_argument("version")
    a.add_argument("--file", help="read the prompt from this file")
    a.add_argument("--content", help="the prompt text")
    a.add_argument("--note")
    a.add_argument("--no-current", action="store_true", help="do not move `current`")
    a = prompts.add_parser("rollback", help="point a label (default current) at a version")
    a.add_argument("name")
    a.add_argument("version")
    a.add_argument("--label", default="current")
    a = prompts.add_parser("diff", help="a unified diff between two versions")
    a.add_argument("name")
    a.add_argument("a")
    a.add_argument("b")
    p.set_defaults(fn=cmd_prompts)

    p = sub.add_parser("sync", help="forward events spooled while the log was unreachable")
    p.add_argument("--batch", type=positive_int, default=1000, help="records per append")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(fn=cmd_sync)
