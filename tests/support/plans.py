"""How many rows a query's plan reads from some tables: for tests that a read does index
lookups instead of scanning what it does not return."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any

__all__ = ["rows_read"]


async def rows_read(pool: Any, query: str, args: Sequence[Any], tables: Collection[str]) -> int:
    """The rows ``query``'s scans of ``tables`` read (returned or filtered out), over every
    loop, run once with ``EXPLAIN ANALYZE``. At most: Postgres rounds a loop's average
    down."""
    explained = await pool.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + query, *args)
    if isinstance(explained, str):  # a pool without the hub's json codec
        explained = json.loads(explained)
    return _read(explained[0]["Plan"], set(tables))


def _read(plan: dict[str, Any], tables: set[str]) -> int:
    read = 0
    if plan.get("Relation Name") in tables:
        kept = plan["Actual Rows"] + plan.get("Rows Removed by Filter", 0)
        read += kept * plan["Actual Loops"]
    return read + sum(_read(p, tables) for p in plan.get("Plans", []))
