"""The sessions read model: ``tables`` (DDL and the batch that writes them), ``handlers``
(the handler table), ``queries`` (what the SDK and HTTP API read)."""

from projections.sessions.handlers import SessionsProjection
from projections.sessions.tables import MIGRATIONS

__all__ = ["MIGRATIONS", "SessionsProjection"]
