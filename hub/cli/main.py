"""The ``agent-hub`` command line.

Errors print one line (``agent-hub: error: ...``) and exit 1, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

import anyio
import uvicorn

from hub.cli.data import add_data_commands, cmd_prompts, cmd_runs, cmd_sync
from hub.cli.ops import add_ops_commands, cmd_dlq, cmd_rebuild, cmd_replay, cmd_verify
from hub.settings import HubSettings, load_settings
from schemas.errors import ConfigError, HubError

__all__ = ["main"]

Command = Callable[[HubSettings, argparse.Namespace], Awaitable[int]]

BULK_COMMANDS = ("rebuild", "replay", "verify", "sync")
"""Commands that stream many events through one process (see ``hub.infra.tuning``)."""


class _Server(uvicorn.Server):
    """uvicorn, minus its own signal handling: ``agent-hub`` owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


class _Shutdown:
    """SIGTERM/SIGINT handling for long-running commands, installed before anything starts.

    Until ``running()`` a signal cancels ``scope`` (start-up is abandoned cleanly); after
    it, a signal calls the stop callbacks, which let projectors finish the batch in hand.
    """

    def __init__(self) -> None:
        self.requested = anyio.Event()
        self.scope = anyio.CancelScope()
        self._callbacks: list[Callable[[], None]] = []
        self._running = False

    def running(self, *callbacks: Callable[[], None]) -> None:
        self._running = True
        self._callbacks.extend(callbacks)

    async def watch(self, signals: Any) -> None:
        async for _ in signals:
            self.requested.set()
            if not self._running:
                self.scope.cancel()
            for callback in self._callbacks:
                callback()


async def _with_shutdown(body: Callable[[_Shutdown], Awaitable[int]]) -> int:
    shutdown = _Shutdown()
    code = 0
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with anyio.create_task_group() as tg:
            tg.start_soon(shutdown.watch, signals)
            with shutdown.scope:
                code = await body(shutdown)
            tg.cancel_scope.cancel()
    return code


# ── serving ─────────────────────────────────────────────────────────────────────────────


async def cmd_up(settings: HubSettings, args: argparse.Namespace) -> int:
    """Embedded Postgres, every projector and the HTTP API, until SIGTERM/SIGINT."""
    from hub.infra.embedded import ServerLock

    host, port = (
        args.host or settings.api_host,
        args.port if args.port is not None else settings.api_port,
    )
    lock = ServerLock(settings.home)
    if not lock.acquire({"url": f"http://{host}:{port}"}):
        raise ConfigError(f"another `agent-hub up` is already serving {settings.home.resolve()}")
    try:
        settings = settings.model_copy(update={"run_projectors": "always"})
        return await _serve(settings, host, port, archive=True)
    finally:
        lock.release()


async def cmd_api(settings: HubSettings, args: argparse.Namespace) -> int:
    """The HTTP API only (projectors run elsewhere)."""
    host, port = (
        args.host or settings.api_host,
        args.port if args.port is not None else settings.api_port,
    )
    return await _serve(settings.model_copy(update={"run_projectors": "never"}), host, port)


async def _serve(settings: HubSettings, host: str, port: int, *, archive: bool = False) -> int:
    from hub.client import Hub
    from hub.http.app import create_app

    sock = _bind(host, port)

    async def body(shutdown: _Shutdown) -> int:
        async with Hub(settings, archive=archive) as hub:
            config = uvicorn.Config(
                create_app(hub), log_level="warning", lifespan="off", access_log=False
            )
            server = _Server(config)

            def stop() -> None:
                server.should_exit = True
                hub.stop_projectors()

            shutdown.running(stop)
            url = f"http://{host}:{sock.getsockname()[1]}"
            print(_banner(hub, url), file=sys.stderr, flush=True)
            await server.serve(sockets=[sock])
        return 0

    try:
        code = await _with_shutdown(body)
    finally:
        sock.close()
    print("agent-hub: stopped", file=sys.stderr, flush=True)
    return code


def _banner(hub: Any, url: str) -> str:
    s = hub.settings
    database = f"embedded in {(s.home / 'pg').resolve()}" if s.embedded_database else "external"
    log_kind = hub.runtime.log.name
    archive = f", archive: {s.archive}" if hub.archiver is not None else ""
    return (
        f"agent-hub: serving {url} (health: {url}/healthz, projections: {url}/v1/projections)\n"
        f"agent-hub: log: {log_kind}, database: {database}{archive}, "
        f"projectors: {len(hub.projectors)}; Ctrl-C or SIGTERM to stop"
    )


async def cmd_project(settings: HubSettings, args: argparse.Namespace) -> int:
    """Projectors only, until SIGTERM/SIGINT (each finishes its batch in hand)."""
    from hub.client import Hub

    async def body(shutdown: _Shutdown) -> int:
        async with Hub(settings.model_copy(update={"run_projectors": "always"})) as hub:
            shutdown.running(hub.stop_projectors)
            names = ", ".join(p.name for p in hub.projectors)
            print(f"agent-hub: projecting {names}; SIGTERM to stop", file=sys.stderr, flush=True)
            await shutdown.requested.wait()
        return 0

    return await _with_shutdown(body)


async def cmd_archive(settings: HubSettings, args: argparse.Namespace) -> int:
    """The archiver only: every topic into HUB_ARCHIVE_URL, until SIGTERM/SIGINT."""
    from hub.client import Hub

    async def body(shutdown: _Shutdown) -> int:
        async with Hub(
            settings.model_copy(update={"run_projectors": "never"}), archive=True
        ) as hub:
            shutdown.running(hub.stop_projectors)
            print(
                f"agent-hub: archiving to {settings.archive}; SIGTERM to stop",
                file=sys.stderr,
                flush=True,
            )
            await shutdown.requested.wait()
        return 0

    return await _with_shutdown(body)


# ── inspecting ──────────────────────────────────────────────────────────────────────────


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
    return 0


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


# ── plumbing ────────────────────────────────────────────────────────────────────────────


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agent-hub", description="Agent Hub: event-sourced memory for AI agents."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    for name, fn, text in (
        ("up", cmd_up, "run embedded Postgres, every projector and the HTTP API"),
        ("api", cmd_api, "run only the HTTP API"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("--host", help="address to listen on (default: HUB_API_HOST, 127.0.0.1)")
        p.add_argument("--port", type=int, help="port to listen on (default: HUB_API_PORT, 8000)")
        p.set_defaults(fn=fn)

    p = sub.add_parser("project", help="run only the projectors")
    p.set_defaults(fn=cmd_project)

    p = sub.add_parser("archive", help="run only the archiver (the log into HUB_ARCHIVE_URL)")
    p.set_defaults(fn=cmd_archive)

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
    a.add_argument("--limit", type=int, default=100)
    p.set_defaults(fn=cmd_agents)

    p = sub.add_parser("threads", help="conversation threads")
    threads = p.add_subparsers(dest="action", required=True)
    a = threads.add_parser("list", help="list threads, most recent first")
    a.add_argument("--agent")
    a.add_argument("--user")
    a.add_argument("--archived", action="store_true", help="list archived threads")
    a.add_argument("--limit", type=int, default=50)
    a = threads.add_parser("show", help="a thread's newest messages")
    a.add_argument("thread_id")
    a.add_argument("--limit", type=int, default=50)
    a = threads.add_parser("fork", help="fork a thread (at a message, or at its head)")
    a.add_argument("thread_id")
    a.add_argument("--at", help="the last message id the fork keeps")
    a.add_argument("--title")
    a = threads.add_parser("search", help="full-text search over messages")
    a.add_argument("query")
    a.add_argument("--user")
    a.add_argument("--agent")
    p.set_defaults(fn=cmd_threads)

    add_data_commands(sub, {"runs": cmd_runs, "prompts": cmd_prompts, "sync": cmd_sync})
    add_ops_commands(
        sub,
        {"replay": cmd_replay, "rebuild": cmd_rebuild, "dlq": cmd_dlq, "verify": cmd_verify},
    )

    p = sub.add_parser("schemas", help="event contracts: check or release")
    p.add_argument("action", choices=["check", "release"])
    p.add_argument("--mode", choices=["full", "backward", "forward"], default="full")
    p.set_defaults(fn=cmd_schemas)
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
        settings = load_settings()
        from hub.infra.logs import configure_logging

        long_running = args.command in ("up", "api", "project", "archive")
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
