"""SQL of ``hub.runs`` (reads go through the ``runs`` views)."""

from __future__ import annotations

__all__ = [
    "AGGREGATE_BY_DAY",
    "AGGREGATE_BY_PROMPT",
    "AGGREGATE_TOTAL",
    "ARTIFACT",
    "ARTIFACTS",
    "LIST",
    "METRICS",
    "RUN",
]

_RUN_COLUMNS = """
run_id, agent_id, status, input, model_name, model_version, code_version, prompt_name,
prompt_version, seed, metadata, started_at, finished_at, duration_s, error, input_tokens,
output_tokens, total_tokens, result, metric_count, artifact_count
"""
RUN = f"SELECT {_RUN_COLUMNS} FROM runs.runs WHERE tenant_id = $1 AND run_id = $2"
LIST = f"""
SELECT {_RUN_COLUMNS} FROM runs.runs
WHERE tenant_id = $1
  AND ($2::text IS NULL OR agent_id = $2)
  AND ($3::text IS NULL OR status = $3)
  AND ($4::timestamptz IS NULL OR started_at >= $4)
  AND ($5::timestamptz IS NULL OR (started_at, run_id) < ($5, $6))
ORDER BY started_at DESC, run_id DESC
LIMIT $7
"""
METRICS = """
SELECT name, value, kind, unit, tags, recorded_at FROM runs.metrics
WHERE tenant_id = $1 AND run_id = $2
ORDER BY recorded_at, event_id, ordinal
"""
_ARTIFACT_COLUMNS = """
artifact_id, run_id, agent_id, name, key, uri, content_type, size, sha256, metadata, stored_at
"""
ARTIFACTS = f"""
SELECT {_ARTIFACT_COLUMNS} FROM runs.artifacts WHERE tenant_id = $1 AND run_id = $2
ORDER BY stored_at, artifact_id
"""
ARTIFACT = f"""
SELECT {_ARTIFACT_COLUMNS} FROM runs.artifacts WHERE tenant_id = $1 AND artifact_id = $2
"""

_STATS = """
count(*) AS count, avg(m.value) AS mean,
percentile_cont(0.5) WITHIN GROUP (ORDER BY m.value) AS p50,
percentile_cont(0.95) WITHIN GROUP (ORDER BY m.value) AS p95,
min(m.value) AS min, max(m.value) AS max
"""
_FILTER = """
WHERE m.tenant_id = $1 AND m.name = $2
  AND ($3::text IS NULL OR m.agent_id = $3)
  AND ($4::timestamptz IS NULL OR m.recorded_at >= $4)
"""
AGGREGATE_TOTAL = f"SELECT NULL::text AS grp, {_STATS} FROM runs.metrics m {_FILTER}"
AGGREGATE_BY_DAY = f"""
SELECT to_char(date_trunc('day', m.recorded_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD') AS grp,
       {_STATS}
FROM runs.metrics m {_FILTER}
GROUP BY 1 ORDER BY 1
"""
AGGREGATE_BY_PROMPT = f"""
SELECT r.prompt_version AS grp, {_STATS}
FROM runs.metrics m
JOIN runs.runs r ON r.tenant_id = m.tenant_id AND r.run_id = m.run_id
{_FILTER}
GROUP BY 1 ORDER BY 1 NULLS FIRST
"""
