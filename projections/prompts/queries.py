"""SQL of ``hub.prompts`` (reads go through the ``prompts`` views)."""

from __future__ import annotations

__all__ = ["AS_OF", "LABEL", "LABELS_AT", "LIST_VERSIONS", "VERSION"]

_LABELS = """
COALESCE((SELECT array_agg(l.label ORDER BY l.label) FROM prompts.labels l
          WHERE l.tenant_id = v.tenant_id AND l.name = v.name AND l.version = v.version),
         '{}') AS labels
"""
_COLUMNS = f"v.name, v.version, v.content, v.sha256, v.note, v.author, v.created_at, {_LABELS}"
VERSION = f"""
SELECT {_COLUMNS} FROM prompts.versions v
WHERE v.tenant_id = $1 AND v.name = $2 AND v.version = $3
"""
LABEL = f"""
SELECT {_COLUMNS} FROM prompts.labels lb
JOIN prompts.versions v USING (tenant_id, name, version)
WHERE lb.tenant_id = $1 AND lb.name = $2 AND lb.label = $3
"""
LIST_VERSIONS = f"""
SELECT {_COLUMNS} FROM prompts.versions v
WHERE v.tenant_id = $1 AND v.name = $2
ORDER BY v.seq
"""
LABELS_AT = """
SELECT DISTINCT ON (label) label, version FROM prompts.label_moves
WHERE tenant_id = $1 AND name = $2 AND moved_at <= $3
ORDER BY label, moved_at DESC, log_offset DESC
"""
AS_OF = """
SELECT version FROM prompts.label_moves
WHERE tenant_id = $1 AND name = $2 AND label = $3
  AND ($4::timestamptz IS NULL OR moved_at <= $4)
  AND ($5::bigint IS NULL OR log_offset < $5)
ORDER BY log_offset DESC
LIMIT 1
"""
