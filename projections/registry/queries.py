"""Read queries of the registry projection (``registry.agents``, ``registry.agent_history``),
and the fold of an agent's history rows into its state at a point (``as_of``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from projections.text import load_texts

__all__ = ["AS_OF", "GET", "LIST", "RUN_STATUS", "fold_history"]

_AGENT = """
SELECT a.agent_id, a.description, a.tags, a.metadata, a.status, a.registered_at, a.updated_at,
       a.retired_at, a.retired_reason, a.revision,
       COALESCE(s.runs, 0) AS run_count, COALESCE(s.succeeded, 0) AS succeeded,
       COALESCE(s.failed, 0) AS failed, COALESCE(s.cancelled, 0) AS cancelled,
       s.last_run_id, s.last_run_at
FROM registry.agents a
LEFT JOIN runs.agent_stats s ON s.tenant_id = a.tenant_id AND s.agent_id = a.agent_id
"""
GET = _AGENT + "WHERE a.tenant_id = $1 AND a.agent_id = $2"
LIST = (
    _AGENT
    + """
WHERE a.tenant_id = $1
  AND ($2::text IS NULL OR a.tags @> ARRAY[$2::text])
  AND ($3::text IS NULL OR a.status = $3)
  AND ($4::text IS NULL OR a.agent_id > $4)
ORDER BY a.agent_id
LIMIT $5
"""
)
AS_OF = """
SELECT kind, description, tags, metadata, reason, changed_at FROM registry.agent_history
WHERE tenant_id = $1 AND agent_id = $2
  AND ($3::timestamptz IS NULL OR changed_at <= $3)
  AND ($4::bigint IS NULL OR log_offset < $4)
ORDER BY log_offset
"""
RUN_STATUS = "SELECT agent_id, status FROM runs.runs WHERE tenant_id = $1 AND run_id = $2"


def fold_history(agent_id: str, rows: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The agent's fields after the history ``rows`` (in log order), as the ``agents``
    table holds them; None if no row registered it. Run statistics are not included."""
    state: dict[str, Any] | None = None
    for r in rows:
        if r["kind"] == "retired":
            if state is None:
                continue
            state.update(status="retired", retired_at=r["changed_at"], retired_reason=r["reason"])
        else:
            if state is None:
                state = {"agent_id": agent_id, "revision": 0, "status": "active"}
                state["registered_at"] = r["changed_at"]
            state.update(
                description=r["description"],
                tags=tuple(load_texts(r["tags"])),
                metadata=r["metadata"],
            )
            if r["kind"] == "registered":  # registering a retired agent brings it back
                state.update(status="active", retired_at=None, retired_reason=None)
        state["revision"] += 1
        state["updated_at"] = r["changed_at"]
    return state
