"""A projection's rows copied in binary by ``projections.copy_binary`` are stored exactly
as asyncpg's own ``copy_records_to_table`` stores them (with the hub's NUL-safe codecs),
for every column type the encoders know, and every value asyncpg takes that ours does
not is left to asyncpg."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.infra.db import connect
from projections.connection import _TABLES, TextSafeConnection, _safe
from projections.copy_binary import ENCODERS, encode_rows, encoders_for
from projections.text import load_text

pytestmark = pytest.mark.anyio

TABLE = """
CREATE TABLE {name} (
    t text, s int2, i int4, b8 int8, f float8, ok bool, u uuid,
    at timestamptz, j jsonb, raw bytea, tags text[], n int4 NOT NULL DEFAULT 0
)"""
COLUMNS = ("t", "s", "i", "b8", "f", "ok", "u", "at", "j", "raw", "tags")

texts = st.text(st.characters(codec="utf-8")) | st.sampled_from(["\x00", "\ue000", "\ue000\ue001"])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
rows = st.tuples(
    st.none() | texts,
    st.none() | st.integers(-(2**15), 2**15 - 1),
    st.none() | st.integers(-(2**31), 2**31 - 1),
    st.none() | st.integers(-(2**63), 2**63 - 1),
    st.none() | st.floats(allow_nan=False) | st.integers(-(2**53), 2**53),
    st.none() | st.booleans(),
    st.none() | st.uuids().map(lambda u: UUID(bytes=u.bytes)),
    st.none()
    | st.datetimes(
        min_value=datetime(1900, 1, 1),
        max_value=datetime(2200, 1, 1),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7, minutes=-30))]),
    ),
    st.none() | json_values,
    st.none() | st.binary(max_size=40),
    st.none() | st.lists(st.none() | texts, max_size=4),
)


async def _stored(conn: Any, name: str) -> list[tuple[Any, ...]]:
    found = await conn.fetch(f"SELECT {', '.join(COLUMNS)} FROM {name} ORDER BY n")
    return [tuple(r) for r in found]


async def _copy_both(conn: Any, records: Sequence[tuple[Any, ...]]) -> None:
    numbered = [(*r, i) for i, r in enumerate(records)]
    columns = (*COLUMNS, "n")
    safe = TextSafeConnection(conn)
    await safe.copy_records_to_table("ours", columns=columns, records=numbered)
    # asyncpg's own path (the wrapper's fallback)
    await conn.copy_records_to_table(
        "theirs", columns=columns, records=[_escaped_arrays(r) for r in numbered]
    )


def _escaped_arrays(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """The row with its text array escaped, as asyncpg needs (its array encoder bypasses
    the text codec); a jsonb list is left to the jsonb codec, which escapes it."""
    tags = COLUMNS.index("tags")
    return (*row[:tags], _safe(row[tags]), *row[tags + 1 :])


@pytest.fixture
async def conn(database_url: str) -> Any:
    _TABLES.clear()
    async with connect(database_url) as c:
        for name in ("ours", "theirs"):
            await c.execute(TABLE.format(name=name))
        yield c


TYPES = {"t": "text", "s": "int2", "i": "int4", "b8": "int8", "f": "float8", "ok": "bool"}
TYPES |= {"u": "uuid", "at": "timestamptz", "j": "jsonb", "raw": "bytea", "tags": "_text"}


def test_every_column_type_of_the_table_has_an_encoder() -> None:
    types = dict(TYPES)
    assert set(types.values()) == set(ENCODERS)
    assert encoders_for(types, COLUMNS) is not None
    assert encoders_for(types | {"t": "numeric"}, COLUMNS) is None


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(records=st.lists(rows, min_size=1, max_size=12))
async def test_the_same_rows_as_asyncpg(conn: Any, records: list[tuple[Any, ...]]) -> None:
    _TABLES.clear()
    encoders = encoders_for(TYPES, COLUMNS)
    assert encoders is not None and encode_rows(encoders, records) is not None  # ours, in binary
    await conn.execute("TRUNCATE ours; TRUNCATE theirs")
    await _copy_both(conn, records)
    ours, theirs = await _stored(conn, "ours"), await _stored(conn, "theirs")
    assert ours == theirs
    tags = COLUMNS.index("tags")  # a text[] column reads back escaped (load_texts)
    unescaped = [(*r[:tags], _load(r[tags]), *r[tags + 1 :]) for r in ours]
    assert unescaped == [tuple(_as_read(v) for v in r) for r in records]  # and as given


def _load(values: list[str | None] | None) -> list[str | None] | None:
    return None if values is None else [v if v is None else load_text(v) for v in values]


def _as_read(value: Any) -> Any:
    return value.astimezone(UTC) if isinstance(value, datetime) else value


async def test_the_binary_path_is_the_one_taken(conn: Any) -> None:
    encoders = encoders_for({"t": "text"}, ("t",))
    assert encoders is not None and encode_rows(encoders, [("a\x00b",)]) is not None
    calls: list[str] = []

    class Spy:
        def __getattr__(self, name: str) -> Any:
            calls.append(name)
            return getattr(conn, name)

    await TextSafeConnection(Spy()).copy_records_to_table(
        "ours", columns=("t", "n"), records=[("a\x00b", 1)]
    )
    assert "copy_to_table" in calls and "copy_records_to_table" not in calls
    assert await conn.fetchval("SELECT t FROM ours") == "a\x00b"  # read back through the codec


@pytest.mark.parametrize(
    "value,column",
    [
        ("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "u"),  # a UUID as text: asyncpg parses it
        (datetime(2024, 5, 1, 12, 0), "at"),  # naive: asyncpg's rule
        (datetime.max.replace(tzinfo=UTC), "at"),  # asyncpg's infinity
        (True, "i"),  # a bool for an integer
        (3.0, "i"),
        (bytearray(b"xy"), "raw"),
        (("a", "b"), "t"),
    ],
)
async def test_what_ours_does_not_take_goes_the_asyncpg_way(
    conn: Any, value: Any, column: str
) -> None:
    safe = TextSafeConnection(conn)
    try:
        await conn.copy_records_to_table("theirs", columns=(column, "n"), records=[(value, 1)])
    except Exception as exc:
        with pytest.raises(type(exc)):
            await safe.copy_records_to_table("ours", columns=(column, "n"), records=[(value, 1)])
        return
    await safe.copy_records_to_table("ours", columns=(column, "n"), records=[(value, 1)])
    assert await _stored(conn, "ours") == await _stored(conn, "theirs")


async def test_out_of_range_and_not_null_are_refused_as_asyncpg_refuses_them(conn: Any) -> None:
    safe = TextSafeConnection(conn)
    for column, value in (("s", 2**15), ("i", -(2**31) - 1), ("b8", 2**63)):
        with pytest.raises(Exception) as theirs:
            await conn.copy_records_to_table("theirs", columns=(column,), records=[(value,)])
        with pytest.raises(type(theirs.value)):
            await safe.copy_records_to_table("ours", columns=(column,), records=[(value,)])
    with pytest.raises(Exception, match=r"not-null|null value"):
        await safe.copy_records_to_table("ours", columns=("n",), records=[(None,)])


async def test_asyncpgs_way_escapes_text_arrays_only(conn: Any) -> None:
    """Regression: when a value sends a COPY asyncpg's way, only the text[] columns are
    escaped by the wrapper; a jsonb list holding NUL is escaped by the jsonb codec alone
    (it was escaped twice, and read back changed)."""
    as_text = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"  # a UUID as text: asyncpg's way
    doc = ["\x00", "a\ue000", {"k": "\ue000\ue001"}]
    row = ("t\x00", as_text, doc, ["\x00", "\ue000"], 1)
    await TextSafeConnection(conn).copy_records_to_table(
        "ours", columns=("t", "u", "j", "tags", "n"), records=[row]
    )
    t, u, j, tags = await conn.fetchrow("SELECT t, u, j, tags FROM ours")
    assert (t, str(u), j) == ("t\x00", as_text, doc)
    assert [load_text(v) for v in tags] == ["\x00", "\ue000"]
