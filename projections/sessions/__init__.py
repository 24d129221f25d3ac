"""The sessions read model (``tables``: DDL and handlers; ``queries``: what the SDK and HTTP
API read)."""

from projections.sessions.tables import MIGRATIONS, SessionsProjection

__all__ = ["MIGRATIONS", "SessionsProjection"]
