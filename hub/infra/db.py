"""Postgres plumbing shared by every component: pools, and the driver-error boundary.

asyncpg and OS errors become :class:`StoreError` here (``retriable`` when trying again
later can help: a lost connection, a serialization failure, a server starting up).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager, suppress
from typing import Any

import anyio
import asyncpg

from projections.text import json_text, jsonb_bytes, load_json, load_text, store_text
from schemas.errors import HubError, LogError, StoreError

__all__ = [
    "connect",
    "create_pool",
    "derived_transaction",
    "is_retriable",
    "redact",
    "translate_errors",
    "translate_log_errors",
]

_RETRIABLE_SQLSTATES = {
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "55P03",  # lock_not_available
    "53300",  # too_many_connections
    "57P01",  # admin_shutdown
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now
    "08000",
    "08001",
    "08003",
    "08004",
    "08006",
}


def is_retriable(exc: BaseException) -> bool:
    """Whether the same database work may succeed if tried again later."""
    if isinstance(exc, HubError):
        return exc.retriable
    if isinstance(exc, OSError | TimeoutError | ConnectionError):
        return True
    if isinstance(
        exc,
        asyncpg.InterfaceError | asyncpg.ConnectionDoesNotExistError | asyncpg.InternalClientError,
    ):
        return True  # the connection is gone or in a broken state: a new one may work
    if isinstance(exc, asyncpg.PostgresConnectionError):
        return True
    if isinstance(exc, asyncpg.InvalidCachedStatementError):
        return True  # a table was swapped under a prepared statement (a rebuild): re-prepare
    sqlstate = getattr(exc, "sqlstate", None)
    return sqlstate in _RETRIABLE_SQLSTATES


def redact(dsn: str) -> str:
    """A DSN without its password, for messages."""
    if "@" not in dsn or "://" not in dsn:
        return dsn
    scheme, rest = dsn.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}@{host}"


@contextmanager
def translate_errors(what: str, error: type[HubError] = StoreError) -> Iterator[None]:
    """Convert driver and OS errors raised inside into ``error`` (:class:`StoreError`;
    the Postgres log raises :class:`LogError`, which the producer spools on)."""
    try:
        yield
    except HubError:
        raise
    except (
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        asyncpg.InternalClientError,
        OSError,
        TimeoutError,
    ) as exc:
        raise error(f"{what}: {exc}", retriable=is_retriable(exc)) from exc


def translate_log_errors(what: str) -> AbstractContextManager[None]:
    """As :func:`translate_errors`, raising :class:`LogError`: the log adapters' boundary."""
    return translate_errors(what, LogError)


def _jsonb_out(value: Any) -> bytes:
    return b"\x01" + jsonb_bytes(value)


def _jsonb_in(data: bytes) -> Any:
    if data == b"\x01{}":  # the common case (no tags, no metadata)
        return {}
    return load_json(data[1:])


def _json_out(value: Any) -> bytes:
    return json_text(value).encode()


def _text_out(value: str) -> bytes:
    return store_text(value).encode()


def _text_in(data: bytes) -> str:
    return load_text(data.decode())


async def _init_connection(conn: asyncpg.Connection) -> None:
    # Binary codecs, so that json/jsonb values also work in binary COPY.
    await conn.set_type_codec(
        "jsonb", encoder=_jsonb_out, decoder=_jsonb_in, schema="pg_catalog", format="binary"
    )
    await conn.set_type_codec(
        "json", encoder=_json_out, decoder=load_json, schema="pg_catalog", format="binary"
    )
    await conn.set_type_codec(
        "text", encoder=_text_out, decoder=_text_in, schema="pg_catalog", format="binary"
    )


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections map json/jsonb to Python values."""
    with translate_errors(f"cannot connect to Postgres at {redact(dsn)}"):
        pool: asyncpg.Pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            init=_init_connection,
            reset=_reset_if_in_transaction,
            timeout=10,
        )
        return pool


async def _reset_if_in_transaction(conn: asyncpg.Connection) -> None:
    """What a pooled connection needs before its next use. Pooled connections never hold
    session state (LISTEN and session advisory locks use :func:`connect`), so asyncpg's
    full reset (a round trip on every release) is needed only after an interrupted
    transaction."""
    if conn.is_in_transaction():
        await conn.reset()


@asynccontextmanager
async def connect(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """One dedicated connection (for LISTEN and session-level advisory locks)."""
    with translate_errors(f"cannot connect to Postgres at {redact(dsn)}"):
        conn: asyncpg.Connection = await asyncpg.connect(dsn, timeout=10)
    try:
        await _init_connection(conn)
        yield conn
    finally:
        if not conn.is_closed():
            await conn.close(timeout=5)


BEGIN_DERIVED = "BEGIN; SET LOCAL synchronous_commit TO off"


@asynccontextmanager
async def derived_transaction(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """A transaction of rows derived from a durable source (a projection's batch with its
    positions), begun in one round trip, whose commit does not wait for the WAL flush.

    Postgres keeps such a commit atomic and ordered: a server crash can lose only the
    newest of them, rows and positions together, which are then derived again from the
    source. Other sessions see the rows as soon as it commits, as with any commit. Not
    for anything that is the only copy (the Postgres log's own appends)."""
    try:
        await conn.execute(BEGIN_DERIVED)
        yield
    except BaseException:
        with anyio.CancelScope(shield=True):
            await _roll_back(conn)
        raise
    status = await conn.execute("COMMIT")
    if status != "COMMIT":  # Postgres ends a failed transaction's COMMIT with ROLLBACK
        raise StoreError(f"the transaction was rolled back at commit ({status})", retriable=True)


async def _roll_back(conn: asyncpg.Connection) -> None:
    """End a failed transaction, if the connection still has one (the pool resets a
    connection whose rollback failed)."""
    if conn.is_closed() or not conn.is_in_transaction():
        return
    # the error that ended the transaction is what the caller needs to see
    with suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        await conn.execute("ROLLBACK")
