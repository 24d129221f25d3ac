"""The connection a projection's batch writes through: text arrays escaped as scalar text
is (:mod:`projections.text`), so a NUL in content is stored and read back, never a failed
batch; and rows copied in binary, encoded by :mod:`projections.copy_binary`.

A table's column types are looked up once per process (a projection's tables are made by
its migrations, the same for every database this code meets)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from projections.copy_binary import COLUMN_TYPES, Encode, encode_rows, encoders_for
from projections.text import ESC, store_text

__all__ = ["TextSafeConnection"]


class _Table(NamedTuple):
    """How rows are copied into some columns of a table."""

    encoders: tuple[Encode, ...] | None  # None: a column's type has no encoder here
    text_arrays: frozenset[int]  # the columns of type text[]


_TABLES: dict[tuple[str | None, str, tuple[str, ...]], _Table] = {}


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _safe(value: Any) -> Any:
    if type(value) is not list:
        return value
    try:  # one scan in C when the list holds only strings (the usual case)
        joined = "".join(value)
    except TypeError:
        clean = not any(type(v) is str and ("\x00" in v or ESC in v) for v in value)
    else:
        clean = "\x00" not in joined and ESC not in joined
    return value if clean else [store_text(v) if type(v) is str else v for v in value]


def _safe_row(row: Sequence[Any]) -> Sequence[Any]:
    for v in row:
        if type(v) is list:
            return tuple(map(_safe, row))
    return row


class TextSafeConnection:
    """A connection whose list (array) arguments have their strings escaped; everything
    else passes through to the wrapped connection."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    async def execute(self, query: str, *args: Any, **kw: Any) -> Any:
        return await self._conn.execute(query, *map(_safe, args), **kw)

    async def fetch(self, query: str, *args: Any, **kw: Any) -> Any:
        return await self._conn.fetch(query, *map(_safe, args), **kw)

    async def fetchrow(self, query: str, *args: Any, **kw: Any) -> Any:
        return await self._conn.fetchrow(query, *map(_safe, args), **kw)

    async def fetchval(self, query: str, *args: Any, **kw: Any) -> Any:
        return await self._conn.fetchval(query, *map(_safe, args), **kw)

    async def copy_records_to_table(
        self, table_name: str, *, records: Iterable[Sequence[Any]], **kw: Any
    ) -> Any:
        """As asyncpg's, its rows encoded by :mod:`projections.copy_binary` where it can."""
        rows = records if isinstance(records, list) else list(records)
        table = await self._table(table_name, kw)
        payload = encode_rows(table.encoders, rows) if table and table.encoders else None
        if payload is not None:
            return await self._conn.copy_to_table(
                table_name, source=memoryview(payload), format="binary", **kw
            )
        if table is None:  # column types unknown: every list is taken for a text array
            safe_rows: Iterable[Sequence[Any]] = map(_safe_row, rows)
        else:  # only the text arrays bypass the text codec (a jsonb list does not)
            arrays = table.text_arrays
            safe_rows = [
                tuple(_safe(v) if i in arrays else v for i, v in enumerate(r)) for r in rows
            ]
        return await self._conn.copy_records_to_table(table_name, records=safe_rows, **kw)

    async def _table(self, table: str, kw: Mapping[str, Any]) -> _Table | None:
        """How to copy into ``table`` the columns ``kw`` names (``None``: none named)."""
        columns, schema = kw.get("columns"), kw.get("schema_name")
        if not columns or set(kw) - {"columns", "schema_name"}:
            return None
        key = (schema, table, tuple(columns))
        if key not in _TABLES:
            name = f"{_ident(schema)}.{_ident(table)}" if schema else _ident(table)
            types = {r[0]: r[1] for r in await self._conn.fetch(COLUMN_TYPES, name)}
            arrays = frozenset(i for i, c in enumerate(columns) if types.get(c) == "_text")
            _TABLES[key] = _Table(encoders_for(types, columns), arrays)
        return _TABLES[key]
