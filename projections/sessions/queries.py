"""SQL of the conversation read side (the ``sessions`` projection's stable views).

Reading a thread walks its lineage (``threads`` rows by primary key), then takes one
index range scan of ``messages`` per thread in the lineage: depth *d*, *d*+1 scans.
"""

from __future__ import annotations

__all__ = [
    "AS_OF_STATE",
    "FAMILY",
    "FIND_MESSAGE",
    "GET_THREAD",
    "LIST_THREADS",
    "MESSAGES_ASC",
    "MESSAGES_DESC",
    "MESSAGE_COLUMNS",
    "ROOT_OF",
    "SEARCH",
    "STATS",
    "THREAD_COLUMNS",
]

THREAD_COLUMNS = """
    thread_id, root_id, parent_id, forked_from, fork_seq, depth, agent_id, user_id, title,
    metadata, archived, archived_at, created_at, updated_at, last_seq AS message_count
"""
MESSAGE_COLUMNS = """
    message_id, thread_id, seq, role, parts, text, model, input_tokens, output_tokens,
    total_tokens, metadata, created_at, redacted, redaction_reason
"""

GET_THREAD = f"""
SELECT {THREAD_COLUMNS}, root_id, log_partition, created_offset, agent_state
FROM sessions.threads WHERE tenant_id = $1 AND thread_id = $2
"""

# $1 tenant, $2 thread, $3 exclusive lower seq, $4 inclusive upper seq, $5 limit,
# $6 highest log offset (time travel by position), $7 latest time (time travel by time)
_LINEAGE = """
WITH RECURSIVE chain AS (
    SELECT thread_id, parent_id, fork_seq, 0 AS lvl
    FROM sessions.threads WHERE tenant_id = $1 AND thread_id = $2
  UNION ALL
    SELECT t.thread_id, t.parent_id, t.fork_seq, c.lvl + 1
    FROM chain c JOIN sessions.threads t ON t.tenant_id = $1 AND t.thread_id = c.parent_id
), ranges AS (
    SELECT thread_id, fork_seq AS lo,
           coalesce(lag(fork_seq) OVER (ORDER BY lvl), 9223372036854775807) AS hi
    FROM chain
)
SELECT m.* FROM ranges r CROSS JOIN LATERAL (
    SELECT {columns} FROM sessions.messages m
    WHERE m.tenant_id = $1 AND m.thread_id = r.thread_id
      AND m.seq > greatest(r.lo, $3) AND m.seq <= least(r.hi, $4)
      AND m.log_offset <= $6 AND m.created_at <= $7
    ORDER BY m.seq {order} LIMIT $5
) m
ORDER BY m.seq {order} LIMIT $5
"""
MESSAGES_DESC = _LINEAGE.format(columns=MESSAGE_COLUMNS, order="DESC")
MESSAGES_ASC = _LINEAGE.format(columns=MESSAGE_COLUMNS, order="ASC")

FIND_MESSAGE = (
    "SELECT thread_id, seq FROM sessions.messages WHERE tenant_id = $1 AND message_id = $2"
)

# $1 tenant, $2 agent, $3 user, $4 archived, $5 cursor time, $6 cursor id, $7 limit
LIST_THREADS = f"""
SELECT {THREAD_COLUMNS} FROM sessions.threads
WHERE tenant_id = $1
  AND ($2::text IS NULL OR agent_id = $2)
  AND ($3::text IS NULL OR user_id = $3)
  AND ($4::boolean IS NULL OR archived = $4)
  AND ($5::timestamptz IS NULL OR (updated_at, thread_id) < ($5, $6))
ORDER BY updated_at DESC, thread_id DESC
LIMIT $7
"""

STATS = """
SELECT thread_id, last_seq AS message_count, own_count AS own_message_count, total_bytes,
       input_tokens, output_tokens, total_tokens, forked_from, fork_count, depth
FROM sessions.threads WHERE tenant_id = $1 AND thread_id = $2
"""

FAMILY = """
SELECT thread_id, title, forked_from, fork_seq, last_seq AS message_count, archived, created_at
FROM sessions.threads WHERE tenant_id = $1 AND root_id = $2
ORDER BY created_at, thread_id
"""

SEARCH = """
SELECT m.thread_id, t.title, m.message_id, m.seq, m.role, m.created_at,
       ts_headline('english', m.text, q, 'MaxFragments=2, MaxWords=20, MinWords=5') AS snippet,
       ts_rank(m.tsv, q) AS rank
FROM sessions.messages m
JOIN sessions.threads t ON t.tenant_id = m.tenant_id AND t.thread_id = m.thread_id,
     websearch_to_tsquery('english', $2) q
WHERE m.tenant_id = $1 AND m.tsv @@ q
  AND ($3::text IS NULL OR t.user_id = $3)
  AND ($4::text IS NULL OR t.agent_id = $4)
ORDER BY rank DESC, m.created_at DESC
LIMIT $5
"""

# title and archived as of a log offset ($3) and a time ($4)
AS_OF_STATE = """
SELECT
  (SELECT title FROM sessions.thread_events
   WHERE tenant_id = $1 AND thread_id = $2 AND kind IN ('created', 'renamed')
     AND log_offset <= $3 AND occurred_at <= $4
   ORDER BY log_offset DESC LIMIT 1) AS title,
  (SELECT archived FROM sessions.thread_events
   WHERE tenant_id = $1 AND thread_id = $2 AND kind IN ('created', 'archived', 'unarchived')
     AND log_offset <= $3 AND occurred_at <= $4
   ORDER BY log_offset DESC LIMIT 1) AS archived
"""
ROOT_OF = "SELECT root_id FROM sessions.threads WHERE tenant_id = $1 AND thread_id = $2"
