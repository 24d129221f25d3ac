"""Embedded mode: a Postgres server from the ``pgserver`` package under the hub's home,
and the lock that tells clients an ``agent-hub up`` is serving that home."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import warnings
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import structlog

from hub.infra.files import PRIVATE_DIR, PRIVATE_FILE, make_dirs, write_atomic
from schemas.errors import StoreError

__all__ = ["DATABASE", "EmbeddedPostgres", "ServerLock", "prune_dead_handles", "server_info"]

log = structlog.get_logger(__name__)

DATABASE = "agenthub"


class EmbeddedPostgres:
    """A Postgres server in ``<home>/pg``, shared by every process using that home.

    pgserver counts the processes holding it and stops the server when the last one exits.
    """

    def __init__(self, home: Path) -> None:
        self.home = home
        self._server: Any = None
        self.url: str | None = None

    async def start(self) -> str:
        """Start (or join) the server; returns the URL of the hub's database."""
        if self.url is not None:
            return self.url
        make_dirs(self.home)
        try:
            self._server = await anyio.to_thread.run_sync(self._get_server)
        except Exception as exc:  # pgserver raises plain exceptions from initdb/pg_ctl
            raise StoreError(
                f"cannot start embedded Postgres in {self.home / 'pg'}: {exc}"
            ) from exc
        admin = str(self._server.get_uri("postgres"))
        conn = await asyncpg.connect(admin)
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE)
            if not exists:
                with contextlib.suppress(asyncpg.DuplicateDatabaseError):  # lost a race: fine
                    await conn.execute(f"CREATE DATABASE {DATABASE}")
        finally:
            await conn.close()
        self.url = str(self._server.get_uri(DATABASE))
        log.debug("embedded_postgres.ready", home=str(self.home))
        return self.url

    def _get_server(self) -> Any:
        prune_dead_handles(self.home / "pg")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR
            import pgserver

            server = pgserver.get_server(self.home / "pg", cleanup_mode="stop")  # type: ignore[attr-defined]
        if os.geteuid() == 0:
            # As root, pgserver runs Postgres as its own user and opens every directory
            # above the data to all (g+rx, o+rx); the local directory needs only to be
            # traversed, not listed, by that user.
            os.chmod(self.home, PRIVATE_DIR | 0o011)
        return server

    def is_running(self) -> bool:
        """Whether the server's postmaster is alive."""
        try:
            pid = int((self.home / "pg" / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return False
        return _alive(pid)

    async def revive(self) -> bool:
        """Start the server again if it died (killed, out of memory); True if it did."""
        if self._server is None or self.is_running():
            return False
        log.warning("embedded_postgres.restarting", home=str(self.home))
        try:
            await anyio.to_thread.run_sync(self._server.ensure_postgres_running)
        except Exception as exc:  # pgserver raises plain exceptions from pg_ctl
            raise StoreError(
                f"cannot restart embedded Postgres in {self.home / 'pg'}: {exc}"
            ) from exc
        log.warning("embedded_postgres.restarted", home=str(self.home))
        return True

    async def stop(self) -> None:
        """Release this process's hold; the last process out stops the server."""
        server, self._server = self._server, None
        self.url = None
        if server is not None:
            # a user killed without its exit handlers (SIGKILL) stays listed: drop it, so
            # that the last live user really stops the server
            prune_dead_handles(self.home / "pg")
            await anyio.to_thread.run_sync(server.cleanup)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def prune_dead_handles(pgdata: Path) -> list[int]:
    """Drop processes that died without releasing the embedded server from pgserver's list
    of its users (``.handle_pids.json``); returns the pids dropped."""
    path = pgdata / ".handle_pids.json"
    try:
        pids = [int(p) for p in json.loads(path.read_text())]
    except (OSError, ValueError, TypeError):
        return []
    dead = [p for p in pids if not _alive(p)]
    if dead:
        write_atomic(path, json.dumps([p for p in pids if p not in dead]).encode())
        log.info("embedded_postgres.dead_users_pruned", pids=dead)
    return dead


class ServerLock:
    """Held by ``agent-hub up`` while it serves a home directory."""

    def __init__(self, home: Path) -> None:
        self.path = home / "server.lock"
        self.info_path = home / "server.json"
        self._fd: int | None = None

    def acquire(self, info: dict[str, Any]) -> bool:
        """Take the lock (without waiting); False if another server holds it."""
        make_dirs(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        write_atomic(self.info_path, json.dumps(info | {"pid": os.getpid()}).encode())
        return True

    def release(self) -> None:
        if self._fd is not None:
            self.info_path.unlink(missing_ok=True)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @staticmethod
    def held(home: Path) -> bool:
        """Whether some process serves ``home`` now."""
        path = home / "server.lock"
        if not path.exists():
            return False
        fd = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False


def server_info(home: Path) -> dict[str, Any] | None:
    """What the serving ``agent-hub up`` wrote about itself (address, pid), if one runs."""
    if not ServerLock.held(home):
        return None
    try:
        info: dict[str, Any] = json.loads((home / "server.json").read_text())
        return info
    except (OSError, ValueError):
        return {}
