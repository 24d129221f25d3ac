"""Long-running commands: ``up``, ``api``, ``project`` and ``archive``, with SIGTERM and
SIGINT handled by ``agent-hub`` (projectors finish the batch in hand). uvicorn is imported
only when serving, so the rest of the command line starts fast."""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import Process

from hub.cli.args import positive_int
from hub.cli.args import workers as process_count
from hub.infra.child import wait_for_lifeline_end
from schemas.errors import ConfigError, HubError

if TYPE_CHECKING:
    from hub.settings import HubSettings

__all__ = ["register"]


def _server(config: Any) -> Any:
    """uvicorn, minus its own signal handling: ``agent-hub`` owns SIGTERM and SIGINT."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return Server(config)


def _bind(host: str, port: int, *, shared: bool = False) -> socket.socket:
    """A listening socket; ``shared`` ones (SO_REUSEPORT) may be bound again to the same
    address, and the kernel spreads new connections evenly across them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
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
            self.request()

    def request(self) -> None:
        """Stop, as a signal asks."""
        self.requested.set()
        if not self._running:
            self.scope.cancel()
        for callback in self._callbacks:
            callback()


async def _stop_at_lifeline_end(shutdown: _Shutdown) -> None:
    """Stop once the hub that started this process stopped or died."""
    await wait_for_lifeline_end()
    shutdown.request()


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


def _direct(settings: HubSettings) -> HubSettings:
    """A server is the hub itself: it never runs in remote mode, whatever ``HUB_URL``
    says (a client's setting, perhaps in the same ``.env``)."""
    return settings.model_copy(update={"url": None})


def _projecting(settings: HubSettings) -> HubSettings:
    """A process that runs the projectors for others: it applies what it has at once, as
    its readers wait in other processes (the embedded projectors' linger is for an
    application that writes and reads in its own process)."""
    return _direct(settings).model_copy(
        update={"run_projectors": "always", "embedded_projector_linger_ms": 0}
    )


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
        settings = _projecting(settings)
        return await _serve(
            settings, host, port, archive=True, workers=args.workers, projectors=args.projectors
        )
    finally:
        lock.release()


async def cmd_api(settings: HubSettings, args: argparse.Namespace) -> int:
    """The HTTP API only (projectors run elsewhere)."""
    host, port = (
        args.host or settings.api_host,
        args.port if args.port is not None else settings.api_port,
    )
    settings = _direct(settings).model_copy(update={"run_projectors": "never"})
    return await _serve(settings, host, port, workers=args.workers)


async def _serve(
    settings: HubSettings,
    host: str,
    port: int,
    *,
    archive: bool = False,
    workers: int = 1,
    projectors: int = 1,
) -> int:
    from hub.client import Hub

    sock = _bind(host, port, shared=workers > 1)

    async def body(shutdown: _Shutdown) -> int:
        async with Hub(settings, archive=archive) as hub:
            url = f"http://{host}:{sock.getsockname()[1]}"
            keys = await _keys_in_force(hub, host)
            banner = _banner(hub, url, workers, projectors) + "\n" + keys
            async with _projector_processes(hub, projectors - 1) as helpers:
                if workers > 1:
                    await _serve_in_workers(hub, sock, workers, shutdown, banner, helpers)
                else:
                    await _serve_here(hub, sock, shutdown, banner, helpers)
        return 0

    try:
        code = await _with_shutdown(body)
    finally:
        sock.close()
    print("agent-hub: stopped", file=sys.stderr, flush=True)
    return code


def _helper_env(hub: Any) -> dict[str, str]:
    """The environment of a helper process: this server's settings, its database."""
    env: dict[str, str] = hub.child_env() | {"HUB_RUN_PROJECTORS": "never"}
    return env


@contextlib.asynccontextmanager
async def _projector_processes(hub: Any, count: int) -> AsyncIterator[list[Process]]:
    """``count`` ``agent-hub project`` processes beside this one's projectors: they join
    every projection's consumer group, so the partitions are shared out among them all.
    On exit they get SIGTERM (each finishes its batch in hand)."""
    procs: list[Process] = []
    try:
        for _ in range(count):
            procs.append(
                await anyio.open_process(
                    [sys.executable, "-m", "hub.cli", "project"],
                    env=_helper_env(hub),
                    stdin=None,
                    stdout=None,
                    stderr=None,
                )
            )
        yield procs
    finally:
        await _stop_processes(procs)


async def _stop_processes(procs: list[Process]) -> None:
    with anyio.CancelScope(shield=True):
        for p in procs:
            if p.returncode is None:
                p.terminate()
        for p in procs:
            await p.wait()


async def _watch(procs: list[Process], shutdown: _Shutdown, what: str = "a helper") -> None:
    """Return when shutdown is asked for; raise if one of ``procs`` exits before that."""
    while not shutdown.requested.is_set():
        dead = [p for p in procs if p.returncode is not None]
        if dead:
            raise HubError(
                f"{what} process (pid {dead[0].pid}) exited with {dead[0].returncode}; "
                "stopping the server"
            )
        with anyio.move_on_after(0.5):
            await shutdown.requested.wait()


async def _serve_here(
    hub: Any, sock: socket.socket, shutdown: _Shutdown, banner: str, helpers: list[Process]
) -> None:
    """The API in this process, next to the projectors (and their helper processes)."""
    import uvicorn

    from hub.http.app import create_app

    config = uvicorn.Config(create_app(hub), log_level="warning", lifespan="off", access_log=False)
    server = _server(config)

    def stop() -> None:
        server.should_exit = True
        hub.stop_projectors()

    shutdown.running(stop)
    print(banner, file=sys.stderr, flush=True)
    async with anyio.create_task_group() as tg:
        tg.start_soon(_watch, helpers, shutdown, "a projector")
        await server.serve(sockets=[sock])
        tg.cancel_scope.cancel()


async def _serve_in_workers(
    hub: Any,
    sock: socket.socket,
    workers: int,
    shutdown: _Shutdown,
    banner: str,
    helpers: list[Process],
) -> None:
    """The API in ``workers`` processes, each on its own socket bound to ``sock``'s address
    (SO_REUSEPORT: the kernel spreads connections evenly; on one shared socket, the first
    worker to wake takes a whole burst of them); this one projects. A worker (or projector
    process) that dies while serving stops the server with an error (never silently)."""
    host, port = sock.getsockname()[:2]
    socks = [sock, *(_bind(host, port, shared=True) for _ in range(workers - 1))]
    procs: list[Process] = []
    try:
        for own in socks:
            procs.append(
                await anyio.open_process(
                    [sys.executable, "-m", "hub.http.worker", str(own.fileno())],
                    env=_helper_env(hub),
                    pass_fds=[own.fileno()],
                    stdin=None,
                    stdout=None,
                    stderr=None,
                )
            )
    except BaseException:
        await _stop_processes(procs)
        raise
    finally:
        for own in socks[1:]:
            own.close()  # the workers hold them now
    shutdown.running(hub.stop_projectors)
    print(banner, file=sys.stderr, flush=True)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch, helpers, shutdown, "a projector")
            await _watch(procs, shutdown, "an API worker")
    finally:
        await _stop_processes(procs)


async def _keys_in_force(hub: Any, host: str) -> str:
    """On loopback, the local admin key (made on first start); elsewhere, refuse to serve
    until a key exists. Returns what to tell the operator."""
    from hub.access.local import LOCAL_KEY_FILE, is_loopback

    s = hub.settings
    if is_loopback(host):
        _, made = await hub.keys.local_admin(s.home, tenant=s.tenant)
        where = (s.home / LOCAL_KEY_FILE).resolve()
        return f"agent-hub: local admin key {'created in' if made else 'in'} {where} (owner-only)"
    if not await hub.keys.any_active():
        raise ConfigError(
            f"refusing to listen on {host}: no API key exists yet, so anyone could reach "
            "an API nobody can use safely; create one first (`agent-hub keys create --role "
            "admin`) or listen on 127.0.0.1"
        )
    hosts = s.api_allowed_hosts or "loopback names only"
    return f"agent-hub: API keys required; Host names answered: {hosts} (HUB_API_ALLOWED_HOSTS)"


def _banner(hub: Any, url: str, workers: int, projectors: int = 1) -> str:
    s = hub.settings
    database = f"embedded in {(s.home / 'pg').resolve()}" if s.embedded_database else "external"
    log_kind = hub.runtime.log.name
    archive = f", archive: {s.archive}" if hub.archiver is not None else ""
    processes = f" in {projectors} processes" if projectors > 1 else ""
    return (
        f"agent-hub: serving {url} (health: {url}/healthz, projections: {url}/v1/projections)\n"
        f"agent-hub: log: {log_kind}, database: {database}{archive}, "
        f"projectors: {len(hub.projectors)}{processes}, API workers: {workers}; "
        "Ctrl-C or SIGTERM to stop"
    )


async def cmd_project(settings: HubSettings, args: argparse.Namespace) -> int:
    """Projectors only, until SIGTERM/SIGINT (each finishes its batch in hand)."""
    from hub.client import Hub

    async def body(shutdown: _Shutdown) -> int:
        async with Hub(_projecting(settings)) as hub, anyio.create_task_group() as tg:
            shutdown.running(hub.stop_projectors)
            if args.lifeline:
                tg.start_soon(_stop_at_lifeline_end, shutdown)
            else:  # (a hub's own helper says nothing in its application's output)
                names = ", ".join(p.name for p in hub.projectors)
                print(f"agent-hub: projecting {names}; SIGTERM to stop", file=sys.stderr)
            await shutdown.requested.wait()
            tg.cancel_scope.cancel()
        return 0

    return await _with_shutdown(body)


async def cmd_archive(settings: HubSettings, args: argparse.Namespace) -> int:
    """The archiver only: every topic into HUB_ARCHIVE_URL, until SIGTERM/SIGINT."""
    from hub.client import Hub

    async def body(shutdown: _Shutdown) -> int:
        async with Hub(
            _direct(settings).model_copy(update={"run_projectors": "never"}), archive=True
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


def register(sub: Any) -> None:
    """Add the long-running commands to the ``agent-hub`` parser."""
    for name, fn, text in (
        ("up", cmd_up, "run embedded Postgres, every projector and the HTTP API"),
        ("api", cmd_api, "run only the HTTP API"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("--host", help="address to listen on (default: HUB_API_HOST, 127.0.0.1)")
        p.add_argument("--port", type=int, help="port to listen on (default: HUB_API_PORT, 8000)")
        p.add_argument(
            "--workers" if name == "api" else "--api-workers",
            dest="workers",
            type=positive_int,
            default=1,
            help="API processes sharing the port (default 1: the API runs in this process; "
            "more use more cores, and clients then read their own writes by sending "
            "X-Hub-Read-After, as the SDK does)",
        )
        if name == "up":
            p.add_argument(
                "--workers",
                dest="projectors",
                type=process_count,
                default=1,
                help="processes running the projectors, sharing every projection's "
                "partitions: a number, or 'auto' for one per CPU core (default 1: this one)",
            )
        p.set_defaults(fn=fn)

    p = sub.add_parser("project", help="run only the projectors")
    p.add_argument(
        "--lifeline",
        action="store_true",
        help="also stop when stdin reaches its end (a hub that started this process with "
        "HUB_RUN_PROJECTORS=process stopped or died)",
    )
    p.set_defaults(fn=cmd_project)

    p = sub.add_parser("archive", help="run only the archiver (the log into HUB_ARCHIVE_URL)")
    p.set_defaults(fn=cmd_archive)
