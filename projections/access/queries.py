"""SQL of ``hub.access`` (reads go through the ``access`` views)."""

from __future__ import annotations

__all__ = ["ANY_ACTIVE", "KEY", "KEYS"]

_COLUMNS = """
k.key_id, k.tenant_id, k.role, k.name, k.secret_sha256, k.created_at, k.created_by,
k.revoked_at, k.revoked_by, k.revoked_reason
"""
KEY = f"SELECT {_COLUMNS} FROM access.keys k WHERE k.key_id = $1"
KEYS = f"""
SELECT {_COLUMNS}, u.last_used_at FROM access.keys k
LEFT JOIN hub.key_usage u USING (key_id)
WHERE ($1::text IS NULL OR k.tenant_id = $1) AND ($2 OR k.revoked_at IS NULL)
ORDER BY k.tenant_id, k.created_at, k.key_id
"""
ANY_ACTIVE = "SELECT EXISTS (SELECT 1 FROM access.keys WHERE revoked_at IS NULL)"
