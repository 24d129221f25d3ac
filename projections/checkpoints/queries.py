"""SQL of ``hub.checkpoints`` (reads go through the ``checkpoints`` views).

A thread's rows are its own (above its ``hidden_before``) and those its lineage entries
see; one row per checkpoint id is kept, its own first (see :mod:`.tables`).
$1 is the tenant in every query, and $2 the thread in those reading one.
"""

from __future__ import annotations

__all__ = [
    "CHECKPOINT",
    "EVERY_NAMESPACE",
    "LAST_CHANGE",
    "NEWEST",
    "OLDER",
    "THREADS",
    "THREADS_OF_RUNS",
    "VALUES",
    "VALUES_ONE",
    "WHOLE_CHECKPOINT",
    "WHOLE_NEWEST",
    "WRITES",
    "WRITES_ONE",
]

_SOURCES_CTE = """
src AS (
    SELECT $2::text AS thread_id,
           COALESCE((SELECT hidden_before FROM checkpoints.threads
                     WHERE tenant_id = $1 AND thread_id = $2), -2) AS low,
           9223372036854775807::bigint AS high
    UNION ALL
    SELECT source_thread_id, low, high FROM checkpoints.lineage
    WHERE tenant_id = $1 AND thread_id = $2
)"""
_SOURCES = f"WITH {_SOURCES_CTE}\n"
_SEEN = "JOIN src s ON {r}.thread_id = s.thread_id AND {r}.pos > s.low AND {r}.pos < s.high"

_COLUMNS = """
c.checkpoint_ns, c.checkpoint_id, c.parent_checkpoint_id, c.checkpoint_type, c.checkpoint,
c.checkpoint_key, c.metadata_type, c.metadata, c.metadata_key, c.metadata_json,
c.channel_versions, c.pos
"""


def _newest(where: str, contains: str, limit: str) -> str:
    """Each source's newest checkpoints matching ``where`` (an index scan each, so the
    cost does not grow with the thread's length), one row per checkpoint id, newest
    first."""
    return _SOURCES + _newest_body(where, contains, limit)


def _newest_body(where: str, contains: str, limit: str) -> str:
    return f"""
SELECT * FROM (
    SELECT DISTINCT ON (c.checkpoint_id, c.checkpoint_ns) c.*
    FROM src s
    CROSS JOIN LATERAL (
        SELECT {_COLUMNS}, s.thread_id = $2 AS own FROM checkpoints.checkpoints c
        WHERE c.tenant_id = $1 AND c.thread_id = s.thread_id
          AND c.pos > s.low AND c.pos < s.high
          AND {where}
          AND ({contains}::jsonb IS NULL OR c.metadata_json @> {contains})
        ORDER BY c.checkpoint_id DESC, c.checkpoint_ns DESC
        LIMIT {limit}
    ) c
    ORDER BY c.checkpoint_id DESC, c.checkpoint_ns DESC, c.own DESC, c.pos DESC
) d
ORDER BY checkpoint_id DESC, checkpoint_ns DESC
LIMIT {limit}
"""


CHECKPOINT = _newest("c.checkpoint_ns = $3 AND c.checkpoint_id = $4", "$5", "1")
"""One checkpoint: $3 namespace, $4 id, $5 metadata it contains (or NULL)."""

NEWEST = _newest("c.checkpoint_ns = $3", "$4", "$5")
"""The newest $5 checkpoints of namespace $3 whose metadata contains $4 (or NULL)."""

OLDER = _newest("c.checkpoint_ns = $3 AND c.checkpoint_id < $6", "$4", "$5")
"""As ``NEWEST``, older than checkpoint id $6."""

EVERY_NAMESPACE = _newest(
    """($5::text IS NULL OR c.checkpoint_id = $5)
          AND ($6::text IS NULL OR c.checkpoint_id < $6)
          AND ($7::text IS NULL OR (c.checkpoint_id, c.checkpoint_ns) < ($7, $8::text))""",
    "$3",
    "$4",
)
"""Checkpoints of every namespace: $3 metadata contains, $4 limit, $5 id, $6 before this
id, ($7, $8) after this (id, namespace)."""


def _values(keys: str) -> str:
    """Channel values of the checkpoints ``keys`` names (``k (ns, id, versions)``): an
    index lookup per source thread and channel, so a read's cost does not grow with the
    number of threads or checkpoints stored."""
    return _SOURCES + _values_body(keys)


def _values_body(keys: str) -> str:
    return f"""
SELECT DISTINCT ON (k.ns, k.id, cv.channel)
       k.ns, k.id, cv.channel, v.type, v.data, v.blob_key
FROM {keys}
CROSS JOIN LATERAL jsonb_each_text(k.versions) AS cv (channel, version)
CROSS JOIN src s
CROSS JOIN LATERAL (
    SELECT v.type, v.data, v.blob_key, v.pos FROM checkpoints.channel_values v
    WHERE v.tenant_id = $1 AND v.thread_id = s.thread_id AND v.checkpoint_ns = k.ns
      AND v.channel = cv.channel AND v.version = cv.version
      AND v.pos > s.low AND v.pos < s.high
    ORDER BY v.pos DESC
    LIMIT 1
) v
ORDER BY k.ns, k.id, cv.channel, s.thread_id = $2 DESC, v.pos DESC
"""


def _writes(keys: str) -> str:
    """Pending writes of the checkpoints ``keys`` names (``k (ns, id)``): per task and
    index the first stored, except the special channels' (negative index), where the
    last one counts. An index lookup per source thread and checkpoint."""
    return _SOURCES + _writes_body(keys)


def _writes_body(keys: str) -> str:
    return f"""
SELECT DISTINCT ON (w.checkpoint_ns, w.checkpoint_id, w.task_id, w.idx)
       w.checkpoint_ns, w.checkpoint_id, w.task_id, w.task_path, w.idx, w.channel,
       w.type, w.data, w.blob_key
FROM {keys}
CROSS JOIN src s
CROSS JOIN LATERAL (
    SELECT w.*, s.thread_id = $2 AS own FROM checkpoints.writes w
    WHERE w.tenant_id = $1 AND w.thread_id = s.thread_id
      AND w.checkpoint_ns = k.ns AND w.checkpoint_id = k.id
      AND w.pos > s.low AND w.pos < s.high
    OFFSET 0
) w
ORDER BY w.checkpoint_ns, w.checkpoint_id, w.task_id, w.idx, w.own DESC,
         CASE WHEN w.idx < 0 THEN -w.pos ELSE w.pos END
"""


VALUES = _values("unnest($3::text[], $4::text[], $5::jsonb[]) AS k (ns, id, versions)")
"""The channel values of checkpoints ($3 namespaces, $4 ids, $5 their channel versions)."""

VALUES_ONE = _values("(SELECT $3::text, $4::text, $5::jsonb) AS k (ns, id, versions)")
"""As ``VALUES``, of one checkpoint ($3 namespace, $4 id, $5 channel versions). Without
arrays Postgres keeps one generic plan for it instead of planning each call again (about
a third of the time of a read of one checkpoint)."""

WRITES = _writes("(SELECT DISTINCT * FROM unnest($3::text[], $4::text[])) AS k (ns, id)")
"""The pending writes of checkpoints ($3 namespaces, $4 ids)."""

WRITES_ONE = _writes("(SELECT $3::text, $4::text) AS k (ns, id)")
"""As ``WRITES``, of one checkpoint ($3 namespace, $4 id)."""


def _whole(where: str) -> str:
    """One checkpoint matching ``where`` (the newest), with its channel values
    (``vals``: channel, type, data, blob key) and its pending writes (``writes``: task
    id, task path, index, channel, type, data, blob key) as arrays of records: a read of
    one checkpoint in one round trip."""
    value_keys = (
        "(SELECT c.checkpoint_ns, c.checkpoint_id, c.channel_versions) AS k (ns, id, versions)"
    )
    write_keys = "(SELECT c.checkpoint_ns, c.checkpoint_id) AS k (ns, id)"
    return f"""
WITH {_SOURCES_CTE},
c AS ({_newest_body(where, "NULL", "1")})
SELECT c.*,
       ARRAY(SELECT ROW(x.channel, x.type, x.data, x.blob_key)
             FROM ({_values_body(value_keys)}) x) AS vals,
       ARRAY(SELECT ROW(y.task_id, y.task_path, y.idx, y.channel, y.type, y.data, y.blob_key)
             FROM ({_writes_body(write_keys)}) y) AS writes
FROM c
"""


WHOLE_NEWEST = _whole("c.checkpoint_ns = $3")
"""The newest checkpoint of namespace $3, whole (see ``_whole``)."""

WHOLE_CHECKPOINT = _whole("c.checkpoint_ns = $3 AND c.checkpoint_id = $4")
"""Checkpoint $4 of namespace $3, whole (see ``_whole``)."""

LAST_CHANGE = """
SELECT pos FROM checkpoints.thread_positions WHERE tenant_id = $1 AND thread_id = $2
"""
"""``pos`` of the last event that changed what the thread's reads return (no row: not
known)."""

THREADS = """
SELECT thread_id FROM (
    SELECT thread_id FROM checkpoints.checkpoints WHERE tenant_id = $1
    UNION SELECT thread_id FROM checkpoints.lineage WHERE tenant_id = $1
) t ORDER BY thread_id
"""
"""Every thread of a tenant that may hold checkpoints."""

THREADS_OF_RUNS = """
SELECT DISTINCT thread_id FROM checkpoints.checkpoints
WHERE tenant_id = $1 AND run_id = ANY($2::text[])
UNION
SELECT DISTINCT l.thread_id FROM checkpoints.lineage l
JOIN checkpoints.checkpoints c ON c.tenant_id = l.tenant_id
     AND c.thread_id = l.source_thread_id AND c.pos > l.low AND c.pos < l.high
WHERE l.tenant_id = $1 AND c.run_id = ANY($2::text[])
"""
"""The threads holding or seeing checkpoints of some runs."""
