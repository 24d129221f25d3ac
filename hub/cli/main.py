"""``agent-hub``: the command line. Each module of :mod:`hub.cli` registers its own
commands; this one assembles the parser, loads settings and runs the chosen command."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import anyio

from hub.cli import data, inspect, keys, memory, ops, serve
from schemas.errors import HubError

if TYPE_CHECKING:
    from hub.settings import HubSettings

__all__ = ["main"]

Command = Callable[["HubSettings", argparse.Namespace], Awaitable[int]]

LONG_RUNNING = ("up", "api", "project", "archive")
BULK_COMMANDS = ("rebuild", "replay", "verify", "sync")
"""Commands that stream many events through one process (see ``hub.infra.tuning``)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agent-hub", description="Agent Hub: event-sourced memory for AI agents."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (serve, inspect, data, memory, ops, keys):
        module.register(sub)
    return parser


def _one_line(message: str) -> str:
    return " ".join(message.split())


def _hub_error(exc: BaseException) -> HubError | None:
    """The HubError inside ``exc`` (task groups wrap errors in exception groups)."""
    if isinstance(exc, HubError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _hub_error(inner)
            if found is not None:
                return found
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``agent-hub`` console script."""
    args = _parser().parse_args(argv)
    try:
        from hub.settings import load_settings

        settings = load_settings()
        from hub.infra.logs import configure_logging

        long_running = args.command in LONG_RUNNING
        configure_logging(
            settings.log_level, json=settings.log_json, quiet_drivers=not long_running
        )
        if long_running or args.command in BULK_COMMANDS:
            from hub.infra.tuning import tune_gc

            tune_gc()
        fn: Command = args.fn
        code: int = anyio.run(fn, settings, args)
        return code
    except (HubError, BaseExceptionGroup) as exc:
        error = _hub_error(exc)
        if error is None:
            raise
        print(f"agent-hub: error: {_one_line(str(error))}", file=sys.stderr)
        return 1
    except json.JSONDecodeError as exc:
        print(f"agent-hub: error: invalid JSON: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
