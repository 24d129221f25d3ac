"""The access read model: API keys (``tables``: DDL and handlers; ``queries``: what the
key checks and ``agent-hub keys`` read)."""

from projections.access.tables import MIGRATIONS, AccessProjection

__all__ = ["MIGRATIONS", "AccessProjection"]
