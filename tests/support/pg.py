"""Where tests get Postgres: ``HUB_TEST_DATABASE_URL``, else the server on 127.0.0.1:5432
when it answers, else an embedded one from the ``pgserver`` package. Each test gets its
own database."""

from __future__ import annotations

import os
import socket
import tempfile
from typing import Any

import asyncpg

__all__ = ["admin_dsn", "create_database", "drop_database", "with_database"]

_embedded: Any = None


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def admin_dsn() -> str:
    """A DSN for a role that may create databases."""
    explicit = os.environ.get("HUB_TEST_DATABASE_URL")
    if explicit:
        return explicit
    if _answers("127.0.0.1", 5432):
        return "postgresql://postgres@127.0.0.1:5432/postgres"
    global _embedded
    if _embedded is None:
        import pgserver

        _embedded = pgserver.get_server(  # type: ignore[attr-defined]
            tempfile.mkdtemp(prefix="hub-test-pg-"), cleanup_mode="delete"
        )
    return str(_embedded.get_uri())


def with_database(dsn: str, name: str) -> str:
    """``dsn`` pointing at database ``name`` (works for URLs with a socket ``host=``)."""
    base, sep, query = dsn.partition("?")
    head, _, _db = base.rpartition("/")
    return f"{head}/{name}{sep}{query}"


async def create_database(name: str) -> str:
    conn = await asyncpg.connect(admin_dsn())
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(admin_dsn(), name)


async def drop_database(name: str) -> None:
    conn = await asyncpg.connect(admin_dsn())
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


class KillablePostgres:
    """A Postgres server of its own (from ``pgserver``) that a test can SIGKILL and start
    again, as a crashed database server is restarted by its supervisor."""

    def __init__(self, pgdata: str) -> None:
        import pgserver

        self.pgdata = pgdata
        self._server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]

    def uri(self, database: str = "postgres") -> str:
        return str(self._server.get_uri(database))

    def _postmaster(self) -> list[str]:
        return open(os.path.join(self.pgdata, "postmaster.pid")).read().splitlines()

    def kill(self) -> None:
        """SIGKILL the postmaster and its backends: no shutdown, no checkpoint."""
        import signal
        import time

        pid = int(self._postmaster()[0])
        self._socket_dir = self._postmaster()[4]
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):  # the backends notice the postmaster is gone and exit
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)

    def start(self) -> None:
        """Start the killed server again (crash recovery replays its WAL)."""
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        log = os.path.join(self.pgdata, "log")
        pg_ctl(
            ["-w", "-o", '-h ""', "-o", f"-k {self._socket_dir}", "-l", log, "start"],
            pgdata=self.pgdata,
            user=self._server.system_user,
        )

    def close(self) -> None:
        self._server.cleanup()
