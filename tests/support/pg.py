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
