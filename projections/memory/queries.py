"""SQL of ``hub.memory`` (reads go through the ``memory`` views). $1 is the tenant; an
item is live while its ``expires_at`` is unset or after ``now`` (given, not the clock of
the database, so a reader decides what "now" is)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AS_OF",
    "HAS_VECTOR",
    "HISTORY",
    "ITEM",
    "NAMESPACES",
    "SEARCH_ANY",
    "SEARCH_IN_GROUP",
    "Search",
    "search_under",
]

_LIVE = "(i.expires_at IS NULL OR i.expires_at > $3)"
_UNDER = "i.namespace[1:cardinality($2::text[])] = $2::text[]"

ITEM = f"""
SELECT i.namespace, i.key, i.value, i.created_at, i.updated_at, i.expires_at, i.ttl_s
FROM memory.items i
WHERE i.tenant_id = $1 AND i.namespace = $2::text[] AND i.key = $4 AND {_LIVE}
"""
"""One live item ($2 namespace, $3 now, $4 key)."""

_GROUP = "i.namespace[1:2] = ($2::text[])[1:2]"
"""With a prefix of two labels or more: the condition the ``items_group`` index answers, so
a search reads the items of one group (one user's, ``("memories", user_id)``), not every
item of the tenant."""


def _items(under: str) -> str:
    return f"""
SELECT i.namespace, i.key, i.value, i.created_at, i.updated_at, i.expires_at, i.ttl_s
FROM memory.items i
WHERE i.tenant_id = $1 AND {under} AND {_LIVE} AND ($4::jsonb IS NULL OR i.value @> $4)
ORDER BY i.updated_at DESC, i.namespace, i.key
LIMIT $5 OFFSET $6
"""


def _similar(under: str) -> str:
    return f"""
SELECT i.namespace, i.key, i.value, i.created_at, i.updated_at, i.expires_at, i.ttl_s,
       max(1 - (v.embedding::vector <=> $7::float8[]::vector)) AS score
FROM memory.items i
JOIN memory.item_vectors v USING (tenant_id, namespace, key)
WHERE i.tenant_id = $1 AND {under} AND {_LIVE} AND ($4::jsonb IS NULL OR i.value @> $4)
GROUP BY i.namespace, i.key, i.value, i.created_at, i.updated_at, i.expires_at, i.ttl_s
ORDER BY score DESC, i.namespace, i.key
LIMIT $5 OFFSET $6
"""


def _similar_python(under: str) -> str:
    return f"""
SELECT i.namespace, i.key, array_agg(v.embedding) AS embeddings
FROM memory.items i
JOIN memory.item_vectors v USING (tenant_id, namespace, key)
WHERE i.tenant_id = $1 AND {under} AND {_LIVE}
GROUP BY i.namespace, i.key
"""


@dataclass(frozen=True)
class Search:
    """The search queries for a prefix of some depth."""

    items: str
    """Live items under namespace $2 whose value contains $4, newest first ($5 limit,
    $6 offset)."""
    similar: str
    """As ``items``, ranked by cosine similarity to $7 (pgvector), best first."""
    similar_python: str
    """The embeddings of the live items under $2 (where pgvector is missing)."""


def _search(under: str) -> Search:
    return Search(_items(under), _similar(under), _similar_python(under))


SEARCH_ANY = _search(_UNDER)
"""Searches under a prefix of no label or one."""
SEARCH_IN_GROUP = _search(f"{_GROUP} AND {_UNDER}")
"""Searches under a prefix of two labels or more."""


def search_under(prefix_length: int) -> Search:
    """The search queries for a prefix of ``prefix_length`` labels."""
    return SEARCH_IN_GROUP if prefix_length >= 2 else SEARCH_ANY


HAS_VECTOR = "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector')"

NAMESPACES = """
SELECT DISTINCT i.namespace FROM memory.items i
WHERE i.tenant_id = $1 AND (i.expires_at IS NULL OR i.expires_at > $2)
ORDER BY i.namespace
"""
"""Every namespace holding a live item."""

HISTORY = """
SELECT value, at FROM memory.item_history
WHERE tenant_id = $1 AND namespace = $2::text[] AND key = $3
ORDER BY at, log_offset
"""
"""Every value an item had ($2 namespace, $3 key), oldest first; ``NULL``: deleted."""

AS_OF = """
SELECT key, value, at FROM (
    SELECT DISTINCT ON (key) key, value, at FROM memory.item_history
    WHERE tenant_id = $1 AND namespace = $2::text[] AND at <= $3
    ORDER BY key, at DESC, log_offset DESC
) h
WHERE value IS NOT NULL
ORDER BY key
"""
"""The items of namespace $2 as they were at $3."""
